"""`ai-assistant models`: list and show the registered chat models."""

from __future__ import annotations

import click

from ..registry import MISSING_SECRET
from .context import get_host, global_options
from .output import echo_json, format_options, render_table, warn

_MODEL_KEYS = ("model_name", "deployment")
_ENDPOINT_KEYS = ("endpoint", "base_url")


def _first(info: dict, keys: tuple[str, ...]) -> str:
    return next((str(info[k]) for k in keys if info.get(k) not in (None, "")), "")


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
    if fmt == "json":
        echo_json([m.describe() for m in entries])
    elif fmt == "ids":
        if entries:
            click.echo("\n".join(m.id for m in entries))
    elif entries:
        rows = [
            (m.id, m.plugin, _first(m.info, _MODEL_KEYS), _first(m.info, _ENDPOINT_KEYS), m.status)
            for m in entries
        ]
        click.echo(render_table(["ID", "PLUGIN", "MODEL", "ENDPOINT", "STATUS"], rows))
    if not entries:
        warn(
            "no models registered: add a provider section such as [default.models.echo] "
            "to settings.toml"
            if plugin is None
            else f"plugin {plugin!r} registered no models"
        )
    hints = sorted({m.fix_hint() for m in entries if m.status == MISSING_SECRET})
    for hint in hints:
        click.echo(f"note: a model needs a secret: {hint}", err=True)


@models.command("show")
@click.argument("model_id")
@format_options("text", "json")
@global_options
def show_model(model_id: str, fmt: str) -> None:
    """Show one model's plugin, status and settings (never its secrets)."""
    model = get_host().registry.get(model_id)
    details = model.describe()
    if fmt == "json":
        echo_json(details)
        return
    width = max(len(k) for k in details)
    for key, value in details.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        click.echo(f"{key.ljust(width)}  {value}")
