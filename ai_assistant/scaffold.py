"""Starter files: ``ai-assistant init`` (settings) and ``ai-assistant plugins new`` (a plugin)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .config import LOCAL_FILE, SECRETS_FILE, SETTINGS_FILE, env_var_name
from .errors import AiAssistantError
from .plugins import bundled_plugins_dir

_NAME = re.compile(r"[a-z][a-z0-9_]*")

PLUGINS_DIR = "plugins"

# The starter settings.toml. It loads and validates as it is (the offline echo model is ready);
# each provider section is commented out: uncomment one, set its key, and its models appear.
# tests/test_first_run.py uncomments every "# [default.models." block and validates the result.
SETTINGS_TEMPLATE = """\
# ai-assistant settings, written by `ai-assistant init`.
#
# Layers, later wins: this file < .secrets.toml < settings.local.toml < AI_ASSISTANT_*
# environment variables (AI_ASSISTANT_CHAT__DEFAULT_MODEL=echo: `__` between nested keys).
# [default] applies everywhere; [development] (the default environment) and [production] add
# to it: pick one with --env NAME or AI_ASSISTANT_ENV. Every table sits under an environment,
# like [default.models.x] (a [models.x] table would be ignored).
#
# Keys never go in this file. Put them in .secrets.toml (mode 0600, kept out of git) with
#     ai-assistant secrets set models.openai_compatible.api_key
# which asks for the value without showing it (or reads it from stdin), and see which are set
# with `ai-assistant secrets list`. Check everything with `ai-assistant config validate`.

[default.plugins]
dirs = ["plugins"]       # your own plugins, relative to this file (`ai-assistant plugins new`)
# enabled = []           # if not empty, only these plugins load
# disabled = ["ollama"]  # these plugins are never imported
# strict = false         # true: any plugin failure is an error

# An offline model that answers "echo: <your message>": works with no network and no key.
[default.models.echo]
models = [{ id = "echo" }]

# `ai-assistant chat` without -m uses this model.
[default.chat]
default_model = "echo"
# When a model fails before answering (connection, timeout, 429, 5xx), try these in order:
# fallbacks = { "gpt-4o-mini" = ["echo"] }

# Providers. Uncomment a section, edit it, and set its key (if it needs one) with
# `ai-assistant secrets set models.<provider>.api_key`; `ai-assistant models list` then shows
# its models. Every key but `models` may sit on the section (the default for all its models) or
# on one model entry (that model only); `id` renames a model. A model whose key is not set is
# listed as `missing secret`, with how to fix it.

# Any OpenAI-compatible endpoint: Azure AI Foundry (the Backstage model-provider guide's
# example, no code needed), OpenAI (endpoint = "https://api.openai.com/v1"), vLLM, llama.cpp,
# LM Studio.
#   endpoint      the API's base URL (Foundry: https://<resource>.../openai/v1/)
#   api_key       secret, one for the section or one per model:
#                 `ai-assistant secrets set models.openai_compatible.api_key`, or from a
#                 variable like the guide's ${AZURE_AI_API_KEY}:
#                 api_key = "@format {env[AZURE_AI_API_KEY]}"
#                 Not needed for a loopback endpoint (localhost, 127.x, [::1]).
#   model_name    the upstream model (per model); id = "..." lists it under another name
#   timeout (s), max_retries, temperature, max_tokens, default_headers = { ... }: optional
# [default.models.openai_compatible]
# endpoint = "https://eastus.api.cognitive.microsoft.com/openai/v1/"
# timeout = 60
# max_retries = 2
# models = [
#   { model_name = "gpt-4o-mini" },
#   { model_name = "gpt-5-mini" },
#   # a local server (llama.cpp, vLLM): its own endpoint, no key
#   { model_name = "qwen2.5", id = "local-qwen", endpoint = "http://localhost:8000/v1" },
# ]

# Azure OpenAI deployments (LangChain's AzureChatOpenAI).
#   endpoint      https://<resource>.openai.azure.com/
#   api_version   default "2024-10-21"
#   api_key       secret: `ai-assistant secrets set models.azure_openai.api_key`
#   deployment    the deployment name (per model); id = "..." lists it under another name
# [default.models.azure_openai]
# endpoint = "https://my-resource.openai.azure.com/"
# api_version = "2024-10-21"
# models = [{ deployment = "gpt-4o-mini" }, { deployment = "gpt-4o", id = "azure-gpt-4o" }]

# Models served by Ollama (https://ollama.com) through its OpenAI-compatible API: no key.
#   base_url      default "http://localhost:11434/v1"
#   model_name    as `ollama list` shows it (per model)
# [default.models.ollama]
# models = [{ model_name = "llama3.2" }, { model_name = "qwen2.5:7b", id = "qwen" }]

# Sent with every chat: a system prompt, and text put before/after each user message.
# [default.prompt]
# system = "You are a concise, helpful assistant for platform engineers."

# Chat history (SQLite); the default is ~/.local/share/ai-assistant/history.db.
# [default.storage]
# path = "history.db"    # relative to this file

# `ai-assistant serve`. Its API keys are secrets:
# `ai-assistant secrets set server.api_keys.alice` (with none, it listens on loopback only).
# [default.server]
# host = "127.0.0.1"
# port = 8080

# [production.plugins]
# strict = true
"""


class StarterFiles:
    """What ``write_starter_settings`` did, for the command to report."""

    def __init__(self, settings: Path, plugins: Path, plugins_created: bool) -> None:
        self.settings = settings
        self.plugins = plugins
        self.plugins_created = plugins_created
        self.gitignore: Path | None = None
        self.gitignore_added: list[str] = []


def write_starter_settings(directory: Path) -> StarterFiles:
    """Write ``settings.toml`` (``SETTINGS_TEMPLATE``) and an empty ``plugins/`` folder into
    ``directory``, and inside a git work tree keep secrets out of git. Never overwrites."""
    settings = directory / SETTINGS_FILE
    if settings.exists() or settings.is_symlink():
        raise AiAssistantError(
            f"{settings} already exists: not overwritten",
            hint="edit it (`ai-assistant config validate` checks it), or move it away and run "
            "`ai-assistant init` again for a fresh one",
        )
    plugins = directory / PLUGINS_DIR
    if plugins.exists() and not plugins.is_dir():
        raise AiAssistantError(
            f"{plugins} exists and is not a folder",
            hint="move it away, or run `ai-assistant init` in another folder",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with settings.open("x", encoding="utf-8") as fh:  # "x": never over a file just made
            fh.write(SETTINGS_TEMPLATE)
        plugins_created = not plugins.exists()
        plugins.mkdir(exist_ok=True)
    except FileExistsError:
        raise AiAssistantError(f"{settings} already exists: not overwritten") from None
    except OSError as exc:
        raise AiAssistantError(
            f"cannot write {exc.filename or directory}: {exc.strerror}",
            hint="run it in a folder you can write to",
        ) from None
    result = StarterFiles(settings, plugins, plugins_created)
    top = git_work_tree(directory)
    if top is not None:
        result.gitignore = top / ".gitignore"
        result.gitignore_added = ensure_ignored(result.gitignore, [SECRETS_FILE, LOCAL_FILE])
    return result


def git_work_tree(directory: Path) -> Path | None:
    """The top folder of the git work tree holding ``directory``, or None: asked of git, or
    found by walking up to a ``.git`` when git is not installed."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        for folder in (directory.resolve(), *directory.resolve().parents):
            if (folder / ".git").exists():
                return folder
        return None
    top = done.stdout.strip()
    return Path(top) if done.returncode == 0 and top else None


def ensure_ignored(gitignore: Path, names: list[str]) -> list[str]:
    """Append to ``gitignore`` each of ``names`` it does not already list; the names added."""
    try:
        text = gitignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    listed = {line.strip() for line in text.splitlines()}
    missing = [n for n in names if not listed & {n, f"/{n}", f"**/{n}"}]
    if missing:
        with gitignore.open("a", encoding="utf-8") as fh:
            if text and not text.endswith("\n"):
                fh.write("\n")
            fh.write("".join(f"{n}\n" for n in missing))
    return missing


PLUGIN_TEMPLATE = '''\
"""{name}: a provider plugin for ai-assistant.

Configure its models in settings.toml. Every key but `models` may sit on the
section (the default for all its models) or on one model entry (that model only):

    [default.models.{name}]
    endpoint = "https://api.example.com/v1"
    timeout = 60
    models = [
      {{ model_name = "my-model" }},
      {{ model_name = "mine", endpoint = "http://localhost:8000/v1", id = "local" }},
    ]

and its key in .secrets.toml with

    ai-assistant secrets set models.{name}.api_key

or the environment variable {env_var}.
Until it is set, `ai-assistant models list` shows each model that needs it as
`missing secret`; one on a loopback endpoint (localhost, 127.x, [::1]) needs none.
`ai-assistant config validate` checks the section (validate_config below).

The helpers come from ai_assistant.provider_kit: ProviderSection reads the
section, lays each model's own keys over the section's, reports a broken entry
by its key path, and lists unset secrets; chat_openai builds a LangChain chat
model for an OpenAI-protocol endpoint. For another SDK, write your own build().
"""

from ai_assistant import hookimpl
from ai_assistant.provider_kit import (
    COMMON_OPTIONS,
    Option,
    ProviderSection,
    chat_openai,
    is_loopback_url,
)

# Option(name, types, required=, secret=, section=, per_model=, default=, minimum=):
# section=False means on a model entry only, per_model=False on the section only.
SECTION = ProviderSection(
    "{name}",
    [
        Option("model_name", required=True, section=False),
        Option("endpoint", required=True),
        # unset: the model is listed as `missing secret` (see secret_optional)
        Option("api_key", secret=True),
        # id, timeout, max_retries, default_headers, temperature, max_tokens, ...
        *COMMON_OPTIONS,
    ],
    # a model that runs without its secret: here, one on a local server
    secret_optional=lambda options: is_loopback_url(options.get("endpoint")),
)


def build(options):
    """The model factory, called on first use with the model's merged settings.
    Import an SDK here, never at the top of the file: listing models stays fast."""
    return chat_openai(
        options,
        base_url=options["endpoint"],
        api_key=options.get("api_key"),
        model=options["model_name"],
    )


@hookimpl
def register_models(config, registry):
    # every usable model, by its id; `models list` shows the fields named last
    SECTION.register_models(config, registry, build, "model_name", "endpoint")


@hookimpl
def validate_config(config):
    """Problems for `ai-assistant config validate`: (key path, message) pairs."""
    # types, required keys, unknown keys (with a guess)
    problems = SECTION.validate(config)
    # and checks of your own
    for entry in SECTION.read(config):
        if not str(entry.options["endpoint"]).startswith(("http://", "https://")):
            message = f"model {{entry.id!r}}: endpoint must be an http(s) URL"
            problems.append((f"{{SECTION.path}}.models", message))
    return problems
'''


def check_plugin_name(name: str) -> None:
    """A plugin name is a Python identifier in lower case: it names the file and its section."""
    if not _NAME.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9_]", "_", name.lower()).lstrip("_0123456789") or "my_provider"
        raise AiAssistantError(
            f"invalid plugin name {name!r}: use lower case letters, digits and underscores",
            hint=f"try `ai-assistant plugins new {suggestion}`",
        )


def installed_package_dir(directory: Path) -> Path | None:
    """The installed package folder (``ai_assistant/`` or the bundled ``contrib_providers/``)
    that ``directory`` is in, or None. A plugin written there would load in every project on the
    machine, and be lost on the next install."""
    import ai_assistant

    target = directory.resolve()
    for package in (Path(ai_assistant.__file__).resolve().parent, bundled_plugins_dir()):
        if target == package or package in target.parents:
            return package
    return None


def write_provider_plugin(name: str, directory: Path, force: bool = False) -> Path:
    """Write ``<directory>/<name>.py`` from the template; refuse a bad or taken name, and any
    folder of the installed package."""
    check_plugin_name(name)
    package = installed_package_dir(directory)
    if package is not None:
        raise AiAssistantError(
            f"{directory} is inside the installed package ({package}): not writing there",
            hint="pass --dir DIR, or name a plugins directory in settings.toml: "
            '[default.plugins] dirs = ["plugins"] (`ai-assistant init` writes one)',
        )
    bundled = bundled_plugins_dir()
    if (bundled / f"{name}.py").exists() or (bundled / name).is_dir():
        raise AiAssistantError(
            f"a bundled plugin is already named {name!r}", hint="choose another name"
        )
    target = directory / f"{name}.py"
    if (target.exists() or (directory / name).is_dir()) and not force:
        raise AiAssistantError(
            f"{target} already exists", hint="choose another name, or pass --force to overwrite it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(
        PLUGIN_TEMPLATE.format(name=name, env_var=env_var_name(f"models.{name}.api_key")),
        encoding="utf-8",
    )
    return target
