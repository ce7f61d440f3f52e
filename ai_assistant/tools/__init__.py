"""Tools: which ones a chat offers, which need approval, and running one call safely (a timeout,
a bounded result, errors and refusals as results the model reads). MCP servers' tools live in
``tools.mcp``, imported only when settings name a server.

Nothing here imports LangChain or MCP until a tool is actually run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from ..config import name_list
from ..registry import TOOL_NAME, TOOL_NAME_RULE, Tool

__all__ = [
    "TOOL_NAME",
    "TOOL_NAME_RULE",
    "ToolSettings",
    "matches",
    "result_text",
    "run_tool",
    "tool_settings",
]


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Does ``name`` match any shell-style pattern (``files_*``, ``*``)?"""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns if p)


class ToolSettings:
    """``chat.tools``, ``chat.max_tool_steps`` and ``tools.*`` of one host, read once."""

    def __init__(self, host: Any) -> None:
        value = host.config.value
        self.chat_patterns = name_list(value("chat.tools"))
        self.max_steps = int(value("chat.max_tool_steps"))
        self.require_approval = name_list(value("tools.require_approval"))
        self.timeout = float(value("tools.timeout"))
        self.timeouts = {str(k): float(v) for k, v in value("tools.timeouts").items()}
        self.max_result_chars = int(value("tools.max_result_chars"))
        self.server_patterns = {str(k): name_list(v) for k, v in value("server.tools").items()}

    def needs_approval(self, name: str) -> bool:
        return matches(name, self.require_approval)

    def timeout_for(self, tool: Tool) -> float:
        return self.timeouts.get(tool.id, tool.timeout or self.timeout)

    def for_caller(self, caller: str | None) -> list[str]:
        """The gateway's ``server.tools`` patterns for an API key's name (``default`` for a
        caller without an entry, and for the keyless loopback mode)."""
        if caller is not None and caller in self.server_patterns:
            return self.server_patterns[caller]
        return self.server_patterns.get("default", [])


_SETTINGS: weakref.WeakKeyDictionary[Any, ToolSettings] = weakref.WeakKeyDictionary()


def tool_settings(host: Any) -> ToolSettings:
    """``host``'s tool settings, read once."""
    settings = _SETTINGS.get(host)
    if settings is None:
        settings = _SETTINGS[host] = ToolSettings(host)
    return settings


def offered(host: Any, patterns: Sequence[str]) -> list[Tool]:
    """The registered tools whose names match ``patterns``, ready ones only."""
    return [t for t in host.tools.matching(patterns) if t.status == "ready"]


def result_text(content: Any) -> str:
    """A tool's result as the text the model reads: strings as they are, content blocks'
    text joined, anything else as JSON."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                parts.append(json.dumps(part, default=str))
        return "\n".join(parts)
    try:
        return json.dumps(content, default=str)
    except (TypeError, ValueError):
        return str(content)


def cited_sources(artifact: Any) -> list[dict[str, Any]]:
    """The sources a tool's artifact cites: ``{"sources": [{...}, ...]}`` (what
    ``search_knowledge`` returns beside its text); none for any other artifact."""
    if isinstance(artifact, dict) and isinstance(artifact.get("sources"), list):
        return [s for s in artifact["sources"] if isinstance(s, dict)]
    return []


class ToolInterrupted(Exception):
    """A tool raised ``KeyboardInterrupt`` or ``SystemExit`` itself: its failure, carried as an
    ordinary exception (asyncio lets those two out of any task, killing the event loop)."""


def _is_sync(lc_tool: Any) -> bool:
    """Does the tool only have a blocking implementation (a plain function, or a ``BaseTool``
    with ``_run`` and LangChain's default ``_arun``, which borrows the loop's shared pool)?"""
    from langchain_core.tools import BaseTool

    if getattr(lc_tool, "coroutine", None) is not None:
        return False
    if getattr(lc_tool, "func", None) is not None:
        return True
    return type(lc_tool)._arun is BaseTool._arun


async def _invoke(lc_tool: Any, call: dict[str, Any]) -> Any:
    """``lc_tool`` invoked with ``call``. A blocking tool runs on a daemon thread of its own, not
    the loop's shared pool: one that outlives its timeout holds no pool thread the gateway
    needs, and never keeps the CLI from exiting."""
    try:
        if not _is_sync(lc_tool):
            return await lc_tool.ainvoke(call)
        import threading

        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(error: BaseException | None, result: Any = None) -> None:
            if future.done():
                return  # timed out or cancelled meanwhile
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def work() -> None:
            try:
                result = lc_tool.invoke(call)
            except (KeyboardInterrupt, SystemExit) as exc:
                loop.call_soon_threadsafe(settle, ToolInterrupted(type(exc).__name__))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(settle, exc)
            else:
                loop.call_soon_threadsafe(settle, None, result)

        threading.Thread(target=work, name=f"tool-{call.get('name')}", daemon=True).start()
        return await future
    except (KeyboardInterrupt, SystemExit) as exc:
        raise ToolInterrupted(type(exc).__name__) from None


async def run_tool(
    host: Any, tool: Tool, args: dict[str, Any], call_id: str = ""
) -> tuple[str, bool, list[dict[str, Any]]]:
    """Run one call of ``tool``: ``(result text, ok, cited sources)``. A tool that raises,
    times out or cannot be built gives a result saying so (``ok`` false); it never raises. The
    text is cut at ``tools.max_result_chars`` and has the settings' secrets redacted."""
    settings = tool_settings(host)
    timeout = settings.timeout_for(tool)
    ok = True
    sources: list[dict[str, Any]] = []
    try:
        lc_tool = tool.get()
        # invoked as a tool call, a tool answers with a ToolMessage: its artifact comes too
        call = {"type": "tool_call", "id": call_id or "call", "name": tool.id, "args": args}
        content = await asyncio.wait_for(_invoke(lc_tool, call), timeout)
        if getattr(content, "type", None) == "tool":  # a ToolMessage
            sources = cited_sources(getattr(content, "artifact", None))
            if getattr(content, "status", None) == "error":
                ok = False
            content = content.content
        text = result_text(content)
        if getattr(content, "status", None) == "error":
            ok = False
    except TimeoutError:
        text, ok = f"error: the tool {tool.id!r} timed out after {timeout:g} s", False
    except (Exception, KeyboardInterrupt, SystemExit) as exc:  # noqa: BLE001 - a tool's failure
        # is its result, never the chat's (a tool runs on the loop's thread or a worker thread,
        # so an interrupt raised there is the tool's own: a user's Ctrl-C reaches the main one)
        detail = " ".join(str(exc).split())
        kind = type(exc).__name__
        if "ToolException" in {cls.__name__ for cls in type(exc).__mro__}:
            kind = ""  # the tool's own way of saying it failed: its message says it all
        elif isinstance(exc, ToolInterrupted):
            kind, detail = "", f"it raised {detail}"
        text = f"error: the tool {tool.id!r} failed: " + ": ".join(p for p in (kind, detail) if p)
        ok = False
    limit = settings.max_result_chars
    if len(text) > limit:
        text = text[:limit] + f"\n[cut at tools.max_result_chars: {limit} characters]"
    return host.config.redact(text), ok, sources
