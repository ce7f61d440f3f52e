"""Gateways of different code trees or server settings side by side: CPU and latency per request.

    python benchmarks/bench_gateway_trees.py --requests 3000 --batch 250 --concurrency 1 \\
        --gateway before=/tmp/b --gateway before-unstored=/tmp/b:store_completions=false \\
        --gateway after= --gateway after-unstored=:store_completions=false

Each ``--gateway NAME=[TREE][:KEY=VALUE,...]`` is one `ai-assistant serve` worker (access log on,
history stored, as by default) with ``PYTHONPATH=TREE`` (a tree exported with ``git archive REV |
tar -x -C TREE``; empty: the installed code) and the given ``[default.server]`` settings, with the
``fast`` openai_compatible model on the fake upstream (tests/fake_openai.py). Non-streaming
completions go to each in turn, batch by batch (the order reversed every other round), so all see
the same machine. Reported per gateway: server CPU per request (all its threads, /proc, over all
its batches), that CPU split between the main thread and the others, and latency percentiles.
The store's share of CPU is (CPU stored - CPU not stored) / CPU stored between two gateways of
the same tree. Every request must get a 200; the script stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gateway import KEY, _body, _pct, run_load  # noqa: E402
from bench_gateway_floor import Servers, cpu_seconds, settings, wait_ready  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> tuple[float, float]:
    """(main thread, other threads) CPU seconds of process ``pid`` so far."""
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # (a thread that just ended)
        fields = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def parse(spec: str) -> tuple[str, str | None, str]:
    """``NAME=[TREE][:KEY=VALUE,...]`` -> (name, tree or None, [default.server] lines)."""
    name, _, rest = spec.partition("=")
    tree, _, options = rest.partition(":")
    lines = ["access_log = true"]
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        lines = [line for line in lines if not line.startswith(f"{key} =")]
        lines.append(f"{key} = {value}")
    return name, tree or None, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", action="append", required=True, help="NAME=[TREE][:K=V,..]")
    parser.add_argument("--requests", type=int, default=3000, help="per gateway")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    specs = [parse(g) for g in args.gateway]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    rounds = max(1, args.requests // args.batch)
    with tempfile.TemporaryDirectory() as tmp, Servers(env, Path(tmp)) as servers:
        _, upstream = servers.upstream()
        gateways = {}
        for name, tree, server in specs:
            servers.env = {**env, "PYTHONPATH": tree} if tree else env
            proc, port = servers.gateway(settings(Path(tmp) / name, upstream, server))
            gateways[name] = (proc, port)
        body = _body("fast", False)
        for proc, port in gateways.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            asyncio.run(run_load(port, "/v1/chat/completions", body, 300, args.concurrency, KEY))
        cpu = {name: [0.0, 0.0, 0.0] for name in gateways}  # total, main, other
        latency: dict[str, list[float]] = {name: [] for name in gateways}
        batches: dict[str, list[float]] = {name: [] for name in gateways}
        for i in range(rounds):
            for name in list(gateways) if i % 2 == 0 else list(reversed(gateways)):
                proc, port = gateways[name]
                total0, (main0, other0) = cpu_seconds(proc.pid), thread_cpu(proc.pid)
                result = asyncio.run(
                    run_load(port, "/v1/chat/completions", body, args.batch, args.concurrency, KEY)
                )
                total1, (main1, other1) = cpu_seconds(proc.pid), thread_cpu(proc.pid)
                for k, delta in enumerate((total1 - total0, main1 - main0, other1 - other0)):
                    cpu[name][k] += delta
                batches[name].append((total1 - total0) / args.batch * 1000)
                latency[name] += result["total"]
    n = rounds * args.batch
    print(
        f"{n} non-streaming requests a gateway, {args.concurrency} client(s), batches of "
        f"{args.batch} interleaved; Python {sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    print("| gateway | CPU ms/req | main thread | other threads | batch median | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name in gateways:
        total, main_cpu, other = (c / n * 1000 for c in cpu[name])
        print(
            f"| {name} | {total:.2f} | {main_cpu:.2f} | {other:.2f} | "
            f"{statistics.median(batches[name]):.2f} | {_pct(latency[name], 0.5):.2f} | "
            f"{_pct(latency[name], 0.99):.2f} |"
        )
    pairs = [(a, b) for a, b in ((n, f"{n}-unstored") for n in gateways) if b in gateways]
    for stored, unstored in pairs:
        on, off = cpu[stored][0] / n * 1000, cpu[unstored][0] / n * 1000
        print(f"\nThe store's share of `{stored}`'s CPU: {(on - off) / on:.0%} ({on - off:.2f} ms)")


if __name__ == "__main__":
    main()
