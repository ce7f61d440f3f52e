"""An offline model that answers from the conversation itself: for trying the host with no
network or key, and for tests. It streams its answer token by token.

    [default.models.echo]
    models = [{ id = "echo" }, { id = "echo-slow", delay = 0.05, prefix = "slow echo: " }]
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import Option, ProviderSection

SECTION = ProviderSection(
    "echo",
    [
        Option("id", required=True, section=False),
        Option("prefix", default="echo: "),
        Option("delay", (int, float), default=0.0, minimum=0),
    ],
    id_from="id",
)


def build(options):
    from .model import EchoChatModel  # langchain_core is imported on first use only

    return EchoChatModel(
        model_name=options["id"], prefix=options["prefix"], delay=float(options["delay"])
    )


@hookimpl
def register_models(config, registry):
    SECTION.register_models(config, registry, build, "prefix", "delay")


@hookimpl
def validate_config(config):
    return SECTION.validate(config)
