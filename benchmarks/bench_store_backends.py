"""The gateway with its history store on SQLite and on PostgreSQL, and with nothing stored, in one
run, on loopback only, with bounded requests.

    python benchmarks/bench_store_backends.py                       # a pgserver of its own
    python benchmarks/bench_store_backends.py --requests 2000 --batch 500
    python benchmarks/bench_store_backends.py --postgres-url postgresql://user:pw@host/db
    python benchmarks/bench_store_backends.py --tree /tmp/snap      # the code of a snapshot

Processes: the fake upstream (tests/fake_openai.py) and three `ai-assistant serve` gateways, one
worker each, access log on as by default: history stored in SQLite (``storage.path``), stored in
PostgreSQL (``storage.url``, a database created for the run and dropped after it), and SQLite with
``server.store_completions = false`` (nothing stored). PostgreSQL is the server of
``--postgres-url`` or AI_ASSISTANT_TEST_POSTGRES_URL, else one the pgserver wheel starts (as the
tests do) and stops at the end. ``--tree PATH`` runs the gateways with PYTHONPATH=PATH, so that
they import PATH/ai_assistant (e.g. a ``git archive HEAD`` snapshot, frozen while the work tree
changes) rather than the installed code.

Cases, each at --concurrency clients (closed loop) and at 1 client: /v1/chat/completions with the
offline ``echo`` model, non-streaming and streaming, and with the ``fast`` model on the fake
upstream, non-streaming. Each case runs in batches of --batch requests, interleaved between the
gateways, the order reversed every other round, so all see the same machine. Per gateway:

- req/s: the median over the batches of batch size / batch wall time;
- server CPU ms per request: the gateway process's user + system time (/proc/PID/stat), from the
  start of one of its batches to the start of its next (the last: to a reading after a pause), so
  what it finishes after its last reply (store commits, log lines) is counted; all the batches'
  CPU over all their requests (the clock ticks 100 times a second: a median of batches would be
  of coarse steps);
- p50 / p99 latency of all its requests in the case;
- for the PostgreSQL gateway, the PostgreSQL server's CPU per request too, the same way (the
  postmaster and its children, and the children it reaped), when the script started it: it is
  not in the gateway's CPU.

Then the targets of issue 10: the PostgreSQL / SQLite throughput ratio per case at --concurrency
clients (>= 0.80), and the store's share of gateway CPU, (CPU stored - CPU not stored) / CPU
stored, at 1 and at --concurrency clients (the target: at most half of the share measured today).
The client is bench_gateway.py's keep-alive HTTP/1.1 client. Every request must get a 200; the
script stops by itself and ends every process it started, and removes its folders, on error and
on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gateway import KEY, _body, _pct, run_load  # noqa: E402
from bench_gateway_floor import TICK, Servers, cpu_seconds, settings, wait_ready  # noqa: E402

PATH = "/v1/chat/completions"
WARM = 300  # requests a case and gateway before measuring
SQLITE, POSTGRES, NOT_STORED = "SQLite, stored", "PostgreSQL, stored", "SQLite, not stored"
CASES = (
    ("echo, non-streaming", "echo", False),
    ("echo, streaming", "echo", True),
    ("fast (upstream), non-streaming", "fast", False),
)


def postgres_settings(root: Path, upstream_url: str, url: str) -> Path:
    """bench_gateway_floor's settings, with the history in PostgreSQL at ``url``."""
    settings(root, upstream_url)
    path = root / "settings.toml"
    text = path.read_text()
    if 'path = "history.db"' not in text:
        raise SystemExit("bench_gateway_floor.settings no longer sets storage.path")
    path.write_text(text.replace('path = "history.db"', f'url = "{url}"'))
    return root


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid``, of its live children, and of the children it reaped
    (the PostgreSQL server: the postmaster, its backends and background workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(pid):
            continue
        try:
            child = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # (gone meanwhile)
            continue
        if int(child[1]) == pid:  # (ppid)
            ticks += int(child[11]) + int(child[12])
    return ticks / TICK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores, /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7)) / TICK  # (no idle, no iowait)


def own_seconds(servers: Servers, pg_pid: int | None) -> float:
    """CPU seconds of this run's processes so far: this one, its servers, its PostgreSQL."""
    times = os.times()
    own = times.user + times.system + sum(cpu_seconds(p.pid) for p in servers.procs)
    return own + (tree_cpu_seconds(pg_pid) if pg_pid else 0.0)


def start_postgres(stack: contextlib.ExitStack, given: str | None) -> tuple[str, int | None]:
    """A PostgreSQL server's admin URL and, when this script started it, its postmaster's pid."""
    if given:
        return given, None
    try:
        with warnings.catch_warnings():  # (platformdirs, on a machine without XDG_RUNTIME_DIR)
            warnings.filterwarnings("ignore", "XDG_RUNTIME_DIR")
            import pgserver
    except ImportError:
        raise SystemExit("pip install pgserver (the test extra), or give --postgres-url") from None
    # (not under a folder only root may enter: run as root, pgserver starts the server as a
    # user of its own, which must reach the data folder)
    data = tempfile.mkdtemp(prefix="bench-store-pg-")
    stack.callback(shutil.rmtree, data, ignore_errors=True)
    server = pgserver.get_server(data, cleanup_mode="stop")
    stack.callback(server.cleanup)
    return server.get_uri(), server.get_pid()


def create_database(stack: contextlib.ExitStack, admin_url: str) -> str:
    """A new, empty database on the server, dropped at the end; its URL."""
    import psycopg

    name = f"bench_store_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

    stack.callback(drop)
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def stored_messages(sqlite_file: Path, postgres_url: str) -> dict[str, int]:
    """Messages in each store at the end (2 a request where stored)."""
    import psycopg

    counts = {}
    with contextlib.closing(sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)) as db:
        counts[SQLITE] = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    with psycopg.connect(postgres_url) as db:
        counts[POSTGRES] = db.execute("SELECT count(*) FROM messages").fetchone()[0]
    return counts


class Readings:
    """CPU readings at the start of each gateway's last batch, charged to that batch at the start
    of the gateway's next one (or at the end of the case), so that what a gateway finishes after
    its last reply (store commits, log lines) is counted."""

    def __init__(self, pg_pid: int | None) -> None:
        self.pg_pid = pg_pid
        self.pending: dict[str, tuple[float, float, dict]] = {}

    def read(self, label: str, pid: int) -> tuple[float, float]:
        pg = tree_cpu_seconds(self.pg_pid) if self.pg_pid and label == POSTGRES else 0.0
        return cpu_seconds(pid), pg

    def charge(self, label: str, pid: int) -> tuple[float, float]:
        now = self.read(label, pid)
        if label in self.pending:
            cpu0, pg0, row = self.pending.pop(label)
            row["cpu"] += (now[0] - cpu0) * 1000
            row["pg_cpu"] += (now[1] - pg0) * 1000
        return now

    def start(self, label: str, pid: int, row: dict) -> None:
        self.pending[label] = (*self.charge(label, pid), row)


def measure(targets: dict, pg_pid: int | None, args: argparse.Namespace) -> dict:
    """Interleaved batches of every case at --concurrency clients and at 1 client."""
    results: dict[tuple[str, int, str], dict] = {}  # (CPU in ms, summed over the batches)
    for clients in dict.fromkeys((args.concurrency, 1)):
        for case, model, stream in CASES:
            body = _body(model, stream)
            readings = Readings(pg_pid)
            done, rounds = 0, 0
            while done < args.requests:
                n = min(args.batch, args.requests - done)
                order = list(targets.items())
                if rounds % 2:
                    order.reverse()
                for label, (proc, port) in order:
                    row = results.setdefault(
                        (label, clients, case),
                        {"rps": [], "cpu": 0.0, "pg_cpu": 0.0, "total": []},
                    )
                    readings.start(label, proc.pid, row)
                    result = asyncio.run(run_load(port, PATH, body, n, clients, KEY))
                    row["rps"].append(n / result["elapsed"][0])
                    row["total"] += result["total"]
                done += n
                rounds += 1
            time.sleep(0.5)  # (what the last batches left to finish)
            for label, (proc, _) in targets.items():
                readings.charge(label, proc.pid)
    return results


def report(results: dict, args: argparse.Namespace, pg_counted: bool, tree: str) -> None:
    c = args.concurrency
    total = sum(len(row["total"]) for row in results.values())
    print(
        f"{args.requests} requests per case, gateway and client count, batches of {args.batch} "
        f"interleaved ({total} measured requests, every one answered 200); 1 worker a gateway, "
        f"access log on; Python {sys.version.split()[0]}, {os.cpu_count()} cores; code: {tree}\n"
    )
    med = {}  # (req/s: the median of the batches; CPU: all the batches' CPU / all requests)
    for key, row in results.items():
        med[key] = {"rps": statistics.median(row["rps"]), "cpu": row["cpu"] / len(row["total"])}
        med[key]["pg_cpu"] = row["pg_cpu"] / len(row["total"])
    for clients in dict.fromkeys((c, 1)):
        print(f"At {clients} client{'s' if clients > 1 else ''}:\n")
        print(
            "| case | gateway | req/s | gateway CPU ms/req | PostgreSQL server CPU ms/req "
            "| p50 ms | p99 ms |"
        )
        print("|---|---|---|---|---|---|---|")
        for case, _, _ in CASES:
            for label in (SQLITE, POSTGRES, NOT_STORED):
                row, m = results[(label, clients, case)], med[(label, clients, case)]
                pg = "-"
                if label == POSTGRES:
                    pg = f"{m['pg_cpu']:.3f}" if pg_counted else "not counted"
                print(
                    f"| {case} | {label} | {m['rps']:.0f} | {m['cpu']:.3f} | {pg} | "
                    f"{_pct(row['total'], 0.5):.2f} | {_pct(row['total'], 0.99):.2f} |"
                )
        print()

    print(f"PostgreSQL / SQLite throughput (median req/s), target >= 0.80 at {c} clients:\n")
    print(f"| case | {c} clients | 1 client | target met |")
    print("|---|---|---|---|")
    for case, _, _ in CASES:
        ratios = [
            med[(POSTGRES, clients, case)]["rps"] / med[(SQLITE, clients, case)]["rps"]
            for clients in (c, 1)
        ]
        met = "yes" if ratios[0] >= 0.8 else "no"
        print(f"| {case} | {ratios[0]:.2f} | {ratios[1]:.2f} | {met} |")

    print(
        "\nThe store's share of gateway CPU, (CPU stored - CPU not stored) / CPU stored, from the "
        "figures above (target: at most half of today's):\n"
    )
    print(
        f"| case | SQLite, 1 client | SQLite, {c} clients | PostgreSQL, 1 client "
        f"| PostgreSQL, {c} clients |"
    )
    print("|---|---|---|---|---|")
    for case, _, _ in CASES:
        cells = []
        for label in (SQLITE, POSTGRES):
            for clients in (1, c):
                stored = med[(label, clients, case)]["cpu"]
                bare = med[(NOT_STORED, clients, case)]["cpu"]
                cells.append(f"{(stored - bare) / stored:.0%} ({stored - bare:.3f} ms)")
        print(f"| {case} | " + " | ".join(cells) + " |")
    print(
        "\n(The PostgreSQL gateway's share is of its own process only; "
        + (
            "the PostgreSQL server's CPU per request is in the first tables.)"
            if pg_counted
            else "the PostgreSQL server's CPU is not counted: it was not started by this script.)"
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=3000, help="per case, gateway and client count"
    )
    parser.add_argument("--batch", type=int, default=500, help="requests per interleaved batch")
    parser.add_argument("--concurrency", type=int, default=16, help="clients of the main run")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AI_ASSISTANT_TEST_POSTGRES_URL"),
        help="an existing PostgreSQL server (a database is created on it and dropped); default: "
        "AI_ASSISTANT_TEST_POSTGRES_URL, else a pgserver of the script's own",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        help="run the gateways on PATH/ai_assistant (PYTHONPATH=PATH), e.g. a snapshot made "
        "with `git archive HEAD | tar -x -C PATH`; default: the installed code",
    )
    args = parser.parse_args()
    if args.tree is not None:
        args.tree = args.tree.resolve()
        if not (args.tree / "ai_assistant" / "__init__.py").is_file():
            sys.exit(f"{args.tree} has no ai_assistant package")

    def stop(signum: int, frame: object) -> None:  # (SIGTERM cleans up as Ctrl-C does)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.tree is not None:
        env["PYTHONPATH"] = str(args.tree)

    with contextlib.ExitStack() as stack:
        admin_url, pg_pid = start_postgres(stack, args.postgres_url)
        db_url = create_database(stack, admin_url)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-store-")))
        for name in ("config", "data"):  # (no user-level settings, nothing in the user's data)
            (tmp / name).mkdir()
            env[f"XDG_{name.upper()}_HOME"] = str(tmp / name)
        servers = stack.enter_context(Servers(env, tmp))
        _, upstream_url = servers.upstream()
        roots = {
            SQLITE: settings(tmp / "sqlite", upstream_url),
            POSTGRES: postgres_settings(tmp / "postgresql", upstream_url, db_url),
            NOT_STORED: settings(
                tmp / "not-stored", upstream_url, "access_log = true\nstore_completions = false"
            ),
        }
        targets = {label: servers.gateway(root) for label, root in roots.items()}
        for proc, port in targets.values():
            wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
            for _, model, stream in CASES:  # (warm: imports, pools, bytecode, caches)
                asyncio.run(run_load(port, PATH, _body(model, stream), WARM, 4, KEY))
        start = (time.monotonic(), machine_busy_seconds(), own_seconds(servers, pg_pid))
        results = measure(targets, pg_pid, args)
        wall = time.monotonic() - start[0]
        busy = machine_busy_seconds() - start[1]
        others = busy - (own_seconds(servers, pg_pid) - start[2])
        counts = stored_messages(roots[SQLITE] / "history.db", db_url)

    tree = str(args.tree) if args.tree else "installed"
    report(results, args, pg_pid is not None, tree)
    sent = WARM * len(CASES) + args.requests * len(CASES) * 2  # (2 client counts)
    print(
        f"\nThe machine during the measurement: {wall:.0f} s, {busy / wall:.2f} of "
        f"{os.cpu_count()} cores busy, {max(0.0, others) / wall:.2f} of them by processes "
        "outside this run" + ("" if pg_pid else " (the PostgreSQL server's among them)")
    )
    print(
        f"Messages in the stores at the end ({sent} requests a gateway, warm-up included; 2 "
        f"messages a request where stored): SQLite {counts[SQLITE]}, PostgreSQL "
        f"{counts[POSTGRES]}"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # (every process it started is ended, its folders removed)
        sys.exit("interrupted")
