"""Models behind any OpenAI-compatible endpoint: Azure AI Foundry's /openai/v1/, OpenAI, vLLM,
llama.cpp's server, LM Studio. The Python answer to the model-provider guide's example.

    [default.models.openai_compatible]
    api_key = "..."            # better in .secrets.toml; a model may set its own
    timeout = 60
    models = [
      { model_name = "gpt-4o-mini", endpoint = "https://eastus.example.azure.com/openai/v1/" },
      { model_name = "gpt-5-mini", endpoint = "https://api.openai.com/v1", id = "gpt-5" },
    ]
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
    is_loopback_url,
)

SECTION = ProviderSection(
    "openai_compatible",
    [
        Option("model_name", required=True, section=False),
        Option("endpoint", required=True),
        Option("api_key", secret=True),
        *COMMON_OPTIONS,
    ],
    secret_optional=lambda options: is_loopback_url(options.get("endpoint")),
)


def build(options):
    return chat_openai(
        options,
        base_url=options["endpoint"],
        api_key=options.get("api_key"),
        model=options["model_name"],
    )


@hookimpl
def register_models(config, registry):
    SECTION.register_models(
        config, registry, build, "model_name", "endpoint", "timeout", "max_retries"
    )


@hookimpl
def validate_config(config):
    return SECTION.validate(config)
