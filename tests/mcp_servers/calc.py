"""A small MCP server for tests, built with FastMCP: ``python calc.py`` serves it over stdio,
``python calc.py http PORT`` over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import sys

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("calc", host="127.0.0.1", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def whoami(text: str = "") -> str:
    """Which process answers, and the CALC_TOKEN it was given."""
    return f"pid {os.getpid()} token {os.environ.get('CALC_TOKEN', '-')}"


@server.tool()
def header(name: str, ctx: Context) -> str:
    """The value of one HTTP request header (streamable HTTP only)."""
    request = ctx.request_context.request
    return str(request.headers.get(name, "-")) if request is not None else "-"


@server.tool()
def fail(text: str = "") -> str:
    """Always raises."""
    raise ValueError("calc cannot do that")


@server.tool()
def die(text: str = "") -> str:
    """Ends the server process (to test reconnection)."""
    os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.settings.port = int(sys.argv[2])
        server.run("streamable-http")
    else:
        server.run("stdio")
