"""The gateway while another process holds its SQLite history's write lock: /healthz latency.

    python benchmarks/bench_store_lock.py                 # a 5 s lock, /healthz every 20 ms
    python benchmarks/bench_store_lock.py --hold 5 --busy-timeout 1

One `ai-assistant serve` worker with the offline `echo` model and its history in SQLite. Another
process takes the database's write lock (``BEGIN IMMEDIATE``) and holds it for ``--hold``
seconds; meanwhile one client asks /healthz every 20 ms and another sends a chat completion
(which must wait for the lock, then get its answer or, past ``storage.busy_timeout``, a 503).
Reported: /healthz latency percentiles during the lock and before it, and the chat's outcome.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gateway import _free_port, installed  # noqa: E402
from bench_gateway_floor import wait_ready  # noqa: E402

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def poll(url: str, seconds: float) -> list[float]:
    """/healthz latencies (ms), one request every 20 ms for ``seconds``; each must be a 200."""
    times = []
    with httpx.Client(timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            if client.get(url).status_code != 200:
                raise SystemExit("/healthz did not answer 200")
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the lock is held")
    parser.add_argument("--busy-timeout", type=float, default=5.0, help="storage.busy_timeout")
    args = parser.parse_args()
    exe, env = installed()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "settings.toml").write_text(f"""
[default.plugins]
dirs = []
[default.storage]
url = "history.db"
busy_timeout = {args.busy_timeout}
[default.models.echo]
models = [{{ id = "echo" }}]
""")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        gateway = subprocess.Popen(
            [exe, "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        holder = None
        try:
            wait_ready(f"{base}/readyz", gateway)
            body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
            httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30).raise_for_status()
            before = poll(f"{base}/healthz", 2.0)
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_LOCK, str(root / "history.db"), str(args.hold)],
                stdout=subprocess.PIPE,
                text=True,
            )
            if holder.stdout.readline().strip() != "locked":
                raise SystemExit("the lock holder did not start")
            outcome: dict = {}

            def chat() -> None:
                started = time.monotonic()
                response = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
                outcome.update(status=response.status_code, seconds=time.monotonic() - started)

            asker = threading.Thread(target=chat)
            asker.start()
            during = poll(f"{base}/healthz", args.hold - 0.2)
            asker.join(timeout=60)
            holder.wait(timeout=30)
        finally:
            for proc in (holder, gateway):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=20)
    print(
        f"The SQLite write lock held {args.hold:g} s by another process; storage.busy_timeout "
        f"{args.busy_timeout:g} s; Python {sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    print("| /healthz | requests | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    for label, times in (("before the lock", before), ("while locked", during)):
        print(
            f"| {label} | {len(times)} | {statistics.median(times):.1f} | "
            f"{pct(times, 0.99):.1f} | {max(times):.1f} |"
        )
    print(
        f"\nA chat completion sent as the lock was taken: HTTP {outcome.get('status')} after "
        f"{outcome.get('seconds', float('nan')):.2f} s"
    )


if __name__ == "__main__":
    main()
