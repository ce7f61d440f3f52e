"""`ai-assistant embeddings`: list and show the registered embeddings models."""

from __future__ import annotations

import click

from .context import get_host, global_options
from .models import COLUMNS as MODEL_COLUMNS
from .output import echo_details, echo_registered, format_options

# a model's columns, with the vector length after MODEL
COLUMNS = [
    *MODEL_COLUMNS[:3],
    ("DIMENSION", lambda e: e.info.get("dimension", "")),
    *MODEL_COLUMNS[3:],
]


@click.group(invoke_without_command=True)
@format_options("table", "json", "ids")
@global_options
@click.pass_context
def embeddings(ctx: click.Context, fmt: str) -> None:
    """List and inspect the embeddings models that plugins registered, for knowledge sources
    (no command: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_embeddings, fmt=fmt)


@embeddings.command("list")
@format_options("table", "json", "ids")
@click.option("--plugin", help="Only embeddings models registered by this plugin.")
@global_options
def list_embeddings(fmt: str = "table", plugin: str | None = None) -> None:
    """List every registered embeddings model: plugin, upstream model, vector dimension (when
    known), endpoint and status."""
    host = get_host()
    entries = [e for e in host.embeddings if plugin is None or e.plugin == plugin]
    echo_registered(
        entries,
        fmt,
        COLUMNS,
        "no embeddings models registered: add a section such as "
        "[default.embeddings.openai_compatible] to settings.toml"
        if plugin is None
        else f"plugin {plugin!r} registered no embeddings models",
    )


@embeddings.command("show")
@click.argument("embeddings_id")
@format_options("text", "json")
@global_options
def show_embeddings(embeddings_id: str, fmt: str) -> None:
    """Show one embeddings model's plugin, status and settings (never its secrets)."""
    echo_details(get_host().embeddings.get(embeddings_id).describe(), fmt)
