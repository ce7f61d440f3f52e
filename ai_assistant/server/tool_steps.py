"""Tools on the gateway: which registered tools a caller's requests may run (``server.tools``),
a request's own OpenAI ``tools`` (passed through to the model; the client runs them), and the
steps of a server-side tool loop as the responses show them.

Tools that need approval (``tools.require_approval``) are never run here: nobody can approve.
"""

from __future__ import annotations

from typing import Any

from ..chat.events import ToolCall, ToolResult
from ..registry import TOOL_NAME, Tool
from .errors import ApiError


def server_tools(host: Any, caller: str | None) -> list[Tool]:
    """The tools ``caller`` (an API key's name; None without keys) may have the gateway run:
    those matching its ``server.tools`` patterns (or ``default``'s), never one needing
    approval."""
    if not len(host.tools):
        return []
    from ..tools import offered, tool_settings

    settings = tool_settings(host)
    patterns = settings.for_caller(caller)
    if not patterns:
        return []
    return [t for t in offered(host, patterns) if not settings.needs_approval(t.id)]


def read_tools(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's OpenAI ``tools`` (function tools), checked; [] when absent."""
    tools = data.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise ApiError(400, "'tools' must be an array of tools", param="tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise ApiError(
                400,
                f'{where} must be {{"type": "function", "function": {{"name": ...}}}}',
                param=where,
            )
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise ApiError(
                400,
                f"{where}.function.name must match ^[a-zA-Z0-9_-]{{1,64}}$",
                param=f"{where}.function.name",
            )
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise ApiError(
                400,
                f"{where}.function.description must be a string",
                param=f"{where}.function.description",
            )
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise ApiError(
                400,
                f"{where}.function.parameters must be a JSON schema object",
                param=f"{where}.function.parameters",
            )
        out.append(tool)
    return out


def read_tool_choice(data: dict[str, Any], tools: list[dict[str, Any]]) -> Any:
    """OpenAI's ``tool_choice`` (``"none"``, ``"auto"``, ``"required"``, or one function by
    name), checked against the request's ``tools``; None when absent."""
    choice = data.get("tool_choice")
    if choice is None:
        return None
    if not tools:
        raise ApiError(400, "'tool_choice' needs 'tools'", param="tool_choice")
    if choice in ("none", "auto", "required"):
        return choice
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    names = [t["function"]["name"] for t in tools]
    if not isinstance(name, str) or name not in names:
        raise ApiError(
            400,
            '\'tool_choice\' must be "none", "auto", "required" or '
            '{"type": "function", "function": {"name": <one of tools>}}',
            param="tool_choice",
        )
    return choice


def step(event: ToolCall | ToolResult) -> dict[str, Any]:
    """One step of a server-side tool loop, as the responses show it."""
    if isinstance(event, ToolCall):
        return {"type": "tool_call", "id": event.id, "name": event.name, "args": event.args}
    out = {
        "type": "tool_result",
        "tool_call_id": event.tool_call_id,
        "name": event.name,
        "content": event.content,
        "error": event.error,
    }
    if event.sources:
        out["sources"] = list(event.sources)
    return out


def steps_of(reply: Any) -> list[dict[str, Any]]:
    """Every step of a finished reply's tool loop (from ``reply.steps``), in order."""
    names: dict[str, str] = {}
    out = []
    for message in reply.steps:
        if message.role == "assistant":
            for call in message.tool_calls:
                names[call.get("id") or ""] = call["name"]
                out.append(step(ToolCall(call.get("id"), call["name"], call.get("args") or {})))
        elif message.role == "tool":
            call_id = message.tool_call_id or ""
            result = reply.results.get(call_id)  # as it happened: whether it failed, its sources
            if result is None:
                result = ToolResult(call_id, names.get(call_id, ""), message.content)
            out.append(step(result))
    return out
