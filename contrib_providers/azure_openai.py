"""Azure OpenAI deployments, through LangChain's AzureChatOpenAI.

[default.models.azure_openai]
endpoint = "https://my-resource.openai.azure.com/"
api_version = "2024-10-21"
api_key = "..."            # better in .secrets.toml
models = [{ deployment = "gpt-4o-mini" }, { deployment = "gpt-4o", id = "azure-gpt-4o" }]

Embeddings deployments come from a section of the same shape (AzureOpenAIEmbeddings):

[default.embeddings.azure_openai]
endpoint = "https://my-resource.openai.azure.com/"
models = [{ deployment = "text-embedding-3-small", dimension = 512 }]

An embeddings deployment's key is its own ``api_key`` (on the entry or the embeddings section);
when it has none it uses ``[default.models.azure_openai] api_key``, the key of the chat
deployments, usually the same resource. ``dimension`` is sent as the API's ``dimensions``
(text-embedding-3-* only). Texts go as plain strings unless ``check_embedding_ctx_length =
true`` (which needs tiktoken's encodings, downloaded from the internet on first use).
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

# where a deployment is and how to reach it: the same for chat and embeddings models
CONNECTION = [
    Option("deployment", required=True, section=False),
    Option("model_name", section=False),
    Option("endpoint", required=True),
    Option("api_version", required=True, default="2024-10-21"),
    Option("api_key", secret=True),
]

SECTION = ProviderSection("azure_openai", [*CONNECTION, *COMMON_OPTIONS], id_from="deployment")

EMBEDDINGS = ProviderSection(
    "azure_openai",
    [*CONNECTION, *EMBEDDINGS_OPTIONS],
    id_from="deployment",
    kind="embeddings",
    secrets_from="models",
)


def connection(options):
    """How to reach a deployment: the same for its chat and embeddings clients."""
    return {
        "base_url": options["endpoint"],
        "api_key": options.get("api_key"),
        "azure": True,
        "azure_deployment": options["deployment"],
        "api_version": options["api_version"],
    }


def build(options):
    return chat_openai(options, **connection(options))


def build_embeddings(options):
    extra = {"model": options["model_name"]} if options.get("model_name") else {}
    return openai_embeddings(options, **connection(options), **extra)


@hookimpl
def register_models(config, registry):
    SECTION.register(config, registry, build, "deployment", "model_name", "endpoint", "api_version")


@hookimpl
def register_embeddings(config, registry):
    EMBEDDINGS.register(
        config,
        registry,
        build_embeddings,
        "deployment",
        "model_name",
        "endpoint",
        "api_version",
        "dimension",
    )


@hookimpl
def validate_config(config):
    return [*SECTION.validate(config), *EMBEDDINGS.validate(config)]
