"""`ai-assistant storage`: which history store is in use, its schema and size; copying a SQLite
history into PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from .context import get_config, global_options
from .output import echo_json, format_options


@click.group()
@global_options
def storage() -> None:
    """The history store (storage.url): status, and copying to PostgreSQL."""


async def _status(store: Any) -> dict[str, Any]:
    try:
        await store.open()
        return {
            "store": store.url,
            "dialect": store.dialect,
            "schema_version": await store.schema_version(),
            "counts": await store.counts(),
        }
    finally:
        await store.close()


@storage.command("status")
@format_options("text", "json")
@global_options
def status(fmt: str) -> None:
    """The store in use (its password masked), schema version and row counts."""
    from ..storage import open_async_store

    info = asyncio.run(_status(open_async_store(get_config())))
    if fmt == "json":
        echo_json(info)
        return
    click.echo(f"store: {info['dialect']} {info['store']}")
    click.echo(f"schema version: {info['schema_version']}")
    for table, count in info["counts"].items():
        click.echo(f"{table}: {count}")


async def _copy(source: Any, target: Any) -> tuple[int, int]:
    conversations = messages = 0
    try:
        await source.open()
        await target.open()
        for conv in await source.export():
            added = await target.import_conversation(conv)
            conversations += added > 0
            messages += added
    finally:
        await source.close()
        await target.close()
    return conversations, messages


@storage.command("copy")
@click.option("--to", "to_url", required=True, metavar="URL", help="postgresql://user@host/db")
@global_options
def copy(to_url: str) -> None:
    """Copy the history (storage.url) into the PostgreSQL store at URL. Run it again at any
    time: it adds only what is new (conversations, and messages added to them since)."""
    from ..errors import AiAssistantError
    from ..storage import is_postgresql, mask_url, open_async_store
    from ..storage.postgresql import PostgresStore

    if not is_postgresql(to_url):
        raise AiAssistantError(
            f"--to must be a postgresql:// URL, not {mask_url(to_url)!r}",
            hint="like postgresql://user:password@host:5432/database",
        )
    config = get_config()
    source = open_async_store(config)
    target = PostgresStore(to_url, busy_timeout=config.value("storage.busy_timeout"))
    conversations, messages = asyncio.run(_copy(source, target))
    click.echo(
        f"{conversations} conversations, {messages} messages copied from {source.url} "
        f"to {target.url}"
    )
