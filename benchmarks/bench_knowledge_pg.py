"""The PostgreSQL vector store at scale: fresh write throughput and search latency.

Writes ``--chunks`` chunks of ``--dim`` unit vectors (10 chunks a document, ``--batch``
documents a ``write_documents`` call, then ``finish_ingest``, which builds the HNSW index) into a
new database, then times ``--queries`` searches (k=5; unfiltered, then with a metadata filter that
a tenth of the documents pass), the query vector given (no embedding), and the recall of the
unfiltered ones against an exact scan; last, the ingest of a second source of ``--chunks``/10
chunks into the indexed table (every row through the live graph). The vectors are like sentence
embeddings: a 32-dimensional latent projected to ``--dim`` plus noise (uniformly random vectors
are a worst case no embedding model produces: HNSW recall and speed both collapse on them).

    python benchmarks/bench_knowledge_pg.py                  # a pgserver of its own
    python benchmarks/bench_knowledge_pg.py --url postgresql://user:pw@host/db  # creates/drops
                                                                                # a database
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ai_assistant.storage.vectors.base import Chunk, DocumentRows
from ai_assistant.storage.vectors.postgresql import PostgresVectorStore

CHUNKS_PER_DOCUMENT = 10


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    projection = np.random.default_rng(5).standard_normal((32, dim))
    v = rng.standard_normal((n, 32)) @ projection + 0.3 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def documents(vectors: np.ndarray, first: int, last: int, prefix: str = "") -> list[DocumentRows]:
    rows = []
    for d in range(first, last):
        base = d * CHUNKS_PER_DOCUMENT
        rows.append(
            DocumentRows(
                id=f"{prefix}doc-{d}",
                hash=f"h{d}",
                metadata={"path": f"docs/{d}.md", "team": f"t{d % 10}"},
                chunks=[
                    Chunk(i, f"chunk {i} of document {d}", f"c{base + i}", vectors[base + i])
                    for i in range(CHUNKS_PER_DOCUMENT)
                ],
            )
        )
    return rows


def ingest(store: PostgresVectorStore, source: str, vectors: np.ndarray, batch: int) -> float:
    """Chunks per second of a whole ingest of ``vectors`` as ``source``."""
    store.claim_source(source, "synthetic", vectors.shape[1])
    docs = len(vectors) // CHUNKS_PER_DOCUMENT
    started = time.perf_counter()
    for first in range(0, docs, batch):
        store.write_documents(source, documents(vectors, first, min(first + batch, docs)))
    store.finish_ingest(source, "2025-01-01T00:00:00+00:00")
    return docs * CHUNKS_PER_DOCUMENT / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def run(url: str, chunks: int, dim: int, queries: int, batch: int) -> None:
    rng = np.random.default_rng(7)
    store = PostgresVectorStore(url)
    vectors = unit(rng, chunks, dim)
    rate = ingest(store, "bench", vectors, batch)
    print(
        f"fresh ingest: {chunks} chunks x {dim} dims, {rate:,.0f} chunks/s (index built at the end)"
    )

    qs = unit(rng, queries, dim)
    for label, where in (("unfiltered", None), ("where team=t3", {"team": "t3"})):
        store.search(qs[0], 5, ["bench"], where)  # (warm)
        times, found = [], 0
        for q in qs:
            t = time.perf_counter()
            hits = store.search(q, 5, ["bench"], where)
            times.append((time.perf_counter() - t) * 1000)
            found += len(hits)
        print(
            f"search k=5 {label}: p50 {percentile(times, 50):.2f} ms, "
            f"p95 {percentile(times, 95):.2f} ms ({found / len(qs):.1f} hits per query)"
        )

    # recall@5 of the index against the exact answer, on the vectors in memory
    recall = 0.0
    for q in qs[:50]:
        exact = set(np.argsort(-(vectors @ q))[:5])
        hits = store.search(q, 5, ["bench"])
        got = {int(h.document_id[4:]) * CHUNKS_PER_DOCUMENT + h.seq for h in hits}
        recall += len(got & {int(i) for i in exact}) / 5
    print(f"recall@5 (unfiltered, 50 queries): {recall / 50:.2f}")

    rate = ingest(store, "second", unit(rng, chunks // 10, dim), batch)
    print(f"second source into the indexed table: {chunks // 10} chunks, {rate:,.0f} chunks/s")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL server with pgvector (default: pgserver)")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100, help="documents a write")
    args = parser.parse_args()

    import psycopg

    data = server = None
    admin_url = args.url
    if admin_url is None:
        import pgserver

        data = tempfile.mkdtemp(prefix="bench-knowledge-pg-")
        server = pgserver.get_server(data, cleanup_mode="stop")
        admin_url = server.get_uri()
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        run(
            urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}")),
            args.chunks,
            args.dim,
            args.queries,
            args.batch,
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        if server is not None:
            server.cleanup()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
