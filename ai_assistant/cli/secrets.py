"""`ai-assistant secrets`: set, list and unset keys in .secrets.toml without ever showing one."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from ..config import (
    ENVVAR_PREFIX,
    SECRETS_FILE,
    SETTINGS_FILE,
    Config,
    env_var_name,
    user_config_dir,
)
from ..errors import AiAssistantError, did_you_mean
from ..masking import is_secret_key
from ..secrets_file import DEFAULT_TABLE, check_key_path, keys_in, set_secret, unset_secret
from .context import get_config, global_options, options
from .output import echo_json, format_options, render_table, shown_path, warn

EXAMPLE = "models.openai_compatible.api_key"


def _secrets_path(config: Config, user: bool = False) -> Path:
    """The ``.secrets.toml`` beside the settings in use (or the user-level ones); refused when
    there are none, since a secrets file with no settings file beside it is never read."""
    if user:
        folder = user_config_dir()
        if not (folder / SETTINGS_FILE).is_file():
            raise AiAssistantError(
                f"no user-level settings ({folder / SETTINGS_FILE}), so a .secrets.toml there "
                "would not be read",
                hint="run `ai-assistant init --user` first",
            )
        return folder / SECRETS_FILE
    if not any(path.parent == config.root for path in config.files):
        raise AiAssistantError(
            "no settings file is in use, so a .secrets.toml here would not be read",
            hint="run `ai-assistant init` (this folder) or `ai-assistant init --user` (every "
            "folder) first, or pass --settings PATH",
        )
    return config.root / SECRETS_FILE


def _table() -> str:
    """``[default]``, or the environment named with ``--env``."""
    return options().env or DEFAULT_TABLE


def _is_secret_path(key_path: str) -> bool:
    return any(is_secret_key(part) for part in key_path.split("."))


def _read_value(key_path: str) -> str:
    """The value from a hidden prompt on a terminal, else all of stdin less one newline."""
    stdin = sys.stdin
    if stdin.isatty():
        value = click.prompt(
            f"value for {key_path}", hide_input=True, default="", show_default=False
        )
    else:
        value = stdin.read()
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    if not value.strip():
        raise AiAssistantError(
            f"empty value for {key_path}: nothing written",
            hint=f"type the value at the prompt, or pipe it: "
            f'printf %s "$KEY" | ai-assistant secrets set {key_path}',
        )
    return value


@click.group(invoke_without_command=True)
@format_options("table", "json")
@global_options
@click.pass_context
def secrets(ctx: click.Context, fmt: str) -> None:
    """Set, list and unset secrets in the .secrets.toml beside the settings in use (no
    command: list them).

    Values are never shown: `set` reads one from a hidden prompt (or stdin), `list` shows
    only which keys are set and where."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command, fmt=fmt)


_USER = click.option(
    "--user",
    is_flag=True,
    help="The user-level .secrets.toml ($XDG_CONFIG_HOME/ai-assistant), used in every folder.",
)


@secrets.command("set")
@click.argument("key_path", metavar="KEY_PATH")
@_USER
@global_options
def set_command(key_path: str, user: bool) -> None:
    """Set KEY_PATH (like models.openai_compatible.api_key) in the .secrets.toml beside the
    settings in use (--user: the user-level one).

    The value is read from a hidden prompt on a terminal, or from stdin
    (`printf %s "$KEY" | ai-assistant secrets set KEY_PATH`). It goes under [default], or
    under the environment given with --env; the file's other keys and comments are kept and
    its mode is 0600."""
    check_key_path(key_path)  # before the prompt: a typo is the likelier mistake
    config = get_config(check=False)  # an invalid key is what this may be fixing
    path = _secrets_path(config, user)
    value = _read_value(key_path)
    replaced = set_secret(path, key_path, value, env=_table())
    where = shown_path(path) + ("" if _table() == DEFAULT_TABLE else f" [{_table()}]")
    click.echo(f"{'replaced' if replaced else 'set'} {key_path} in {where} (mode 600)")
    for note in _notes(config, key_path):
        warn(note)


def _notes(config: Config, key_path: str) -> list[str]:
    """What could keep the key just set from taking effect."""
    notes = []
    parts = key_path.split(".")
    if not _is_secret_path(key_path):
        notes.append(
            f"{key_path} does not look like a secret; it is kept in {SECRETS_FILE} and "
            "masked all the same"
        )
    models = config.get("models")
    if parts[0].lower() == "models" and len(parts) > 2 and isinstance(models, Mapping):
        sections = [str(k).lower() for k in models]
        if parts[1].lower() not in sections:
            notes.append(
                f"the settings have no [default.models.{parts[1]}] section (yet), so nothing "
                f"reads this key{did_you_mean(parts[1].lower(), sections)}"
            )
    variable = env_var_name(key_path)
    if os.environ.get(variable) is not None:
        notes.append(f"environment variable {variable} is set, and wins over {SECRETS_FILE}")
    return notes


def secret_keys(config: Config) -> list[dict[str, Any]]:
    """Every secret set, and where: each key in a ``.secrets.toml`` the settings read, each
    secret-named key in their other files, and each ``AI_ASSISTANT_*`` variable for a
    secret-named key. Never a value."""
    found: list[dict[str, Any]] = []
    for path in config.files:
        is_secrets = path.name == SECRETS_FILE or path.name.startswith(".secrets.")
        for env, key_path, variables in keys_in(path):
            if is_secrets or _is_secret_path(key_path):
                found.append(
                    {
                        "key": key_path,
                        "file": str(path),
                        "env": env,
                        "variable": None,
                        "from_variables": variables,  # @format {env[NAME]}
                        "unset_variables": [v for v in variables if v not in os.environ],
                    }
                )
    prefix = ENVVAR_PREFIX + "_"
    for name, value in sorted(os.environ.items()):
        if not name.startswith(prefix) or name == f"{prefix}ENV" or value == "":
            continue
        key_path = name[len(prefix) :].lower().replace("__", ".")
        if _is_secret_path(key_path):
            found.append(
                {
                    "key": key_path,
                    "file": None,
                    "env": None,
                    "variable": name,
                    "from_variables": [],
                    "unset_variables": [],
                }
            )
    return found


@secrets.command("list")
@format_options("table", "json")
@global_options
def list_command(fmt: str = "table") -> None:
    """Which secret keys are set, and in which file or environment variable (no values)."""
    config = get_config(check=False)
    found = secret_keys(config)
    if fmt == "json":
        echo_json(found)
        return
    if not found:
        where = shown_path(config.root / SECRETS_FILE)
        click.echo(
            f"no secrets set: `ai-assistant secrets set {EXAMPLE}` writes one into {where}",
            err=True,
        )
        return
    rows = []
    for item in found:
        if item["variable"]:
            source = f"environment variable {item['variable']}"
        else:
            source = shown_path(Path(item["file"]))
            if item["env"] != DEFAULT_TABLE:
                source += f" [{item['env']}]"
            if item["from_variables"]:
                names = [
                    f"${v}" + (" (not set)" if v in item["unset_variables"] else "")
                    for v in item["from_variables"]
                ]
                source += f" from {', '.join(names)}"
        rows.append((item["key"], source))
    click.echo(render_table(["KEY", "SET IN"], rows))


@secrets.command("unset")
@click.argument("key_path", metavar="KEY_PATH")
@_USER
@global_options
def unset_command(key_path: str, user: bool) -> None:
    """Remove KEY_PATH from .secrets.toml (and the tables it leaves empty)."""
    check_key_path(key_path)
    config = get_config(check=False)
    path = _secrets_path(config, user)
    table = _table()
    if not unset_secret(path, key_path, env=table):
        elsewhere = [
            item["variable"] or shown_path(Path(item["file"])) + f" [{item['env']}]"
            for item in secret_keys(config)
            if item["key"].lower() == key_path.lower()
        ]
        raise AiAssistantError(
            f"{key_path} is not set under [{table}] in {shown_path(path)}",
            hint=f"it is set in {', '.join(elsewhere)}"
            if elsewhere
            else "run `ai-assistant secrets list` to see the keys set",
        )
    click.echo(f"removed {key_path} from {shown_path(path)}")
