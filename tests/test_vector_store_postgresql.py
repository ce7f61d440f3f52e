"""The PostgreSQL vector store (pgvector): what PostgreSQL adds to the contract every store keeps
(``test_vector_stores.py``): fixed-dimension columns with an HNSW index that searches use, one
table per dimension, filtered searches that still find k, migrations from several processes at
once, passwords kept out of errors, and data that outlives the store."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
import traceback
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from ai_assistant.storage.vectors.base import Chunk, DocumentRows, VectorStoreError

psycopg = pytest.importorskip("psycopg")

from ai_assistant.storage.vectors.postgresql import (  # noqa: E402
    PostgresVectorStore,
    search_sql,
)


def unit_vectors(n: int, dimension: int, seed: int = 1) -> list[list[float]]:
    rng = random.Random(seed)
    vectors = []
    for _ in range(n):
        v = [rng.gauss(0, 1) for _ in range(dimension)]
        norm = math.sqrt(sum(x * x for x in v))
        vectors.append([x / norm for x in v])
    return vectors


def documents(
    vectors: list[list[float]], per_document: int = 10, prefix: str = "doc"
) -> list[DocumentRows]:
    """Documents of ``per_document`` chunks each; document ``i`` has metadata ``{"n": i % 20}``."""
    docs = []
    for i in range(len(vectors) // per_document):
        chunks = [
            Chunk(
                seq,
                f"{prefix} {i} chunk {seq}",
                f"{prefix}-{i}-{seq}",
                vectors[i * per_document + seq],
            )
            for seq in range(per_document)
        ]
        docs.append(
            DocumentRows(f"{prefix}-{i}", f"h{i}", {"n": i % 20, "path": f"{i}.md"}, chunks)
        )
    return docs


def exact(query: list[float], docs: list[DocumentRows], k: int, keep=lambda doc: True) -> list:
    """The ``k`` closest chunks by brute force: ``[(document id, seq)]``, best first."""
    scored = [
        (sum(a * b for a, b in zip(query, chunk.vector, strict=True)), doc.id, chunk.seq)
        for doc in docs
        if keep(doc)
        for chunk in doc.chunks
    ]
    return [(doc_id, seq) for _, doc_id, seq in sorted(scored, reverse=True)[:k]]


@pytest.fixture
def store(postgres_url):
    with PostgresVectorStore(postgres_url) as opened:
        yield opened


def sql(url: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_a_column_has_its_dimension_and_an_hnsw_index_that_searches_use(store, postgres_url):
    vectors = unit_vectors(2000, 8)
    store.claim_source("docs", "fake-8", 8)
    docs = documents(vectors)
    store.write_documents("docs", docs)
    # before the ingest finishes (a fresh table has no index yet), a search is already right
    assert [(h.document_id, h.seq) for h in store.search(vectors[7], 3, ["docs"])] == exact(
        vectors[7], docs, 3
    )
    store.finish_ingest("docs", "2025-01-01T00:00:00+00:00")

    column = sql(
        postgres_url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'knowledge_chunks_8'::regclass AND attname = 'embedding'",
    )
    assert column == [("vector(8)",)]
    (index,) = sql(
        postgres_url,
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'knowledge_chunks_8' "
        "AND indexdef ILIKE '%hnsw%'",
    )
    assert "vector_cosine_ops" in index[0]

    for where in (False, True):
        plan = "\n".join(
            row[0]
            for row in sql(
                postgres_url,
                "EXPLAIN " + search_sql(8, where),
                {
                    "query": str(vectors[7]),
                    "sources": ["docs"],
                    "where": psycopg.types.json.Jsonb({"n": 3}),
                    "k": 5,
                },
            )
        )
        assert "Index Scan using knowledge_chunks_8_embedding" in plan, plan

    # and the store's own searches go through it
    def index_scans() -> int:
        return sql(
            postgres_url,
            "SELECT idx_scan FROM pg_stat_user_indexes "
            "WHERE indexrelname = 'knowledge_chunks_8_embedding'",
        )[0][0]

    before = index_scans()
    hits = store.search(vectors[7], 5, ["docs"])
    assert (hits[0].document_id, hits[0].seq) == ("doc-0", 7)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    store.close()  # (a backend's statistics reach the others when it ends, or seconds later)
    deadline = time.monotonic() + 15
    while index_scans() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert index_scans() > before


def test_sources_of_two_dimensions_live_side_by_side(store, postgres_url):
    small, large = unit_vectors(50, 4, seed=2), unit_vectors(50, 12, seed=3)
    store.claim_source("four", "e4", 4)
    store.claim_source("twelve", "e12", 12)
    store.write_documents("four", documents(small, prefix="f"))
    store.write_documents("twelve", documents(large, prefix="t"))
    for name in ("four", "twelve"):
        store.finish_ingest(name, "2025-01-01T00:00:00+00:00")

    types = sql(
        postgres_url,
        "SELECT relname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "JOIN pg_class ON pg_class.oid = attrelid WHERE attname = 'embedding' "
        "AND relkind = 'r' AND relname LIKE 'knowledge_chunks_%' ORDER BY 1",
    )
    assert types == [("knowledge_chunks_12", "vector(12)"), ("knowledge_chunks_4", "vector(4)")]
    assert [(s.name, s.dimension, s.documents, s.chunks) for s in store.sources()] == [
        ("four", 4, 5, 50),
        ("twelve", 12, 5, 50),
    ]
    assert [(h.document_id, h.seq) for h in store.search(small[0], 1, ["four"])] == [("f-0", 0)]
    assert [(h.document_id, h.seq) for h in store.search(large[0], 1, ["twelve"])] == [("t-0", 0)]
    with pytest.raises(VectorStoreError, match=r"7 dimensions .*'four' \(4 dimensions\)"):
        store.search([1.0] * 7, 5, ["four"])
    assert store.search([1.0] * 7, 5, ["missing"]) == []  # (nor a table of 7 dimensions)


def test_filtered_searches_still_find_k_when_the_index_alone_would_not(store):
    vectors = unit_vectors(3000, 8, seed=4)
    docs = documents(vectors)
    tiny = documents(unit_vectors(30, 8, seed=5), prefix="tiny")
    store.claim_source("big", "e", 8)
    store.claim_source("tiny", "e", 8)
    store.write_documents("big", docs)
    store.write_documents("tiny", tiny)
    store.finish_ingest("big", "2025-01-01T00:00:00+00:00")
    query = unit_vectors(1, 8, seed=6)[0]

    # one document in twenty passes: the index's first candidates hold fewer than k of them
    hits = store.search(query, 8, ["big"], where={"n": 3})
    assert len(hits) == 8 and all(h.metadata["n"] == 3 for h in hits)
    assert [(h.document_id, h.seq) for h in hits] == exact(
        query, docs, 8, keep=lambda doc: doc.metadata["n"] == 3
    )
    assert hits == sorted(hits, key=lambda h: -h.score)

    # a small source sharing the table with a large one
    hits = store.search(query, 8, ["tiny"])
    assert [(h.document_id, h.seq) for h in hits] == exact(query, tiny, 8)

    # fewer than k exist: every one, once
    assert len(store.search(query, 50, ["tiny"], where={"n": 1})) == 10
    assert store.search(query, 5, ["big"], where={"n": 99}) == []


def test_an_unchanged_chunk_is_not_rewritten_and_a_failed_write_leaves_nothing(store, postgres_url):
    vectors = unit_vectors(30, 4, seed=7)
    store.claim_source("docs", "e", 4)
    first, second, third = documents(vectors)
    store.write_documents("docs", [first, second])

    def versions() -> dict:
        return dict(
            sql(
                postgres_url,
                "SELECT seq, xmin::text FROM knowledge_chunks_4 WHERE document_id = %s",
                (first.id,),
            )
        )

    before = versions()
    first.chunks[3] = Chunk(3, "new text", "new-hash", vectors[29])
    first.hash = "changed"
    store.write_documents("docs", [first])
    after = versions()
    assert [seq for seq in before if before[seq] != after[seq]] == [3]

    # a wrong vector in the second document: nothing of the call is kept
    third.chunks[0] = Chunk(0, "bad", "bad", [1.0, 0.0])
    first.hash = "changed again"
    with pytest.raises(VectorStoreError, match="dimensions"):
        store.write_documents("docs", [first, third])
    assert store.document_hashes("docs") == {first.id: "changed", second.id: second.hash}
    assert versions() == after


MIGRATE = """
import sys
from ai_assistant.storage.vectors.postgresql import PostgresVectorStore
store = PostgresVectorStore(sys.argv[1])
store.claim_source(sys.argv[2], "e", 16)
print(len(store.sources()) >= 1)
"""


def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, postgres_url, f"source-{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "True"
    assert sql(postgres_url, "SELECT version FROM knowledge_schema_migrations") == [(1,)]
    with PostgresVectorStore(postgres_url) as store:
        assert [s.name for s in store.sources()] == [f"source-{i}" for i in range(4)]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bob:s3cret-pw@127.0.0.1:9/knowledge",
        "postgres://127.0.0.1:9/knowledge?user=bob&password=s3cret-pw",
    ],
)
def test_the_password_is_never_in_an_error(url):
    with pytest.raises(VectorStoreError) as caught:
        PostgresVectorStore(url)
    error = caught.value
    shown = "".join(traceback.format_exception(error)) + str(error.hint)
    assert "s3cret-pw" not in shown
    assert "cannot open the vector store postgres" in str(error)
    assert "********" in str(error) and "127.0.0.1:9" in str(error)
    assert "knowledge.store" in error.hint


def test_a_user_who_may_not_enable_pgvector_is_told_who_can(postgres_server, postgres_url):
    if "AI_ASSISTANT_TEST_POSTGRES_URL" in os.environ:
        pytest.skip("needs a server where a new role may log in without a password (pgserver)")
    role = f"kb_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(postgres_url)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER DATABASE {parts.path.lstrip('/')} OWNER TO {role}")
    url = urlunsplit(parts._replace(netloc=f"{role}@" + parts.netloc.split("@")[-1]))
    try:
        with pytest.raises(VectorStoreError) as caught:
            PostgresVectorStore(url)
        assert "pgvector" in str(caught.value)
        assert "CREATE EXTENSION vector" in caught.value.hint
        # once a superuser has, the role's store opens
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION vector")
        with PostgresVectorStore(url) as store:
            store.claim_source("docs", "e", 3)
            assert store.source("docs").dimension == 3
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            admin.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_a_store_reopened_on_the_database_sees_what_was_written(postgres_url):
    vectors = unit_vectors(40, 6, seed=8)
    with PostgresVectorStore(postgres_url) as store:
        store.claim_source("docs", "e6", 6)
        store.write_documents("docs", documents(vectors))
        store.finish_ingest("docs", "2025-02-03T04:05:06+00:00")
        hits = store.search(vectors[12], 4, ["docs"], where={"n": 1})
    with PostgresVectorStore(postgres_url) as again:
        state = again.source("docs")
        assert (state.embeddings, state.dimension, state.documents, state.chunks) == (
            "e6",
            6,
            4,
            40,
        )
        assert state.last_ingest == "2025-02-03T04:05:06+00:00"
        assert again.document_hashes("docs") == {f"doc-{i}": f"h{i}" for i in range(4)}
        stored = again.chunk_vectors("docs", "doc-1")
        assert stored["doc-1-2"] == pytest.approx(vectors[12], abs=1e-6)
        assert again.search(vectors[12], 4, ["docs"], where={"n": 1}) == hits
        assert hits[0].metadata == {"n": 1, "path": "1.md"}
