"""Models served by Ollama, through its OpenAI-compatible /v1 endpoint (no key needed).

[default.models.ollama]
base_url = "http://localhost:11434/v1"   # the default
models = [{ model_name = "llama3.2" }, { model_name = "qwen2.5:7b", id = "qwen" }]

Embeddings models come from a section of the same shape, through the same /v1 endpoint:

[default.embeddings.ollama]
models = [{ model_name = "nomic-embed-text" }, { model_name = "mxbai-embed-large", id = "mxbai" }]
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    EMBEDDINGS_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
    openai_embeddings,
)

DEFAULT_BASE_URL = "http://localhost:11434/v1"

SECTION = ProviderSection(
    "ollama",
    [
        Option("model_name", required=True, section=False),
        Option("base_url", default=DEFAULT_BASE_URL),
        *COMMON_OPTIONS,
    ],
)

EMBEDDINGS = ProviderSection(
    "ollama",
    [
        Option("model_name", required=True, section=False),
        Option("base_url", default=DEFAULT_BASE_URL),
        *EMBEDDINGS_OPTIONS,
    ],
    kind="embeddings",
)


def build(options):
    return chat_openai(
        options, base_url=options["base_url"], api_key="ollama", model=options["model_name"]
    )


def build_embeddings(options):
    return openai_embeddings(
        options, base_url=options["base_url"], api_key="ollama", model=options["model_name"]
    )


@hookimpl
def register_models(config, registry):
    SECTION.register(config, registry, build, "model_name", "base_url")


@hookimpl
def register_embeddings(config, registry):
    EMBEDDINGS.register(config, registry, build_embeddings, "model_name", "base_url", "dimension")


@hookimpl
def validate_config(config):
    return [*SECTION.validate(config), *EMBEDDINGS.validate(config)]
