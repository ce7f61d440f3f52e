"""The gateway against a pass-through floor, in one run, on loopback only, with bounded requests.

    python benchmarks/bench_gateway_floor.py                    # 3000 requests a path
    python benchmarks/bench_gateway_floor.py --requests 6000 --starts 7

Processes: the fake upstream (tests/fake_openai.py), one `ai-assistant serve` worker (history
stored and access log on, as by default) with an openai_compatible model on that upstream, and the
floor (benchmarks/relay_floor.py: the same uvicorn, the same HTTP client as the openai SDK, no
LangChain), as a bare ASGI app and behind one FastAPI route. Measured, non-streaming:

- server CPU per request: the server process's user + system time (/proc/PID/stat) over a batch,
  divided by the requests in it; at 1 client and at 16 clients (closed loop);
- added latency at 1 client: the same client calls the upstream directly, through the floors and
  through the gateway, in interleaved batches, so all see the same machine; "added" is each
  percentile less the direct one;
- the first request after /readyz answers 200, against the second: fresh servers, --starts times;
- with --variants, also gateways with ``server.access_log = false`` and with
  ``server.store_completions = false``, to see what those cost per request.

The client is bench_gateway.py's keep-alive HTTP/1.1 client on asyncio streams. Every request
must get a 200, and the script stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_gateway import KEY, Connection, _body, _free_port, _pct, run_load  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
VARIANTS = {
    "`serve`, access_log = false": "access_log = false",
    "`serve`, store_completions = false": "access_log = true\nstore_completions = false",
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until it answers 200 (every 20 ms, as a probe would, a little eagerly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer 200 within {timeout:.0f} s")


class Servers:
    """Starts and stops the processes under test; every one is ended on exit."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.env, self.root = env, root
        self.procs: list[subprocess.Popen] = []
        self.exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
        if self.exe is None:
            sys.exit("ai-assistant is not installed in this environment: pip install -e .")

    def upstream(self) -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fake_openai.py")],
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        self.procs.append(proc)
        url = proc.stdout.readline().strip()
        return int(url.rsplit(":", 1)[1].split("/")[0]), url

    def gateway(self, root: Path | None = None) -> tuple[subprocess.Popen, int]:
        port = _free_port()
        proc = subprocess.Popen(
            [self.exe, "serve", "--port", str(port)],
            cwd=root or self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc, port

    def floor(self, upstream_url: str, framework: str) -> tuple[subprocess.Popen, int]:
        port = _free_port()
        argv = [sys.executable, str(HERE / "relay_floor.py"), "--port", str(port)]
        argv += ["--upstream", upstream_url, "--key", KEY, "--model", "fast=ok"]
        proc = subprocess.Popen(
            [*argv, "--framework", framework],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc, port

    def stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.procs.remove(proc)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in list(self.procs):
            self.stop(proc)


def settings(root: Path, upstream_url: str, server: str = "access_log = true") -> Path:
    root.mkdir(exist_ok=True)
    (root / "settings.toml").write_text(f"""
[default.plugins]
dirs = []
[default.storage]
path = "history.db"
[default.server]
{server}
[default.models.openai_compatible]
endpoint = "{upstream_url}"
max_retries = 0
stream_usage = false
models = [{{ model_name = "ok", id = "fast" }}]
[default.models.echo]
models = [{{ id = "echo" }}]
""")
    (root / ".secrets.toml").write_text(
        f'[default.server.api_keys]\nbench = "{KEY}"\n'
        '[default.models.openai_compatible]\napi_key = "upstream-key-123"\n'
    )
    (root / ".secrets.toml").chmod(0o600)
    return root


def layer_budget(root: Path, upstream_url: str, calls: int, rounds: int) -> list[tuple]:
    """CPU per call of each layer one non-streaming completion passes through, in this process
    against the fake upstream, each layer adding to the one before: (layer, CPU ms, of it on
    the event loop's thread ms), the least of ``rounds`` rounds of ``calls`` calls each."""
    os.chdir(root)  # (its settings: the `fast` model on the upstream, a store of its own)
    import httpx2
    from langchain_core.messages import HumanMessage

    from ai_assistant import load_host
    from ai_assistant.chat import Turn
    from ai_assistant.chat.prompt import Message
    from ai_assistant.server.replies import ReplyStream
    from ai_assistant.storage import open_async_store

    host = load_host()
    text = "request 1 a b c"
    body = {"model": "ok", "stream": False, "messages": [{"role": "user", "content": text}]}

    async def measure() -> list[tuple]:
        store = open_async_store(host.config).aio
        await store.open()
        store.warm_up()  # (as the gateway's lifespan does)
        await host.start(build_models=True)
        model = host.get_model("fast")
        http = httpx2.AsyncClient(timeout=60)
        key = {"authorization": "Bearer upstream-key-123"}

        async def post() -> None:
            reply = await http.post(upstream_url + "/chat/completions", json=body, headers=key)
            reply.json()

        async def langchain() -> None:
            await model.ainvoke([HumanMessage(text)])

        def turn(with_store: bool) -> Turn:
            new = [Message("user", text)]
            return Turn(
                host, "fast", new, store=store if with_store else None, record=new,
                owner="bench", user="bench", surface="openai", stream=False, timeout=600,
                record_whole=True,  # (as /v1 stores a non-streaming completion)
            )  # fmt: skip

        async def core() -> None:
            async for _event in turn(False).events():
                pass

        async def never() -> dict:  # (the client never leaves)
            await asyncio.Event().wait()
            return {}

        async def route(with_store: bool) -> None:
            reply = ReplyStream(turn(with_store))
            await reply.start(never)
            await reply.collect()
            await reply.turn.recorder.flush()

        layers = [
            ("httpx2 POST and JSON (the floor's upstream call)", post),
            ("+ the model: OpenAIChatModel.ainvoke (LangChain's BaseChatModel)", langchain),
            ("+ chat core: Turn", core),
            ("+ the route's driver: ReplyStream (disconnect watcher)", lambda: route(False)),
            ("+ history store: SQLite, writer thread (as `serve`)", lambda: route(True)),
        ]
        best: dict[str, tuple[float, float]] = {}
        for _ in range(rounds):
            for name, call in layers:
                for _ in range(max(1, calls // 10)):  # (warm)
                    await call()
                cpu, loop = time.process_time(), time.thread_time()
                for _ in range(calls):
                    await call()
                spent = ((time.process_time() - cpu) / calls, (time.thread_time() - loop) / calls)
                best[name] = min(best.get(name, spent), spent)
        await http.aclose()
        await host.stop()
        await store.close()
        return [(name, *(v * 1000 for v in best[name])) for name, _ in layers]

    return asyncio.run(measure())


async def first_and_second(port: int, model: str) -> tuple[float, float]:
    """Milliseconds of the first and the second request, on one keep-alive connection."""
    conn = Connection("127.0.0.1", port)
    await conn.open()
    times = []
    try:
        for i in range(2):
            status, _, whole = await conn.post("/v1/chat/completions", _body(model, False)(i), KEY)
            if status != 200:
                raise SystemExit(f"{model} on port {port} got HTTP {status}")
            times.append(whole * 1000)
    finally:
        conn.writer.close()
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="per path and setting")
    parser.add_argument("--batch", type=int, default=250, help="requests per interleaved batch")
    parser.add_argument("--concurrency", type=int, default=16, help="for the second CPU run")
    parser.add_argument(
        "--starts", type=int, default=5, help="fresh servers per first-request case"
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also gateways with the access log off, and with completions not stored",
    )
    parser.add_argument(
        "--layers",
        type=int,
        default=0,
        metavar="CALLS",
        help="also the CPU of each layer of one completion, in this process (CALLS calls, "
        "best of 3 rounds)",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    fast = _body("fast", False)
    direct_body = _body("ok", False)

    with tempfile.TemporaryDirectory() as tmp, Servers(env, Path(tmp)) as servers:
        upstream_port, upstream_url = servers.upstream()
        settings(Path(tmp), upstream_url)

        # 1. first request after /readyz against the second, on fresh servers, alternating
        first: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.starts):
            for label in ("gateway, fast", "gateway, echo", "floor (ASGI)"):
                if label.startswith("gateway"):
                    proc, port = servers.gateway()
                else:
                    proc, port = servers.floor(upstream_url, "asgi")
                wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
                model = "echo" if label.endswith("echo") else "fast"
                first.setdefault(label, []).append(asyncio.run(first_and_second(port, model)))
                servers.stop(proc)

        # 2. steady state: the three servers side by side, warmed, then interleaved batches
        started = [
            ("floor: bare ASGI relay", servers.floor(upstream_url, "asgi")),
            ("floor: FastAPI relay", servers.floor(upstream_url, "fastapi")),
            ("`ai-assistant serve`", servers.gateway()),
        ]
        if args.variants:  # which of the gateway's per-request work costs what
            for label, server in VARIANTS.items():
                name = server.splitlines()[-1].split()[0]
                root = settings(Path(tmp) / name, upstream_url, server)
                started.append((label, servers.gateway(root)))
        targets = {}
        for label, (proc, port) in started:
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            asyncio.run(run_load(port, "/v1/chat/completions", fast, 300, 4, KEY))  # warm
            targets[label] = (proc, port)
        asyncio.run(run_load(upstream_port, "/v1/chat/completions", direct_body, 300, 4, None))

        latency: dict[str, list[float]] = {"upstream directly": []}
        cpu: dict[tuple[str, int], list[float]] = {}
        for clients in (1, args.concurrency):
            done = 0
            while done < args.requests:
                n = min(args.batch, args.requests - done)
                order = list(targets.items())
                if (done // args.batch) % 2:
                    order.reverse()
                if clients == 1:
                    latency["upstream directly"] += asyncio.run(
                        run_load(upstream_port, "/v1/chat/completions", direct_body, n, 1, None)
                    )["total"]
                for label, (proc, port) in order:
                    before = cpu_seconds(proc.pid)
                    result = asyncio.run(
                        run_load(port, "/v1/chat/completions", fast, n, clients, KEY)
                    )
                    spent = cpu_seconds(proc.pid) - before
                    cpu.setdefault((label, clients), []).append(spent / n * 1000)
                    if clients == 1:
                        latency.setdefault(label, []).extend(result["total"])
                done += n

        budget = []
        if args.layers:  # (last: this process imports what serve does)
            root = settings(Path(tmp) / "layers", upstream_url)
            budget = layer_budget(root, upstream_url, args.layers, 3)
            os.chdir(REPO)  # (out of the folder about to be removed)

    gw, floor = "`ai-assistant serve`", "floor: bare ASGI relay"
    print(
        f"{args.requests} non-streaming requests per path and setting, batches of {args.batch} "
        f"interleaved; Python {sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    print("Server CPU per request (median of the batches' CPU time / requests):\n")
    print(
        f"| server | 1 client, ms | {args.concurrency} clients, ms "
        f"| x floor (1 / {args.concurrency}) |"
    )
    print("|---|---|---|---|")
    med = {key: statistics.median(values) for key, values in cpu.items()}
    for label in targets:
        a, b = med[(label, 1)], med[(label, args.concurrency)]
        ratio = f"{a / med[(floor, 1)]:.2f} / {b / med[(floor, args.concurrency)]:.2f}"
        print(f"| {label} | {a:.2f} | {b:.2f} | {ratio} |")

    print(f"\nLatency at 1 client, {len(latency['upstream directly'])} requests a path:\n")
    print("| path | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms |")
    print("|---|---|---|---|---|---|")
    direct = latency["upstream directly"]
    for label, values in latency.items():
        added = (
            "- | - |"
            if label == "upstream directly"
            else f"{_pct(values, 0.5) - _pct(direct, 0.5):.2f} | "
            f"{_pct(values, 0.99) - _pct(direct, 0.99):.2f} |"
        )
        print(
            f"| {label} | {_pct(values, 0.5):.2f} | {_pct(values, 0.9):.2f} | "
            f"{_pct(values, 0.99):.2f} | {added}"
        )

    print(
        f"\nFirst request after /readyz answers 200, against the second ({args.starts} starts):\n"
    )
    print(
        "| server, model | first ms (median) | second ms (median) | first / second "
        "| worst first ms |"
    )
    print("|---|---|---|---|---|")
    for label, pairs in first.items():
        a = statistics.median(p[0] for p in pairs)
        b = statistics.median(p[1] for p in pairs)
        ratios = statistics.median(p[0] / p[1] for p in pairs)
        print(f"| {label} | {a:.1f} | {b:.1f} | {ratios:.1f} | {max(p[0] for p in pairs):.1f} |")
    if budget:
        print(f"\nCPU of one completion's layers, in one process ({args.layers} calls each):\n")
        print("| layer | CPU ms per call | of it on the event loop's thread |")
        print("|---|---|---|")
        for name, cpu, loop in budget:
            print(f"| {name} | {cpu:.3f} | {loop:.3f} |")
    print(
        "\nTargets: gateway CPU per request <= 3x the floor's (now "
        f"{med[(gw, 1)] / med[(floor, 1)]:.2f}x "
        f"at 1 client); added p99 at 1 client <= 5 ms (now "
        f"{_pct(latency[gw], 0.99) - _pct(direct, 0.99):.2f} ms); first request <= 2x the second."
    )


if __name__ == "__main__":
    main()
