"""MCP servers from settings (``[default.mcp.servers.<name>]``), their tools registered as
``<server>_<tool>`` under the source ``mcp:<server>``.

Each server's session is held for the host's lifetime by a task of its own (an MCP session's
transport must be opened and closed in one task), opened when the host starts its tools and
closed when it stops. A call that fails on a broken session reconnects and is tried once more;
a server that cannot be reached is reported like a failing plugin and the other tools keep
working. Only settings name servers (never a request): a stdio server is a program we run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from ..plugins import FAILED, PluginInfo
from ..registry import TOOL_NAME, TOOL_NAME_RULE

log = logging.getLogger("ai_assistant.mcp")

CONNECT_SECONDS = 30.0  # how long a server may take to start and list its tools
TRANSPORTS = ("stdio", "streamable_http")


class MCPServerError(Exception):
    pass


def connection_of(name: str, section: Mapping[str, Any]) -> dict[str, Any]:
    """langchain-mcp-adapters' connection for one server's settings; ``MCPServerError`` saying
    what to fix when they do not describe one."""
    where = f"mcp.servers.{name}"
    transport = section.get("transport")
    if transport not in TRANSPORTS:
        raise MCPServerError(
            f"{where}.transport must be one of {', '.join(repr(t) for t in TRANSPORTS)}, "
            f"not {transport!r}"
        )
    if transport == "stdio":
        command = section.get("command")
        if not isinstance(command, str) or not command:
            raise MCPServerError(f'{where}.command is required: the program to run, like "python"')
        args = section.get("args") or []
        if not isinstance(args, list):
            raise MCPServerError(f"{where}.args must be a list of strings")
        connection: dict[str, Any] = {
            "transport": "stdio",
            "command": command,
            "args": [str(a) for a in args],
        }
        env = section.get("env")
        if env:
            connection["env"] = {str(k): str(v) for k, v in dict(env).items()}
        if section.get("cwd"):
            connection["cwd"] = str(section["cwd"])
        return connection
    url = section.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MCPServerError(f'{where}.url is required: like "http://127.0.0.1:9000/mcp"')
    connection = {"transport": "streamable_http", "url": url}
    headers = section.get("headers")
    if headers:
        connection["headers"] = {str(k): str(v) for k, v in dict(headers).items()}
    if section.get("timeout") is not None:
        connection["timeout"] = float(section["timeout"])
    return connection


class MCPServer:
    """One server: its held session, its tools, and reconnection."""

    def __init__(self, name: str, connection: dict[str, Any], redact: Any) -> None:
        self.name = name
        self.source = f"mcp:{name}"
        self.connection = connection
        self.redact = redact
        self.session: Any = None
        self.tools: dict[str, Any] = {}  # the MCP tool's own name -> LangChain tool
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._close: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    @property
    def location(self) -> str:
        if self.connection["transport"] == "stdio":
            return " ".join([self.connection["command"], *self.connection["args"]])
        return self.redact(self.connection["url"])

    async def connect(self) -> None:
        """Open the session (in a task that holds it) and list the tools; raises
        ``MCPServerError`` when the server cannot be reached in ``CONNECT_SECONDS``."""
        await self.close()
        self._ready, self._close = asyncio.Event(), asyncio.Event()
        self.error = None
        self._task = asyncio.create_task(self._hold(self._ready, self._close))
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                await self._ready.wait()
        except TimeoutError:
            self.error = f"no answer within {CONNECT_SECONDS:g} s"
        if self.error is not None or self.session is None:
            await self.close()
            raise MCPServerError(self.error or "the session ended at once")

    def _session(self) -> Any:
        """The session's context manager: stdio through the ``mcp`` SDK itself (so the
        server's stderr goes to a real file, and env values are passed as written, over
        the SDK's safe default environment), streamable HTTP through the adapters."""
        connection = self.connection
        if connection["transport"] != "stdio":
            from langchain_mcp_adapters.sessions import create_session

            return create_session(connection)  # type: ignore[arg-type]
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import get_default_environment, stdio_client

        params = StdioServerParameters(
            command=connection["command"],
            args=connection["args"],
            env={**get_default_environment(), **connection.get("env", {})},
            cwd=connection.get("cwd"),
        )

        @contextlib.asynccontextmanager
        async def session() -> Any:
            async with (
                stdio_client(params, errlog=_errlog()) as (read, write),
                ClientSession(read, write) as client,
            ):
                yield client

        return session()

    async def _hold(self, ready: asyncio.Event, close: asyncio.Event) -> None:
        from langchain_mcp_adapters.tools import load_mcp_tools

        try:
            async with self._session() as session:
                await session.initialize()
                # (an isError result raises ToolException: the call's result says it failed)
                tools = await load_mcp_tools(
                    session, server_name=self.name, handle_tool_errors=False
                )
                self.tools = {t.name: t for t in tools}
                self.session = session
                ready.set()
                await close.wait()
        except BaseException as exc:  # noqa: BLE001 - why the server is unusable, for the report
            if not isinstance(exc, asyncio.CancelledError):
                self.error = self.redact(_describe(exc))
                log.info("MCP server %r: %s", self.name, self.error)
        finally:
            self.session = None
            ready.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if self._close is not None:
            self._close.set()
        try:
            async with asyncio.timeout(5):
                await asyncio.shield(task)
        except (TimeoutError, Exception):  # noqa: BLE001 - a server that will not close is cut off
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def call(self, tool_name: str, args: dict[str, Any]) -> Any:
        """Call one tool on the held session; on a broken session, reconnect and try once more."""
        for attempt in (1, 2):
            async with self._lock:
                if self.session is None:
                    await self.connect()
            tool = self.tools.get(tool_name)
            if tool is None:
                raise MCPServerError(f"the server no longer offers the tool {tool_name!r}")
            try:
                return await tool.ainvoke(args)
            except Exception as exc:
                if attempt == 2 or not _session_broke(exc):
                    raise  # (a tool's own failure is not retried: it may have done something)
                log.warning(
                    "MCP server %r: %s; reconnecting", self.name, self.redact(_describe(exc))
                )
                async with self._lock:
                    await self.close()
        raise AssertionError("unreachable")

    def registered_tools(self) -> list[tuple[str, Any]]:
        """``(prefixed name, LangChain tool)`` for each of the server's tools."""
        from langchain_core.tools import StructuredTool

        out = []
        for original, tool in self.tools.items():
            wrapper = StructuredTool(
                name=f"{self.name}_{original}",
                description=tool.description or original,
                args_schema=tool.args_schema,
                coroutine=self._caller(original),
                metadata=tool.metadata,
            )
            out.append((wrapper.name, wrapper))
        return out

    def _caller(self, tool_name: str) -> Any:
        async def call(**kwargs: Any) -> Any:
            return await self.call(tool_name, kwargs)

        return call


class MCPServers:
    """Every server in ``mcp.servers`` of a host, started and stopped with its tools."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.servers: dict[str, MCPServer] = {}
        self.problems: list[str] = []

    async def start(self) -> None:
        """Connect to every server at once; register the tools of those that answered, and
        report the others (``plugins list``, and ``problems``)."""
        config = self.host.config
        sections = config.value("mcp.servers")
        try:
            import langchain_mcp_adapters  # noqa: F401
        except ImportError:
            missing = "the mcp extra is not installed: pip install 'ai-assistant[mcp]'"
            for name in sections:
                info = PluginInfo(f"mcp:{name}", "mcp server", "")
                self.host.plugins.report.append(info)
                self._fail(info, missing)
            return
        for name, section in sections.items():
            name = str(name)
            info = PluginInfo(f"mcp:{name}", "mcp server", "")
            self.host.plugins.report.append(info)
            try:
                if not TOOL_NAME.match(name):
                    raise MCPServerError(f"the server name {name!r} is refused: {TOOL_NAME_RULE}")
                if not isinstance(section, Mapping):
                    raise MCPServerError(f"mcp.servers.{name} must be a table")
                server = MCPServer(name, connection_of(name, section), config.redact)
            except MCPServerError as exc:
                self._fail(info, str(exc))
                continue
            info.location = server.location
            self.servers[name] = server
        results = await asyncio.gather(
            *(s.connect() for s in self.servers.values()), return_exceptions=True
        )
        for server, result in zip(list(self.servers.values()), results, strict=True):
            info = next(i for i in self.host.plugins.report if i.name == server.source)
            if isinstance(result, BaseException):
                self._fail(info, f"could not start: {config.redact(str(result))}")
                continue
            self._register(server, info)

    def _register(self, server: MCPServer, info: PluginInfo) -> None:
        registry = self.host.tools.for_plugin(server.source)
        for name, tool in server.registered_tools():
            if not TOOL_NAME.match(name):
                registry.report(f"tool name {name!r} is refused: a tool name is {TOOL_NAME_RULE}")
                continue
            registry._add(name, None, tool, (), {"description": tool.description})
        info.hooks = ["tools"]
        info.problems.extend(registry.problems)
        self.problems.extend(f"plugin {info.name!r}: {p}" for p in registry.problems)

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.status, info.reason = FAILED, reason
        self.problems.append(f"plugin {info.name!r} failed: {reason}")

    async def stop(self) -> None:
        await asyncio.gather(*(s.close() for s in self.servers.values()), return_exceptions=True)


_BROKEN = {"ClosedResourceError", "BrokenResourceError", "EndOfStream", "TransportError"}


def _session_broke(exc: BaseException) -> bool:
    """Did the session's transport fail (the server died, the connection dropped), rather than
    the tool? Only then is a call reconnected and tried again."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _BROKEN:
        return True
    return "McpError" in names and "connection closed" in str(exc).lower()


def _errlog() -> Any:
    """Where a stdio server's stderr goes: ours, or the process's own when ours is not a file
    (a test's captured stream)."""
    import sys

    try:
        sys.stderr.fileno()
        return sys.stderr
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__


def _describe(exc: BaseException) -> str:
    """One line for an exception, looking inside exception groups (anyio's task groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["MCPServer", "MCPServerError", "MCPServers", "connection_of"]
