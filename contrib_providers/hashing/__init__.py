"""``hashing``: an offline, deterministic embeddings model that needs no settings, no network
and no key, registered always.

It hashes each lower-cased word into one of ``dimension`` slots (feature hashing with BLAKE2b),
so the same text gives the same vector in every process and on every machine. Texts score as
similar when they share words, not when they mean the same thing: "reset my password" is closer
to "password reset steps" than to "forgot my login", and "sign-in trouble" is close to neither.
Good for trying knowledge search with nothing set up, and for tests; use a real embeddings model
for answers that matter. Fast: thousands of 1,000-character chunks a second on one core.

    [default.embeddings.hashing]
    dimension = 384            # the default
    models = [{ id = "hashing-1024", dimension = 1024 }]   # more of them, if wanted
"""

from functools import partial

from ai_assistant import hookimpl
from ai_assistant.provider_kit import Option, ProviderSection

SECTION = ProviderSection(
    "hashing",
    [
        Option("id", required=True, section=False),
        Option("dimension", (int,), default=384, minimum=1),
    ],
    id_from="id",
    kind="embeddings",
    always=[{"id": "hashing"}],
)


def build(options):
    from .model import HashingEmbeddings  # langchain_core is imported on first use only

    return HashingEmbeddings(dimension=options["dimension"])


@hookimpl
def register_embeddings(config, registry):
    for entry in SECTION.read(config, registry):
        registry.register(
            entry.id,
            factory=partial(build, entry.options),
            model_name="word-hashing",
            dimension=entry.options["dimension"],
        )


@hookimpl
def validate_config(config):
    return SECTION.validate(config)
