"""The ``ai-assistant`` command line: a thin layer over the host. Command groups are imported only
when invoked, and nothing heavy (provider SDKs, FastAPI) is imported to list or show things."""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any

import click

from ..errors import AiAssistantError
from .context import global_options, load_plugin_commands, options, report_error

BUILTIN_COMMANDS = {
    "models": "ai_assistant.cli.models:models",
    "embeddings": "ai_assistant.cli.embeddings:embeddings",
    "plugins": "ai_assistant.cli.plugins:plugins",
    "config": "ai_assistant.cli.config:config",
    "chat": "ai_assistant.cli.chat:chat",
    "conversations": "ai_assistant.cli.conversations:conversations",
    "serve": "ai_assistant.cli.serve:serve",
    "init": "ai_assistant.cli.init:init",
    "secrets": "ai_assistant.cli.secrets:secrets",
    "storage": "ai_assistant.cli.storage:storage",
    "tools": "ai_assistant.cli.tools:tools",
    "knowledge": "ai_assistant.cli.knowledge:knowledge",
}


class RootGroup(click.Group):
    """Built-in command groups load on demand; plugin commands come from ``register_commands``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(BUILTIN_COMMANDS)
        with contextlib.suppress(AiAssistantError):  # help works even with broken settings
            names.update(load_plugin_commands(ctx))
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in BUILTIN_COMMANDS:
            module, attr = BUILTIN_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return load_plugin_commands(ctx).get(name)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Click's own errors (a bad option, a missing argument) in the style of the host's:
        ``error: ...`` and a hint, on stderr."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.UsageError as exc:
            message = exc.format_message()
            click.echo(f"error: {message[:1].lower()}{message[1:]}", err=True)
            if exc.ctx is not None:
                click.echo(f"  hint: see `{exc.ctx.command_path} --help`", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            raise  # the reader went away (`| head`): click exits quietly
        except AiAssistantError as exc:
            report_error(ctx, exc)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: one clear line
            report_error(ctx, exc, unexpected=True)
        ctx.exit(1)


@click.group(
    name="ai-assistant", cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@global_options
@click.version_option(package_name="ai-assistant", prog_name="ai-assistant")
def cli() -> None:
    """ai-assistant: chat models from provider plugins, one CLI for all of them.

    Settings come from ./settings.toml (or --settings), .secrets.toml beside it, and
    AI_ASSISTANT_* environment variables. Start with `ai-assistant models list`.
    """


def main() -> None:
    cli.main(prog_name="ai-assistant")


__all__ = ["cli", "main", "options"]
