"""Models behind any OpenAI-compatible endpoint: Azure AI Foundry's /openai/v1/, OpenAI, vLLM,
llama.cpp's server, LM Studio. The Python answer to the model-provider guide's example.

    [default.models.openai_compatible]
    api_key = "..."            # better in .secrets.toml; a model may set its own
    timeout = 60
    models = [
      { model_name = "gpt-4o-mini", endpoint = "https://eastus.example.azure.com/openai/v1/" },
      { model_name = "gpt-5-mini", endpoint = "https://api.openai.com/v1", id = "gpt-5" },
    ]

Embeddings models come from a section of the same shape (POST <endpoint>/embeddings):

    [default.embeddings.openai_compatible]
    endpoint = "https://api.openai.com/v1"     # the default for every entry
    models = [
      { model_name = "text-embedding-3-small" },
      { model_name = "text-embedding-3-large", id = "large-512", dimension = 512 },
      { model_name = "nomic-embed-text", endpoint = "http://127.0.0.1:8080/v1", id = "local" },
    ]

An embeddings model's key is its own ``api_key`` (on the entry or on the embeddings section);
when it has none it uses the key set for this provider's chat models,
``[default.models.openai_compatible] api_key``, so one key set with
``ai-assistant secrets set models.openai_compatible.api_key`` serves both. A loopback endpoint
needs no key. ``dimension`` asks models that can shorten their vectors (text-embedding-3-*) for
that length. Texts go as plain strings, so a local server works offline; on api.openai.com they
go as tokens, split when longer than the model's context (``check_embedding_ctx_length``).
"""

from urllib.parse import urlsplit

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    EMBEDDINGS_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
    is_loopback_url,
    openai_embeddings,
)

# where a model is and how to reach it: the same for chat and embeddings models
CONNECTION = [
    Option("model_name", required=True, section=False),
    Option("endpoint", required=True),
    Option("api_key", secret=True),
]


def _keyless(options):
    return is_loopback_url(options.get("endpoint"))


SECTION = ProviderSection(
    "openai_compatible", [*CONNECTION, *COMMON_OPTIONS], secret_optional=_keyless
)

EMBEDDINGS = ProviderSection(
    "openai_compatible",
    [*CONNECTION, *EMBEDDINGS_OPTIONS],
    secret_optional=_keyless,
    kind="embeddings",
    secrets_from="models",
)


def connection(options):
    """Where a model is and how to reach it: the same for chat and embeddings clients."""
    return {
        "base_url": options["endpoint"],
        "api_key": options.get("api_key"),
        "model": options["model_name"],
    }


def build(options):
    return chat_openai(options, **connection(options))


def build_embeddings(options):
    # (only OpenAI's own service gets token arrays; other servers take plain text)
    hosted = urlsplit(options["endpoint"]).hostname == "api.openai.com"
    return openai_embeddings(options, **connection(options), tokens_by_default=hosted)


@hookimpl
def register_models(config, registry):
    SECTION.register(config, registry, build, "model_name", "endpoint", "timeout", "max_retries")


@hookimpl
def register_embeddings(config, registry):
    EMBEDDINGS.register(
        config, registry, build_embeddings, "model_name", "endpoint", "dimension", "batch_size"
    )


@hookimpl
def validate_config(config):
    return [*SECTION.validate(config), *EMBEDDINGS.validate(config)]
