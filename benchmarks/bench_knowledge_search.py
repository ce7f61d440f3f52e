"""Knowledge search at scale, through the vector-store interface: fresh write throughput, search
latency in a warm process (the query vector given: no embedding), and the first searches that
pay for loading: after the writes, in a new process, and after another process wrote.

    python benchmarks/bench_knowledge_search.py                        # 100,000 chunks, SQLite
    python benchmarks/bench_knowledge_search.py --sizes 25000,50000,100000     # linear growth?
    python benchmarks/bench_knowledge_search.py --url postgresql://user@host/db
    python benchmarks/bench_knowledge_search.py --candidates           # numpy vs sqlite-vec

Chunks are ``--dim`` random unit vectors with ``--text`` characters of text, ten a document,
``--docs-per-write`` documents a ``write_documents`` call. Searches are k=5 over ``--queries``
random query vectors: unfiltered, and with a ``where`` that a tenth of the documents pass. The
default store is a new SQLite file in a temporary folder; a ``postgresql://`` URL is written
under a source of its own, dropped afterwards. ``--candidates`` puts the same data in the
embedded store and in sqlite-vec over apsw (``pip install apsw sqlite-vec``; skipped when
missing), and shows the installed size of each candidate's packages.

The machine may be shared: all stores are built first, then their searches are interleaved
(each query goes to every store in turn), so a busy spell slows them all alike. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ai_assistant.storage.base import mask_url
from ai_assistant.storage.vectors.base import Chunk, DocumentRows

CHUNKS_PER_DOCUMENT = 10
K = 5
TEAMS = 10  # documents are spread over ten teams: ``where team`` keeps a tenth
MORE = 1000  # chunks another writer adds before the "after another writer" search


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def documents(
    vectors: np.ndarray, text: int, per_write: int, first: int = 0
) -> Iterator[list[DocumentRows]]:
    """The chunks as documents of ten (numbered from ``first``), ``per_write`` at a time."""
    filler = ("lorem ipsum dolor sit amet " * (text // 27 + 1))[:text]
    batch = []
    for d in range(first, first + len(vectors) // CHUNKS_PER_DOCUMENT):
        base = (d - first) * CHUNKS_PER_DOCUMENT
        batch.append(
            DocumentRows(
                id=f"docs/{d}.md",
                hash=f"h{d}",
                metadata={
                    "path": f"docs/{d}.md",
                    "title": f"Document {d}",
                    "team": f"t{d % TEAMS}",
                },
                chunks=[
                    Chunk(i, filler, f"c{d * CHUNKS_PER_DOCUMENT + i}", vectors[base + i])
                    for i in range(CHUNKS_PER_DOCUMENT)
                ],
            )
        )
        if len(batch) == per_write:
            yield batch
            batch = []
    if batch:
        yield batch


def chunk_number(document_id: str, seq: int) -> int:
    return int(document_id[5:-3]) * CHUNKS_PER_DOCUMENT + seq


def open_store(url: str) -> Any:
    if url.startswith(("postgresql://", "postgres://")):
        from ai_assistant.storage.vectors.postgresql import PostgresVectorStore

        return PostgresVectorStore(url)
    from ai_assistant.storage.vectors.sqlite import SQLiteVectorStore

    return SQLiteVectorStore(url)


def percentiles(times: list[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``times`` (seconds), in ms."""
    cuts = statistics.quantiles(times, n=100, method="inclusive")
    return statistics.median(times) * 1000, cuts[94] * 1000, cuts[98] * 1000


def clock(call: Any, *args: Any) -> float:
    began = time.perf_counter()
    call(*args)
    return time.perf_counter() - began


# -- what is measured ------------------------------------------------------------------------------


class Store:
    """A vector store (``VectorStore``) at ``url``, holding the chunks under a source of its own."""

    def __init__(self, url: str, dim: int) -> None:
        self.url, self.dim = url, dim
        self.source = f"bench-{uuid.uuid4().hex[:8]}"
        self.store = open_store(url)
        self.store.claim_source(self.source, "random", dim)

    def write(self, batch: list[DocumentRows]) -> None:
        self.store.write_documents(self.source, batch)

    def search(self, q: np.ndarray, team: str | None = None) -> list[int]:
        hits = self.store.search(q, K, [self.source], {"team": team} if team else None)
        return [chunk_number(h.document_id, h.seq) for h in hits]

    def first_search_elsewhere(self) -> float:
        """The first search of a process that has just opened the store (imports and opening
        excluded): what a CLI command or a new worker pays once."""
        code = (
            "import sys, time, numpy as np\n"
            f"from {Path(__file__).stem} import open_store\n"
            "store = open_store(sys.argv[1])\n"
            "q = np.ones(int(sys.argv[3]), dtype=np.float32)\n"
            "t = time.perf_counter(); store.search(q, 5, [sys.argv[2]])\n"
            "print(time.perf_counter() - t)\n"
        )
        path = os.pathsep.join([str(Path(__file__).parent), *sys.path])
        out = subprocess.run(
            [sys.executable, "-c", code, self.url, self.source, str(self.dim)],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        return float(out.stdout.split()[-1])

    def write_elsewhere(self, batches: Iterator[list[DocumentRows]]) -> None:
        other = open_store(self.url)
        for batch in batches:
            other.write_documents(self.source, batch)
        other.close()

    def close(self) -> None:
        self.store.drop_source(self.source)
        self.store.close()


class SqliteVec:
    """sqlite-vec's ``vec0`` table (brute force, cosine, the team as a metadata column for the
    filter) in a SQLite file opened by apsw, whose SQLite can load extensions (this Python's
    ``sqlite3`` may not); chunk texts in a table beside it."""

    def __init__(self, path: str, dim: int) -> None:
        self.path, self.dim = path, dim
        self.db = self._connect()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            f"CREATE VIRTUAL TABLE vec_chunks USING vec0("
            f"embedding float[{dim}] distance_metric=cosine, team text)"
        )
        self.db.execute(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY, document TEXT, seq INT, text)"
        )

    def _connect(self) -> Any:
        import apsw
        import sqlite_vec

        db = apsw.Connection(self.path)
        db.enable_load_extension(True)
        db.load_extension(sqlite_vec.loadable_path())
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def write(self, batch: list[DocumentRows], db: Any = None) -> None:
        db = db or self.db
        rows = [
            (int(chunk.hash[1:]) + 1, doc, chunk)
            for doc in batch
            for chunk in doc.chunks  # (the chunk's number, from its hash, is its rowid)
        ]
        with db:
            db.executemany(
                "INSERT INTO chunks (id, document, seq, text) VALUES (?, ?, ?, ?)",
                [(n, doc.id, chunk.seq, chunk.text) for n, doc, chunk in rows],
            )
            db.executemany(
                "INSERT INTO vec_chunks (rowid, embedding, team) VALUES (?, ?, ?)",
                [
                    (n, np.asarray(chunk.vector, np.float32).tobytes(), doc.metadata["team"])
                    for n, doc, chunk in rows
                ],
            )

    def search(self, q: np.ndarray, team: str | None = None, db: Any = None) -> list[int]:
        where = " AND team = ?" if team else ""
        found = (db or self.db).execute(
            "SELECT c.document, c.seq, c.text, 1 - v.distance FROM ("
            f"SELECT rowid, distance FROM vec_chunks WHERE embedding MATCH ? AND k = ?{where}"
            ") v JOIN chunks c ON c.id = v.rowid ORDER BY v.distance",
            (q.astype(np.float32).tobytes(), K, *((team,) if team else ())),
        )
        return [chunk_number(document, seq) for document, seq, _, _ in found]

    def first_search_elsewhere(self) -> float:
        db = self._connect()  # (a new connection: sqlite-vec keeps no cache to warm)
        return clock(self.search, np.ones(self.dim, np.float32), None, db)

    def write_elsewhere(self, batches: Iterator[list[DocumentRows]]) -> None:
        db = self._connect()
        for batch in batches:
            self.write(batch, db)

    def close(self) -> None:
        self.db.close()


def measure(subjects: list[tuple[str, int, Any]], args: argparse.Namespace) -> list[dict]:
    """Fill each ``(label, n, subject)`` with the first ``n`` of the same chunks, then time
    their searches interleaved."""
    rng = np.random.default_rng(7)
    vectors = unit(rng, max(n for _, n, _ in subjects), args.dim)
    queries = unit(rng, args.queries, args.dim)
    more = unit(rng, MORE, args.dim)
    rows = []
    for label, n, subject in subjects:
        began = time.perf_counter()
        for batch in documents(vectors[:n], args.text, args.docs_per_write):
            subject.write(batch)
        write = time.perf_counter() - began
        rows.append(
            {
                "label": label,
                "n": n,
                "write": n / write,
                "after_write": clock(subject.search, queries[0]),
                "elsewhere": subject.first_search_elsewhere(),
                "plain": [],
                "filtered": [],
            }
        )
    pairs = list(zip(subjects, rows, strict=True))
    for team, key in ((None, "plain"), ("t3", "filtered")):
        for (_, _, subject), _ in pairs:
            subject.search(queries[0], team)  # (warm: a filter's rows are found once)
        for q in queries:
            for (_, _, subject), row in pairs:
                row[key].append(clock(subject.search, q, team))
    for (_, n, subject), row in pairs:
        exact = [int(i) for i in np.argsort(-(vectors[:n] @ queries[1]))[:K]]
        row["recall"] = len(set(subject.search(queries[1])) & set(exact)) / K
        subject.write_elsewhere(
            documents(more, args.text, args.docs_per_write, n // CHUNKS_PER_DOCUMENT)
        )
        row["after_other"] = clock(subject.search, queries[0])
        subject.close()
    return rows


def report(rows: list[dict]) -> None:
    print(
        "\n| store | chunks | write chunks/s | search p50 / p95 / p99 ms"
        " | where team (1/10) p50 / p95 / p99 ms"
        f" | first search after: the writes / opening elsewhere / {MORE:,} more written"
        " elsewhere ms | recall@5 |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        plain = " / ".join(f"{t:.2f}" for t in percentiles(r["plain"]))
        filtered = " / ".join(f"{t:.2f}" for t in percentiles(r["filtered"]))
        firsts = " / ".join(
            f"{r[key] * 1000:.0f}" for key in ("after_write", "elsewhere", "after_other")
        )
        print(
            f"| {r['label']} | {r['n']:,} | {r['write']:,.0f} | {plain} | {filtered} | {firsts} "
            f"| {r['recall']:.2f} |"
        )


# -- the candidates -------------------------------------------------------------------------------


def installed_mb(*names: str) -> float | None:
    """Megabytes on disk of distributions ``names`` and all they require, as installed here
    (None if one of ``names`` is not installed)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    total = 0
    todo = [(name, True) for name in names]
    while todo:
        name, asked = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if asked:
                return None
            continue
        total += sum(
            path.stat().st_size
            for path in (Path(dist.locate_file(file)) for file in dist.files or ())
            if path.is_file()
        )
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append((requirement.name, False))
    return total / 1e6


def sizes_table() -> None:
    print("\n| candidate | installed MB here (with what it requires) |")
    print("|---|---|")
    for label, names in (
        ("numpy", ("numpy",)),
        ("apsw + sqlite-vec", ("apsw", "sqlite-vec")),
        ("pysqlite3-binary + sqlite-vec", ("pysqlite3-binary", "sqlite-vec")),
        ("lancedb", ("lancedb",)),
        ("chromadb", ("chromadb",)),
    ):
        size = installed_mb(*names)
        print(f"| {label} | {'not installed' if size is None else f'{size:.0f}'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a vector store's URL (default: a new SQLite file)")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--sizes", help="comma-separated chunk counts, e.g. 25000,50000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--text", type=int, default=1000, help="characters of text a chunk")
    parser.add_argument("--docs-per-write", type=int, default=100)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--candidates", action="store_true", help="numpy vs sqlite-vec (apsw)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.chunks]
    print(
        f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    folder = tempfile.mkdtemp(prefix="bench-knowledge-")
    if not args.candidates:
        label = mask_url(args.url) if args.url else "SQLite"
        subjects = [
            (label, n, Store(args.url or os.path.join(folder, f"k{n}.db"), args.dim)) for n in sizes
        ]
        report(measure(subjects, args))
        return
    try:
        import apsw  # noqa: F401
        import sqlite_vec  # noqa: F401
    except ImportError:
        print("sqlite-vec over apsw: skipped (pip install apsw sqlite-vec)")
        vec = False
    else:
        vec = True
    subjects = []
    for n in sizes:
        subjects.append(("numpy over SQLite", n, Store(os.path.join(folder, f"k{n}.db"), args.dim)))
        if vec:
            subjects.append(
                ("sqlite-vec (apsw)", n, SqliteVec(os.path.join(folder, f"v{n}.db"), args.dim))
            )
    report(measure(subjects, args))
    sizes_table()


if __name__ == "__main__":
    main()
