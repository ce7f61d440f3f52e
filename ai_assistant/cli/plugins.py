"""`ai-assistant plugins`: see what loaded from where, and scaffold a new provider plugin."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import load_config
from ..errors import PluginError
from ..scaffold import check_plugin_name, write_provider_plugin
from .context import get_host, global_options, load_plugin_commands, options
from .output import echo_json, render_table, warn


def _where(location: str) -> str:
    path = Path(location)
    if not path.is_absolute():
        return location  # an entry point's module:attr
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return location


@click.group()
@global_options
def plugins() -> None:
    """List plugins, or write a new provider plugin."""


@plugins.command("list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@global_options
def list_plugins(fmt: str) -> None:
    """Every plugin found: source, version, hooks, status and why it failed."""
    host = get_host(report=False)
    load_plugin_commands(click.get_current_context(), quiet=True)  # so their problems show too
    report = host.plugins.report
    if fmt == "json":
        echo_json([info.as_dict() for info in report])
    else:
        rows = []
        for info in report:
            source = (
                f"entry point {info.location} ({info.distribution})"
                if info.source == "entry point"
                else _where(info.location)
            )
            notes = [info.reason] if info.reason else []
            notes += info.problems
            rows.append(
                (
                    info.name,
                    source,
                    info.version or "",
                    ",".join(info.hooks) or "-",
                    info.status,
                    "" if info.load_seconds is None else f"{info.load_seconds * 1000:.0f} ms",
                    "; ".join(notes),
                )
            )
        headers = ["NAME", "SOURCE", "VERSION", "HOOKS", "STATUS", "LOAD", "REASON"]
        click.echo(render_table(headers, rows))
    for key, message in host.plugins.warnings:
        warn(f"{key}: {message}")
    try:
        host.check_strict()
    except PluginError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from None


@plugins.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write it (default: the first plugins directory).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@global_options
def new_plugin(name: str, directory: Path | None, force: bool) -> None:
    """Write NAME.py, a provider plugin ready to edit, into the first plugins directory."""
    opts = options()
    check_plugin_name(name)  # before reading settings: a typo in the name is the likelier error
    if directory is None:
        if opts.plugins_dir:
            directory = Path(opts.plugins_dir[0])
        else:
            dirs = load_config(opts.settings, env=opts.env).plugin_dirs()
            if not dirs:
                raise click.UsageError(
                    "the settings name no plugins directory: pass --dir DIR, or add "
                    'dirs = ["plugins"] under [default.plugins] in settings.toml'
                )
            directory = dirs[0]
    path = write_provider_plugin(name, directory, force=force)
    click.echo(f"wrote {_where(str(path.resolve()))}")
    click.echo(
        f"next: add a [default.models.{name}] section to settings.toml (see the file's "
        "docstring), then run `ai-assistant models list`"
    )
