"""Azure OpenAI deployments, through LangChain's AzureChatOpenAI.

[default.models.azure_openai]
endpoint = "https://my-resource.openai.azure.com/"
api_version = "2024-10-21"
api_key = "..."            # better in .secrets.toml
models = [{ deployment = "gpt-4o-mini" }, { deployment = "gpt-4o", id = "azure-gpt-4o" }]
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
)

SECTION = ProviderSection(
    "azure_openai",
    [
        Option("deployment", required=True, section=False),
        Option("model_name", section=False),
        Option("endpoint", required=True),
        Option("api_version", required=True, default="2024-10-21"),
        Option("api_key", secret=True),
        *COMMON_OPTIONS,
    ],
    id_from="deployment",
)


def build(options):
    return chat_openai(
        options,
        base_url=options["endpoint"],
        api_key=options.get("api_key"),
        azure=True,
        azure_deployment=options["deployment"],
        api_version=options["api_version"],
    )


@hookimpl
def register_models(config, registry):
    SECTION.register_models(
        config, registry, build, "deployment", "model_name", "endpoint", "api_version"
    )


@hookimpl
def validate_config(config):
    return SECTION.validate(config)
