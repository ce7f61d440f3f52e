"""`ai-assistant tools`: list and show the tools that plugins and MCP servers registered."""

from __future__ import annotations

from typing import Any

import click

from .context import get_host, global_options
from .output import echo_json, format_options, render_table, warn


def _describe(host: Any, tool: Any) -> dict[str, Any]:
    from ..tools import tool_settings

    settings = tool_settings(host)
    return {
        "name": tool.id,
        "source": tool.plugin,
        "description": tool.description,
        "status": tool.status,
        "needs_approval": settings.needs_approval(tool.id),
        "timeout": settings.timeout_for(tool),
    }


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= 60 else line[:57] + "..."


def _started(host: Any) -> Any:
    """The host with its MCP servers connected (their tools listed, failures warned about)."""
    for problem in host.start_tools_blocking():
        warn(problem)
    return host


@click.group(invoke_without_command=True)
@format_options("table", "json")
@global_options
@click.pass_context
def tools(ctx: click.Context, fmt: str) -> None:
    """List and inspect the tools chats can offer (no command: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_tools, fmt=fmt)


@tools.command("list")
@format_options("table", "json")
@global_options
def list_tools(fmt: str = "table") -> None:
    """List every registered tool: name, source (plugin or mcp:<server>), description,
    status, and whether it needs approval."""
    host = _started(get_host())
    entries = [_describe(host, t) for t in host.tools]
    if fmt == "json":
        echo_json(entries)
    elif entries:
        rows = [
            (
                e["name"],
                e["source"],
                e["status"],
                "yes" if e["needs_approval"] else "no",
                _first_line(e["description"]),
            )
            for e in entries
        ]
        click.echo(render_table(["NAME", "SOURCE", "STATUS", "APPROVAL", "DESCRIPTION"], rows))
    if not entries:
        warn(
            "no tools registered: install a tool plugin, or add an MCP server as "
            "[default.mcp.servers.<name>] in settings.toml"
        )


@tools.command("show")
@click.argument("name")
@format_options("text", "json")
@global_options
def show_tool(name: str, fmt: str) -> None:
    """Show one tool: where it comes from, what it does and its argument schema."""
    host = _started(get_host())
    tool = host.tools.get(name)
    details = _describe(host, tool)
    details["args_schema"] = _schema(tool.get())
    if fmt == "json":
        echo_json(details)
        return
    import json

    width = max(len(k) for k in details)
    for key, value in details.items():
        if key == "args_schema":
            value = "\n" + json.dumps(value, indent=2)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        click.echo(f"{key.ljust(width)}  {value}")


def _schema(lc_tool: Any) -> dict[str, Any]:
    """The JSON schema of a LangChain tool's arguments."""
    schema = getattr(lc_tool, "tool_call_schema", None) or getattr(lc_tool, "args_schema", None)
    if isinstance(schema, dict):
        return schema
    if schema is not None and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    return {"type": "object", "properties": dict(getattr(lc_tool, "args", {}) or {})}
