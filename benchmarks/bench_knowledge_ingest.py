"""Issue 12's ingest figures, as whole `ai-assistant knowledge ingest` processes (what a user
waits for), on the offline `hashing` embeddings and the embedded store:

- a fresh ingest: chunks per second (wall time of the whole process, start-up included);
- a re-run over the same, unchanged files: seconds (target: at most 5 s at 10,000 files);
- both at several sizes, to show the cost grows linearly.

    python benchmarks/bench_knowledge_ingest.py                      # 2,500, 5,000, 10,000 files
    python benchmarks/bench_knowledge_ingest.py --sizes 1000,20000 --runs 3

Each file is a Markdown page of about 2,000 characters (2 to 3 chunks at chunk_size 1000). Runs
are medians of --runs whole processes; the fresh ingest starts from an empty store each time.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [
    "deploy",
    "service",
    "cluster",
    "node",
    "pod",
    "billing",
    "invoice",
    "ledger",
    "rollback",
    "release",
    "pipeline",
    "build",
    "artifact",
    "registry",
    "secret",
    "vault",
    "token",
    "rotate",
    "alert",
    "page",
    "incident",
    "postmortem",
    "latency",
    "error",
    "budget",
    "quota",
    "region",
    "zone",
    "replica",
    "shard",
    "index",
    "query",
    "cache",
    "queue",
    "topic",
    "consumer",
    "producer",
    "schema",
    "migration",
    "backup",
    "restore",
    "snapshot",
    "volume",
    "network",
    "ingress",
    "egress",
    "policy",
    "role",
]


def write_corpus(folder: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(files):
        sub = folder / "docs" / f"area{i % 50:02}"
        sub.mkdir(parents=True, exist_ok=True)
        paragraphs = []
        for _ in range(6):
            paragraphs.append(" ".join(rng.choice(WORDS) for _ in range(50)) + ".")
        (sub / f"page{i:05}.md").write_text(f"# Page {i}\n\n" + "\n\n".join(paragraphs) + "\n")


def run(folder: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ai_assistant", "knowledge", "ingest"],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(folder / "data")},
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout.strip()


def chunks_of(summary: str) -> int:
    # "handbook: N added, ... (C chunks written, ..."
    return int(summary.split("(", 1)[1].split(" chunks", 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2500,5000,10000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; medians of {args.runs} runs")
    print(f"{'files':>7} {'chunks':>7} {'fresh s':>8} {'chunks/s':>9} {'re-run s':>9}")
    for files in sizes:
        folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        try:
            (folder / "settings.toml").write_text(
                '[default.models.echo]\nmodels = [{ id = "echo" }]\n'
                '[default.knowledge]\nembeddings = "hashing"\nstore = "knowledge.db"\n'
                "[default.knowledge.sources.handbook]\n"
                'ingestor = "files"\npaths = ["docs"]\n'
            )
            write_corpus(folder, files)
            fresh, reruns, chunks = [], [], 0
            for _ in range(args.runs):
                for leftover in folder.glob("knowledge.db*"):
                    leftover.unlink()
                elapsed, summary = run(folder)
                fresh.append(elapsed)
                chunks = chunks_of(summary)
                elapsed, summary = run(folder)
                assert f"{files} unchanged" in summary, summary
                reruns.append(elapsed)
            f, r = statistics.median(fresh), statistics.median(reruns)
            print(f"{files:>7} {chunks:>7} {f:>8.2f} {chunks / f:>9.0f} {r:>9.2f}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
