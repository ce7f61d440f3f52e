"""Issue 11's tool figures: an MCP tool call through a held stdio session (median, p95), the
first call after the servers start, how long they take to start, and the chat core's own cost
per tool step (a turn with one tool step against the same turn without, on an instant model).

    python benchmarks/bench_tools.py            # 300 calls and 300 turns of each kind
    python benchmarks/bench_tools.py --n 1000

The MCP server is tests/mcp_servers/calc.py (FastMCP, over stdio), started by the host from
settings in a temporary folder; nothing leaves 127.0.0.1. Needs the [mcp] extra.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

CALC = Path(__file__).resolve().parent.parent / "tests" / "mcp_servers" / "calc.py"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def bench_mcp(n: int) -> None:
    from ai_assistant import load_host
    from ai_assistant.loop import background_loop
    from ai_assistant.tools import run_tool

    folder = Path(tempfile.mkdtemp())
    (folder / "settings.toml").write_text(
        '[default.models.echo]\nmodels = [{ id = "echo" }]\n'
        "[default.mcp.servers.calc]\n"
        f'transport = "stdio"\ncommand = "{sys.executable}"\nargs = ["{CALC}"]\n'
    )
    host = load_host(settings=folder / "settings.toml")
    started = time.perf_counter()
    problems = host.start_tools_blocking()
    start = time.perf_counter() - started
    assert not problems, problems
    tool = host.tools.get("calc_add")

    def call() -> float:
        began = time.perf_counter()
        text, ok = asyncio.run_coroutine_threadsafe(
            run_tool(host, tool, {"a": 1, "b": 2}), background_loop()
        ).result()
        assert ok and text == "3", text
        return time.perf_counter() - began

    first = call()
    times = sorted(call() for _ in range(n))
    host.stop_blocking()
    print(f"MCP stdio server start (spawn, initialize, list tools): {_ms(start)}")
    print(f"first call after start: {_ms(first)}")
    print(
        f"held-session call: median {_ms(statistics.median(times))}, "
        f"p95 {_ms(times[int(n * 0.95) - 1])} ({n} calls)"
    )


def bench_loop(n: int) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage

    from ai_assistant import load_host
    from ai_assistant.chat import Turn
    from ai_assistant.registry import Model

    class Instant(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kwargs):  # noqa: ANN001, ANN003, ANN201, ARG002
            return self

    folder = Path(tempfile.mkdtemp())
    (folder / "settings.toml").write_text('[default.models.echo]\nmodels = [{ id = "echo" }]\n')
    host = load_host(settings=folder / "settings.toml")

    def noop(a: int, b: int) -> int:
        """Add."""
        return a + b

    host.tools.for_plugin("bench").register(noop)
    call = AIMessage("", tool_calls=[{"id": "c1", "name": "noop", "args": {"a": 1, "b": 2}}])

    async def turns(with_tool: bool) -> float:
        times = []
        for _ in range(n):
            answers = [call, AIMessage("done")] if with_tool else [AIMessage("done")]
            host.registry._items["instant"] = Model(
                "instant", "bench", instance=Instant(responses=answers)
            )
            tools = [host.tools.get("noop")] if with_tool else []
            turn = Turn(host, "instant", [("user", "hi")], stream=False, tools=tools)
            began = time.perf_counter()
            async for _ in turn.events():
                pass
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    async def main() -> tuple[float, float]:
        await turns(True), await turns(False)  # warm up
        return await turns(True), await turns(False)

    with_step, without = asyncio.run(main())
    print(
        f"turn with one tool step {_ms(with_step)}, without {_ms(without)}: the step's own "
        f"cost beyond the second model call is {_ms(with_step - 2 * without)} (medians of {n})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    os.environ.pop("AI_ASSISTANT_SETTINGS", None)
    bench_mcp(args.n)
    bench_loop(args.n)
