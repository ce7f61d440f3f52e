"""Models served by Ollama, through its OpenAI-compatible /v1 endpoint (no key needed).

[default.models.ollama]
base_url = "http://localhost:11434/v1"   # the default
models = [{ model_name = "llama3.2" }, { model_name = "qwen2.5:7b", id = "qwen" }]
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
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


def build(options):
    return chat_openai(
        options, base_url=options["base_url"], api_key="ollama", model=options["model_name"]
    )


@hookimpl
def register_models(config, registry):
    SECTION.register_models(config, registry, build, "model_name", "base_url")


@hookimpl
def validate_config(config):
    return SECTION.validate(config)
