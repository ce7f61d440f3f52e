"""`ai-assistant models`: list and show the registered chat models."""

from __future__ import annotations

import click

from .context import get_host, global_options
from .output import echo_details, echo_registered, first_of, format_options

_MODEL_KEYS = ("model_name", "deployment")
_ENDPOINT_KEYS = ("endpoint", "base_url")

COLUMNS = [
    ("ID", lambda m: m.id),
    ("PLUGIN", lambda m: m.plugin),
    ("MODEL", lambda m: first_of(m.info, _MODEL_KEYS)),
    ("ENDPOINT", lambda m: first_of(m.info, _ENDPOINT_KEYS)),
    ("STATUS", lambda m: m.status),
]


@click.group(invoke_without_command=True)
@format_options("table", "json", "ids")
@global_options
@click.pass_context
def models(ctx: click.Context, fmt: str) -> None:
    """List and inspect the chat models that plugins registered (no command: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models, fmt=fmt)


@models.command("list")
@format_options("table", "json", "ids")
@click.option("--plugin", help="Only models registered by this plugin.")
@global_options
def list_models(fmt: str = "table", plugin: str | None = None) -> None:
    """List every registered model with its plugin and status."""
    host = get_host()
    entries = [m for m in host.registry if plugin is None or m.plugin == plugin]
    echo_registered(
        entries,
        fmt,
        COLUMNS,
        "no models registered: add a provider section such as [default.models.echo] "
        "to settings.toml"
        if plugin is None
        else f"plugin {plugin!r} registered no models",
    )


@models.command("show")
@click.argument("model_id")
@format_options("text", "json")
@global_options
def show_model(model_id: str, fmt: str) -> None:
    """Show one model's plugin, status and settings (never its secrets)."""
    echo_details(get_host().registry.get(model_id).describe(), fmt)
