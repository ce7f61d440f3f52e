"""Load on the gateway, on loopback only, with a bounded number of requests.

    python benchmarks/bench_gateway.py                 # 4000 requests a case, 16 clients
    python benchmarks/bench_gateway.py --requests 8000 --concurrency 16

Cases (one `ai-assistant serve` worker, history stored as by default):
- non-streaming and streaming completions with the offline `echo` model: requests per second and
  latency percentiles (for streaming, also time to first token);
- the gateway's added latency: the same fast local upstream (tests/fake_openai.py, in its own
  process) called directly and through the gateway's openai_compatible provider, by the same
  client in the same run, alternating batches so both see the same machine.

The client is a minimal keep-alive HTTP/1.1 client on asyncio streams, so that it costs little
next to what it measures. Every request gets a response and the script stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-key-0123456789"


def installed() -> tuple[str, dict[str, str]]:
    """This environment's `ai-assistant`, and an environment to run it in: no AI_ASSISTANT_
    settings from the caller's, and cached bytecode used (as a user gets it)."""
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("ai-assistant is not installed in this environment: pip install -e .")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return exe, env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection; requests are sent one after another."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, key: str | None) -> tuple[int, float, float]:
        """(status, seconds to the first body byte, seconds to the end)."""
        assert self.reader and self.writer
        auth = f"Authorization: Bearer {key}\r\n" if key else ""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        start = time.perf_counter()
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length, chunked = None, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        first = None
        if length is not None:
            await self.reader.readexactly(length)
            first = time.perf_counter()
        elif chunked:
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if first is None and b'"content": "' in data and b'"content": ""' not in data:
                    first = time.perf_counter()
                if size == 0:
                    break
        end = time.perf_counter()
        return status, (first or end) - start, end - start


async def run_load(
    port: int,
    path: str,
    make_body,
    total: int,
    concurrency: int,
    key: str | None,
    rate: float | None = None,
) -> dict[str, list[float]]:
    """Send ``total`` requests over ``concurrency`` connections; every one must succeed.

    Without ``rate`` each connection sends its next request as soon as the last one is answered
    (a closed loop: it finds the saturation point). With ``rate`` (requests per second, all
    connections together) request i is due at ``start + i / rate`` and its latency counts from
    then, so a late send is counted rather than hidden.
    """
    connections = [Connection("127.0.0.1", port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    firsts, totals = [], []
    counter = iter(range(total))
    started = time.perf_counter()

    async def worker(conn: Connection) -> None:
        for i in counter:
            lag = 0.0
            if rate:
                due = started + i / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                lag = max(0.0, time.perf_counter() - due)
            status, first, whole = await conn.post(path, make_body(i), key)
            if status != 200:
                raise SystemExit(f"request {i} to {path} got HTTP {status}")
            firsts.append(first + lag)
            totals.append(whole + lag)

    await asyncio.gather(*(worker(c) for c in connections))
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.writer.close()
    return {"first": firsts, "total": totals, "elapsed": [elapsed]}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _body(model: str, stream: bool):
    def make(i: int) -> bytes:
        return json.dumps(
            {
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": f"request {i} a b c"}],
            }
        ).encode()

    return make


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="requests/s of the paced added-latency run (all clients together)",
    )
    args = parser.parse_args()
    exe, env = installed()
    procs: list[subprocess.Popen] = []
    try:
        upstream = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fake_openai.py")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(upstream)
        upstream_url = upstream.stdout.readline().strip()
        upstream_port = int(upstream_url.rsplit(":", 1)[1].split("/")[0])
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "settings.toml").write_text(f"""
[default.plugins]
dirs = []
[default.storage]
path = "history.db"
[default.server]
access_log = true
[default.models.echo]
models = [{{ id = "echo" }}]
[default.models.openai_compatible]
endpoint = "{upstream_url}"
max_retries = 0
stream_usage = false
models = [{{ model_name = "ok", id = "fast" }}]
""")
            (root / ".secrets.toml").write_text(
                f'[default.server.api_keys]\nbench = "{KEY}"\n'
                '[default.models.openai_compatible]\napi_key = "upstream-key-123"\n'
            )
            port = _free_port()
            gateway = subprocess.Popen(
                [exe, "serve", "--port", str(port)],
                cwd=root,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(gateway)
            _wait_ready(f"http://127.0.0.1:{port}/healthz", gateway)
            n, c = args.requests, args.concurrency

            def load(p, path, body, total, key, rate=None):
                return asyncio.run(run_load(p, path, body, total, c, key, rate))

            # warm both paths (imports, connection pools, bytecode)
            load(port, "/v1/chat/completions", _body("echo", False), 200, KEY)
            load(port, "/v1/chat/completions", _body("fast", False), 200, KEY)
            load(upstream_port, "/v1/chat/completions", _body("ok", False), 200, None)

            rows = []
            for label, model, stream in (
                ("echo, non-streaming", "echo", False),
                ("echo, streaming", "echo", True),
            ):
                result = load(port, "/v1/chat/completions", _body(model, stream), n, KEY)
                rps = n / result["elapsed"][0]
                rows.append(
                    f"| {label} | {rps:.0f} | {_pct(result['total'], 0.5):.1f} | "
                    f"{_pct(result['total'], 0.9):.1f} | {_pct(result['total'], 0.99):.1f} | "
                    + (f"{_pct(result['first'], 0.5):.1f} |" if stream else "- |")
                )

            # added latency: alternate batches of direct and gateway calls to one upstream,
            # flat out (closed loop) and paced at --rate
            added = {}
            for mode, rate in (("closed loop", None), (f"paced at {args.rate:g} req/s", args.rate)):
                direct, via = [], []
                batch = max(200, n // 10)
                for _ in range(max(1, n // batch)):
                    direct += load(
                        upstream_port, "/v1/chat/completions", _body("ok", False), batch, None, rate
                    )["total"]
                    via += load(
                        port, "/v1/chat/completions", _body("fast", False), batch, KEY, rate
                    )["total"]
                added[mode] = (direct, via)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=20)

    print(
        f"{n} requests a case, {c} concurrent clients, 1 gateway worker, Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    print("| case | req/s | p50 ms | p90 ms | p99 ms | first token p50 ms |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for mode, (direct, via) in added.items():
        print(
            f"\nAdded latency, {c} concurrent clients, {mode}, {len(direct)} requests each way "
            "(fast local upstream, non-streaming):\n"
        )
        print("| path | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|")
        for label, values in (("upstream directly", direct), ("through the gateway", via)):
            print(
                f"| {label} | {_pct(values, 0.5):.1f} | {_pct(values, 0.9):.1f} | "
                f"{_pct(values, 0.99):.1f} |"
            )
        print(
            f"| **added by the gateway** | {_pct(via, 0.5) - _pct(direct, 0.5):.1f} | "
            f"{_pct(via, 0.9) - _pct(direct, 0.9):.1f} | "
            f"{_pct(via, 0.99) - _pct(direct, 0.99):.1f} |"
        )


if __name__ == "__main__":
    main()
