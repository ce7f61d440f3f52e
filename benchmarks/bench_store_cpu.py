"""The history store's own CPU per `/v1` completion, without the gateway around it: what the
chat core asks of the store for one non-streaming completion, repeated, timed by process CPU.

    python benchmarks/bench_store_cpu.py --before /tmp/c14 --rounds 7 --writes 2000

``--before TREE``: a tree of the code before issue 10 (``git archive c14f0c4 | tar -x -C
TREE``), whose ``ai_assistant.store.Store`` the chat core wrote to synchronously on the event
loop: the exchange's start, then the reply's last update (two transactions). The current code
(the installed one, or ``--tree``): one whole write (``start_exchange(..., reply=...)``) handed
to the SQLite writer thread's queue (``AsyncSQLiteStore.enqueue``, as the chat core's
``Recorder`` does) and awaited on the loop, as `/v1` does since issue 9. Also, as a
floor only, the same whole write run synchronously on the calling thread (the gateway may not do
that: it would block the loop on the file's lock and the disk).

Each variant runs in a process of its own on a new database, ``--writes`` writes after 200 to
warm up, at 1 and at 16 concurrent requests (the two gateway loads of the benchmarks); variants
alternate, ``--rounds`` times; the median of the rounds' CPU per write is reported (process user
+ system time, all threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import asyncio, os, resource, sys, tempfile
variant, writes, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
folder = tempfile.mkdtemp()
path = os.path.join(folder, "history.db")
reply = {"content": "echo: hello there", "status": "complete", "latency_ms": 3,
         "first_token_ms": 3, "input_tokens": 3, "output_tokens": 4}

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

async def main():
    if variant == "before":
        from ai_assistant.store import Store
        store = Store(path)
        async def one(i):
            conversation, message = store.start_exchange(None, "fast", [f"hello {i}"])
            store.update_message(message, model_id="fast", tool_calls=None, error=None, **reply)
    elif variant == "floor":
        from ai_assistant.storage import SQLiteStore
        store = SQLiteStore(path)
        async def one(i):
            store.start_exchange(None, "fast", [f"hello {i}"], reply=reply)
    else:
        from ai_assistant.storage import SQLiteStore
        store = SQLiteStore(path).aio
        await store.open()
        store.warm_up()
        core = store.core
        async def one(i):  # (the chat core's way: a job on the writer thread's queue)
            await store.enqueue(lambda: core.start_exchange(None, "fast", [f"h {i}"], reply=reply))
    for i in range(200):
        await one(i)
    gate = asyncio.Semaphore(concurrency)
    async def limited(i):
        async with gate:
            await one(i)
    start = cpu()
    await asyncio.gather(*(limited(i) for i in range(writes)))
    print((cpu() - start) / writes * 1000)

asyncio.run(main())
"""

VARIANTS = {
    "before": "before issue 10: two transactions on the loop",
    "now": "now: one whole write through the writer thread",
    "floor": "floor: one whole write on the calling thread (not allowed on the loop)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a tree of the code before issue 10 (c14f0c4)")
    parser.add_argument("--tree", help="the current code's tree (default: the installed code)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--writes", type=int, default=2000)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    trees = {"before": args.before, "now": args.tree, "floor": args.tree}
    variants = [v for v in VARIANTS if v != "before" or args.before]
    figures: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "child.py"
        script.write_text(CHILD)
        for round_ in range(args.rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for concurrency in (1, 16):
                for variant in order:
                    tree = trees[variant]
                    child_env = {**env, "PYTHONPATH": tree} if tree else env
                    out = subprocess.run(
                        [sys.executable, str(script), variant, str(args.writes), str(concurrency)],
                        env=child_env,
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    figures.setdefault((variant, concurrency), []).append(float(out))
    print(
        f"{args.writes} writes a process after 200 to warm up, {args.rounds} rounds, variants "
        f"alternating; Python {sys.version.split()[0]}, {os.cpu_count()} cores\n"
    )
    print("| variant | store CPU ms per request, 1 client | 16 clients |")
    print("|---|---|---|")
    for variant in variants:
        cells = []
        for concurrency in (1, 16):
            values = figures[(variant, concurrency)]
            cells.append(
                f"{statistics.median(values):.3f} ({min(values):.3f} to {max(values):.3f})"
            )
        print(f"| {VARIANTS[variant]} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
