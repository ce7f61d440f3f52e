"""What every command shares: the global options, the loaded host, warnings and errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..config import SETTINGS_FILE, Config, load_config, user_config_dir
from ..errors import AiAssistantError
from ..host import Host, load_host
from ..masking import redact as redact_urls
from .output import warn

# When the CLI was imported: -v timings count from here (interpreter start-up comes before it).
PROCESS_START = time.perf_counter()

_OPTIONS = "ai_assistant.options"
_CONFIG = "ai_assistant.config"
_HOST = "ai_assistant.host"
_PLUGIN_COMMANDS = "ai_assistant.plugin_commands"


class GlobalOptions:
    """--settings, --env, --plugins-dir, -v and --strict, wherever they were given."""

    def __init__(self) -> None:
        self.settings: str | None = None
        self.env: str | None = None
        self.plugins_dir: list[str] = []
        self.verbose = False
        self.strict = False


def options(ctx: click.Context | None = None) -> GlobalOptions:
    root = (ctx or click.get_current_context()).find_root()
    return root.meta.setdefault(_OPTIONS, GlobalOptions())


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    opts = options(ctx)
    if param.name == "plugins_dir":
        opts.plugins_dir.extend(value)
    elif value not in (None, False):
        setattr(opts, param.name, value)
    return value


_GLOBAL_OPTIONS = [
    click.option(
        "--settings",
        metavar="PATH",
        expose_value=False,
        callback=_store,
        help="Settings file (default: the nearest ./settings.toml).",
    ),
    click.option(
        "--env",
        metavar="NAME",
        expose_value=False,
        callback=_store,
        help="Settings environment: development (default), production, ...",
    ),
    click.option(
        "--plugins-dir",
        metavar="DIR",
        multiple=True,
        expose_value=False,
        callback=_store,
        type=click.Path(exists=True, file_okay=False),
        help="Also load plugins from DIR (repeatable).",
    ),
    click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_store,
        help="Show tracebacks and details.",
    ),
    click.option(
        "--strict",
        is_flag=True,
        expose_value=False,
        callback=_store,
        help="Make any plugin failure an error.",
    ),
]


def global_options(command: Any) -> Any:
    """Add the global options to a command, so they work before or after the subcommand."""
    for option in reversed(_GLOBAL_OPTIONS):
        command = option(command)
    return command


def get_config(ctx: click.Context | None = None, check: bool = True, report: bool = True) -> Config:
    """The settings for this invocation, loaded once, with their warnings (a readable
    ``.secrets.toml``, an unset variable) on stderr unless ``report`` is false (for commands
    that show them themselves). Commands that need no model use this alone: no plugin is
    imported."""
    root = (ctx or click.get_current_context()).find_root()
    config = root.meta.get(_CONFIG)
    if config is None:
        opts = options(root)
        config = load_config(opts.settings, env=opts.env, check=check)
        root.meta[_CONFIG] = config
        if opts.verbose:
            click.echo(f"settings: {', '.join(map(str, config.files)) or 'none'}", err=True)
            for path in config.skipped:
                click.echo(f"settings: skipped {path} (not ai-assistant's)", err=True)
        if not report:
            return config
        for key, message in config.warnings:
            warn(f"{key}: {message}")
        if not config.files:
            warn(
                f"no settings file: looked for {SETTINGS_FILE} in {Path.cwd()} and its parents, "
                f"and in {user_config_dir()}; run `ai-assistant init` (this folder) or "
                "`ai-assistant init --user` (every folder)"
            )
    return config


def get_host(ctx: click.Context | None = None, report: bool = True, start: bool = True) -> Host:
    """The host for this invocation, loaded once. Plugin problems go to stderr, one line each
    (unless ``report`` is false, for commands that show them themselves); in strict mode they
    are an error. Unless ``start`` is false (``serve``: the app's lifespan starts it on the
    server's event loop), the plugins' startup hooks run now and their shutdown at the end."""
    root = (ctx or click.get_current_context()).find_root()
    host = root.meta.get(_HOST)
    if host is None:
        opts = options(root)
        host = load_host(
            config=get_config(root),
            plugins_dirs=opts.plugins_dir,
            strict=opts.strict or None,
        )
        root.meta[_HOST] = host
        if start:
            host.start_blocking()  # plugins' startup hooks, if any take part
            root.call_on_close(host.stop_blocking)
        if report:
            for line in host.plugins.messages():
                warn(line)
            host.check_strict()
    return host


def load_plugin_commands(ctx: click.Context, quiet: bool = False) -> dict[str, click.Command]:
    """Commands added by plugins' ``register_commands``; a name already taken is refused."""
    root = ctx.find_root()
    if _PLUGIN_COMMANDS not in root.meta:
        from . import BUILTIN_COMMANDS

        host = get_host(root, report=not quiet)
        commands: dict[str, click.Command] = {}

        def kwargs_for(name: str) -> dict[str, Any]:
            return {"cli": groups.setdefault(name, click.Group(name))}

        groups: dict[str, click.Group] = {}
        host.plugins.call_each("register_commands", kwargs_for)
        for plugin, group in groups.items():
            for name, command in group.commands.items():
                if name in BUILTIN_COMMANDS or name in commands:
                    problem = f"command {name!r} is already taken; not added"
                    host.plugins.plugins[plugin].problems.append(problem)
                    if not quiet:
                        warn(f"plugin {plugin!r}: {problem}")
                else:
                    commands[name] = command
        root.meta[_PLUGIN_COMMANDS] = commands
    return root.meta[_PLUGIN_COMMANDS]


def report_error(ctx: click.Context, exc: BaseException, unexpected: bool = False) -> None:
    """Print one clear error line (and a hint) to stderr; the traceback only with -v.
    Every known secret value is masked."""
    config: Config | None = ctx.find_root().meta.get(_CONFIG)
    redact = config.redact if config else redact_urls
    verbose = options(ctx).verbose
    if verbose:
        import traceback

        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    message = f"unexpected {type(exc).__name__}: {exc}" if unexpected else str(exc)
    click.echo(f"error: {redact(message)}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        click.echo(f"  hint: {redact(hint)}", err=True)
    if unexpected and not verbose:
        click.echo("  (run with -v to see the traceback)", err=True)


__all__ = [
    "AiAssistantError",
    "GlobalOptions",
    "get_config",
    "get_host",
    "global_options",
    "options",
]
