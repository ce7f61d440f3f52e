"""`ai-assistant conversations`: list, show and delete the stored history."""

from __future__ import annotations

import json

import click

from ..storage import open_store
from .context import get_config, global_options
from .output import echo_json, format_options, render_table


def _store():
    return open_store(get_config())


@click.group(invoke_without_command=True)
@format_options("table", "json")
@global_options
@click.pass_context
def conversations(ctx: click.Context, fmt: str) -> None:
    """The stored chat history (no command: list the conversations)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_conversations, fmt=fmt)


@conversations.command("list")
@format_options("table", "json")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, newest first.")
@global_options
def list_conversations(fmt: str = "table", limit: int | None = None) -> None:
    """Conversations, newest first."""
    rows = _store().conversations(limit)
    if fmt == "json":
        echo_json(rows)
        return
    if not rows:
        click.echo("no conversations yet: `ai-assistant chat` starts one", err=True)
        return
    click.echo(
        render_table(
            ["ID", "UPDATED", "MODEL", "MESSAGES", "TITLE"],
            [
                (
                    r["id"][:12],
                    r["updated_at"][:19].replace("T", " "),
                    r["model"],
                    r["message_count"],
                    r["title"],
                )
                for r in rows
            ],
        )
    )


def _describe(message: dict) -> str:
    parts = [message["role"]]
    if message["role"] == "assistant":
        parts.append(message["model_id"] or "?")
        if message["latency_ms"] is not None:
            parts.append(f"{message['latency_ms']} ms")
        if message["output_tokens"] is not None:
            parts.append(f"{message['input_tokens']}/{message['output_tokens']} tokens")
        if message["status"] == "streaming":
            # live: the store has already marked the replies of ended processes interrupted
            writer = message.get("writer_pid")
            parts.append(
                f"streaming: being written by pid {writer} on {message['writer_host']}"
                if writer is not None
                else "streaming: writer unknown"
            )
        elif message["status"] != "complete":
            parts.append(message["status"] + (f": {message['error']}" if message["error"] else ""))
    return " · ".join(parts)


@conversations.command("show")
@click.argument("conversation_id", metavar="ID")
@format_options("text", "json")
@global_options
def show_conversation(conversation_id: str, fmt: str) -> None:
    """One conversation with all its messages (ID may be a unique prefix)."""
    conv = _store().conversation(conversation_id)
    if fmt == "json":
        echo_json(conv)
        return
    click.echo(
        f"{conv['id']}  {conv['title']}\nmodel {conv['model']}, started "
        f"{conv['created_at'][:19].replace('T', ' ')}"
    )
    if conv["system"]:
        click.echo(f"system: {conv['system']}")
    names = {  # a tool result is labelled with the tool its call named
        call.get("id"): call.get("name")
        for m in conv["messages"]
        for call in m.get("tool_calls") or ()
    }
    for message in conv["messages"]:
        label = _describe(message)
        if message["role"] == "tool":
            label += f" · {names.get(message.get('tool_call_id')) or '?'}"
        body = [message["content"]] if message["content"] else []
        for call in message.get("tool_calls") or ():
            body.append(f"→ {call.get('name')}({json.dumps(call.get('args'), ensure_ascii=False)})")
        click.echo(f"\n[{label}]\n" + "\n".join(body))


@conversations.command("delete")
@click.argument("conversation_id", metavar="ID")
@global_options
def delete_conversation(conversation_id: str) -> None:
    """Delete one conversation and its messages."""
    deleted = _store().delete_conversation(conversation_id)
    click.echo(f"deleted {deleted}")
