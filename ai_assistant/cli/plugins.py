"""`ai-assistant plugins`: see what loaded from where, and scaffold a new provider plugin."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import AiAssistantError, PluginError
from ..scaffold import check_plugin_name, installed_package_dir, write_provider_plugin
from .context import get_config, get_host, global_options, load_plugin_commands, options
from .output import echo_json, format_options, render_table, shown_path, warn


@click.group(invoke_without_command=True)
@format_options("table", "json")
@global_options
@click.pass_context
def plugins(ctx: click.Context, fmt: str) -> None:
    """List plugins, or write a new provider plugin (no command: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_plugins, fmt=fmt)


@plugins.command("list")
@format_options("table", "json")
@global_options
def list_plugins(fmt: str = "table") -> None:
    """Every plugin found: source, version, hooks, status and why it failed."""
    host = get_host(report=False)
    load_plugin_commands(click.get_current_context(), quiet=True)  # so their problems show too
    report = host.plugins.report
    if fmt == "json":
        echo_json(
            [{**info.as_dict(), "provides": host.contributions(info.name)} for info in report]
        )
    else:
        rows = []
        for info in report:
            source = (
                f"entry point {info.location} ({info.distribution})"
                if info.source == "entry point"
                else shown_path(info.location)
            )
            notes = [info.reason] if info.reason else []
            notes += info.problems
            rows.append(
                (
                    info.name,
                    source,
                    info.version or "",
                    _provides(host.contributions(info.name), info.hooks),
                    info.status,
                    "" if info.load_seconds is None else f"{info.load_seconds * 1000:.0f} ms",
                    "; ".join(notes),
                )
            )
        headers = ["NAME", "SOURCE", "VERSION", "PROVIDES", "STATUS", "LOAD", "REASON"]
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
    help="Where to write it (default: the first plugins directory the settings name).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@global_options
def new_plugin(name: str, directory: Path | None, force: bool) -> None:
    """Write NAME.py, a provider plugin ready to edit, into the first plugins directory.

    The plugin uses ai_assistant.provider_kit: section options with per-model overrides, a
    secret api_key (a model without one is listed as `missing secret`, unless its endpoint is
    on this machine) and a validate_config hook. It loads as written. Nothing is ever written
    into the installed package."""
    opts = options()
    check_plugin_name(name)  # before reading settings: a typo in the name is the likelier error
    if directory is None:
        directory = _default_directory(opts.plugins_dir)
    path = write_provider_plugin(name, directory, force=force)
    click.echo(f"wrote {shown_path(str(path.resolve()))}")
    click.echo("next:")
    click.echo(f"  add a [default.models.{name}] section to settings.toml (the file's docstring")
    click.echo("  has one), then:")
    click.echo(f"  ai-assistant secrets set models.{name}.api_key   # unless it runs locally")
    click.echo("  ai-assistant models list")
    click.echo("  ai-assistant config validate")


def _default_directory(plugins_dirs: list[str]) -> Path:
    """The first ``--plugins-dir``, else the first plugins directory the settings name that
    is not part of the installed package (the repository's own settings name the bundled
    ``contrib_providers/``: a plugin written there would load in every project)."""
    if plugins_dirs:
        return Path(plugins_dirs[0])
    config = get_config(check=False)
    dirs = config.plugin_dirs()
    own = [d for d in dirs if installed_package_dir(d) is None]
    # the project's own folder before the user-level one
    own.sort(key=lambda d: not d.is_relative_to(config.root.resolve()))
    if own:
        return own[0]
    if dirs:
        raise AiAssistantError(
            f"the only plugins directory the settings name is inside the installed package "
            f"({dirs[0]}): not writing there",
            hint="pass --dir DIR, or name a plugins directory of your own in settings.toml: "
            '[default.plugins] dirs = ["plugins"]',
        )
    raise AiAssistantError(
        "the settings name no plugins directory",
        hint='pass --dir DIR, or add dirs = ["plugins"] under [default.plugins] in '
        "settings.toml (`ai-assistant init` writes settings with one)",
    )


def _provides(contributions: dict[str, list[str]], hooks: list[str]) -> str:
    """``models: 2, tools: 1``: how many of each kind a plugin registered; its hooks when it
    registered nothing (``hooks: register_commands``); the JSON lists both in full."""
    if contributions:
        return ", ".join(f"{kind}: {len(ids)}" for kind, ids in contributions.items())
    return "hooks: " + ",".join(hooks) if hooks else "-"
