"""``ai-assistant plugins new``: write a ready-to-edit provider plugin file."""

from __future__ import annotations

import re
from pathlib import Path

from .config import env_var_name
from .errors import AiAssistantError
from .plugins import bundled_plugins_dir

_NAME = re.compile(r"[a-z][a-z0-9_]*")

TEMPLATE = '''\
"""{name}: a provider plugin for ai-assistant.

Configure its models in settings.toml:

    [default.models.{name}]
    models = [
      {{ model_name = "my-model", endpoint = "http://localhost:8000/v1" }},
    ]

and its key in .secrets.toml (or export {env_var}):

    [default.models.{name}]
    api_key = "..."

Then `ai-assistant models list` shows its models, attributed to {name}.
"""

from ai_assistant import hookimpl

SECTION = "models.{name}"


def build(model_name, endpoint, api_key):
    """The model factory, called on first use: import the SDK here, never at the top of the
    file, so that listing models stays fast."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=model_name, base_url=endpoint, api_key=api_key or "not-needed")


@hookimpl
def register_models(config, registry):
    section = config.get(SECTION) or {{}}
    for m in section.get("models", []):
        api_key = m.get("api_key") or section.get("api_key")
        registry.register(
            m.get("id") or m["model_name"],
            factory=lambda m=m, api_key=api_key: build(m["model_name"], m["endpoint"], api_key),
            missing_secrets=[] if api_key else [f"{{SECTION}}.api_key"],
            model_name=m["model_name"],
            endpoint=m["endpoint"],
        )
'''


def check_plugin_name(name: str) -> None:
    """A plugin name is a Python identifier in lower case: it names the file and its section."""
    if not _NAME.fullmatch(name):
        suggestion = re.sub(r"[^a-z0-9_]", "_", name.lower()).lstrip("_0123456789") or "my_provider"
        raise AiAssistantError(
            f"invalid plugin name {name!r}: use lower case letters, digits and underscores",
            hint=f"try `ai-assistant plugins new {suggestion}`",
        )


def write_provider_plugin(name: str, directory: Path, force: bool = False) -> Path:
    """Write ``<directory>/<name>.py`` from the template; refuse a bad or taken name."""
    check_plugin_name(name)
    bundled = bundled_plugins_dir()
    if directory.resolve() != bundled and (
        (bundled / f"{name}.py").exists() or (bundled / name).is_dir()
    ):
        raise AiAssistantError(
            f"a bundled plugin is already named {name!r}", hint="choose another name"
        )
    target = directory / f"{name}.py"
    if (target.exists() or (directory / name).is_dir()) and not force:
        raise AiAssistantError(
            f"{target} already exists", hint="choose another name, or pass --force to overwrite it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(TEMPLATE.format(name=name, env_var=env_var_name(f"models.{name}.api_key")))
    return target
