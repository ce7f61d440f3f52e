"""The vector-store contract (``ai_assistant.storage.vectors.base``), on every bundled store, with
small hand-made vectors so that rankings and scores are exact; then what only the embedded SQLite
store promises (its file, its errors, its cache across processes)."""

from __future__ import annotations

import math
import os
import sqlite3
import stat

import pytest

from ai_assistant.storage.vectors.base import Chunk, DocumentRows, VectorStoreError
from ai_assistant.storage.vectors.sqlite import SQLiteVectorStore, default_knowledge_path

STORES = ["sqlite", "postgresql"]
R = 1 / math.sqrt(2)


def doc(doc_id: str, *vectors, hash: str | None = None, **metadata) -> DocumentRows:  # noqa: A002
    """A document whose chunk ``i`` has text ``"<id>:<i>"`` and vector ``vectors[i]``."""
    return DocumentRows(
        id=doc_id,
        hash=hash or f"h-{doc_id}",
        metadata=metadata,
        chunks=[
            Chunk(i, f"{doc_id}:{i}", f"c-{doc_id}-{i}", list(v)) for i, v in enumerate(vectors)
        ],
    )


def found(hits) -> list[tuple[str, str, int]]:
    return [(h.source, h.document_id, h.seq) for h in hits]


@pytest.fixture(params=STORES)
def open_store(request, tmp_path):
    """Opens a store at one URL (new and empty at first), on each store in turn; closes them
    all afterwards."""
    if request.param == "sqlite":
        url = str(tmp_path / "knowledge.db")
        make = SQLiteVectorStore
    else:
        module = pytest.importorskip("ai_assistant.storage.vectors.postgresql")
        url = request.getfixturevalue("postgres_url")
        make = module.PostgresVectorStore
    opened = []

    def open_() -> object:
        opened.append(make(url))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    store = open_store()
    store.claim_source("docs", "test-embeddings", 3)
    return store


# -- documents ---------------------------------------------------------------------------------


def test_written_documents_are_read_back_by_hash(store):
    store.write_documents("docs", [doc("a", [1, 0, 0]), doc("b", [0, 1, 0], [0, 0, 1])])
    assert store.document_hashes("docs") == {"a": "h-a", "b": "h-b"}
    store.write_documents("docs", [doc("a", [1, 0, 0], hash="h-a2")])
    assert store.document_hashes("docs") == {"a": "h-a2", "b": "h-b"}
    assert store.document_hashes("other") == {}


def test_a_document_that_shrank_loses_its_trailing_chunks(store):
    store.write_documents("docs", [doc("a", [1, 0, 0], [1, 0, 0], [1, 0, 0])])
    store.write_documents("docs", [doc("a", [0, 1, 0], hash="h-a2")])
    assert store.source("docs").chunks == 1
    hits = store.search([1, 1, 0], 10, ["docs"])
    assert found(hits) == [("docs", "a", 0)]
    assert hits[0].score == pytest.approx(R, abs=1e-6)
    assert set(store.chunk_vectors("docs", "a")) == {"c-a-0"}


def test_a_document_given_twice_in_one_write_is_stored_as_the_last(store):
    store.write_documents(
        "docs", [doc("a", [1, 0, 0], hash="first"), doc("a", [0, 1, 0], [0, 0, 1], hash="last")]
    )
    assert store.document_hashes("docs") == {"a": "last"}
    hits = store.search([0, 1, 0], 5, ["docs"])
    assert found(hits) == [("docs", "a", 0), ("docs", "a", 1)]
    assert hits[0].score == pytest.approx(1, abs=1e-6)


def test_deleted_documents_are_gone_with_their_chunks(store):
    store.write_documents("docs", [doc("a", [1, 0, 0], [0, 1, 0]), doc("b", [0, 0, 1])])
    assert store.delete_documents("docs", ["a", "missing"]) == 1
    assert store.document_hashes("docs") == {"b": "h-b"}
    assert store.source("docs").chunks == 1
    assert found(store.search([1, 0, 0], 10, ["docs"])) == [("docs", "b", 0)]
    assert store.delete_documents("docs", []) == 0


def test_chunk_vectors_give_each_chunk_hash_its_vector(store):
    store.write_documents("docs", [doc("a", [1, 0, 0], [0, R, R])])
    vectors = store.chunk_vectors("docs", "a")
    assert set(vectors) == {"c-a-0", "c-a-1"}
    assert list(vectors["c-a-0"]) == pytest.approx([1, 0, 0], abs=1e-6)
    assert list(vectors["c-a-1"]) == pytest.approx([0, R, R], abs=1e-6)
    assert store.chunk_vectors("docs", "missing") == {}


def test_a_vector_of_the_wrong_dimension_is_refused_naming_source_and_dimensions(store):
    store.write_documents("docs", [doc("a", [1, 0, 0])])
    with pytest.raises(VectorStoreError) as raised:
        store.write_documents("docs", [doc("b", [1, 0, 0]), doc("c", [1, 0])])
    message = str(raised.value)
    assert "docs" in message and "2" in message and "3" in message
    assert store.document_hashes("docs") == {"a": "h-a"}  # nothing of that write was kept


def test_a_query_of_the_wrong_dimension_is_refused_naming_source_and_dimensions(store):
    store.write_documents("docs", [doc("a", [1, 0, 0])])
    with pytest.raises(VectorStoreError) as raised:
        store.search([1, 0], 3, ["docs"])
    message = str(raised.value)
    assert "docs" in message and "2" in message and "3" in message


# -- search ------------------------------------------------------------------------------------


def test_search_ranks_by_cosine_similarity(store):
    store.write_documents(
        "docs",
        [
            doc("a", [1, 0, 0], [0, 1, 0], title="A"),
            doc("b", [2, 2, 0], path="/b.md"),  # (not of unit length: cosine all the same)
            doc("c", [-1, 0, 0]),
        ],
    )
    hits = store.search([3, 0, 0], 4, ["docs"])
    assert found(hits) == [("docs", "a", 0), ("docs", "b", 0), ("docs", "a", 1), ("docs", "c", 0)]
    assert [h.score for h in hits] == pytest.approx([1, R, 0, -1], abs=1e-6)
    assert [h.text for h in hits] == ["a:0", "b:0", "a:1", "c:0"]
    assert hits[0].metadata == {"title": "A"}
    assert hits[1].metadata == {"path": "/b.md"}
    assert found(store.search([0, 1, 0.1], 1, ["docs"])) == [("docs", "a", 1)]


def test_k_larger_than_the_rows_gives_every_row(store):
    store.write_documents("docs", [doc("a", [1, 0, 0], [0, 1, 0])])
    assert found(store.search([0, 1, 0], 50, ["docs"])) == [("docs", "a", 1), ("docs", "a", 0)]


def test_an_empty_store_finds_nothing(store):
    assert store.search([1, 0, 0], 5, ["docs"]) == []
    assert store.search([1, 0, 0], 5, ["never-claimed"]) == []
    assert store.search([1, 0, 0], 5, []) == []


def test_search_keeps_to_the_sources_asked_for(store):
    store.claim_source("other", "test-embeddings", 3)
    store.write_documents("docs", [doc("a", [1, 0, 0]), doc("b", [0, 1, 0])])
    store.write_documents("other", [doc("x", [R, R, 0]), doc("y", [0, 0, 1])])
    assert found(store.search([1, 0, 0], 2, ["docs"])) == [("docs", "a", 0), ("docs", "b", 0)]
    assert found(store.search([1, 0, 0], 1, ["other"])) == [("other", "x", 0)]
    both = store.search([1, 0.1, 0], 3, ["docs", "other"])
    assert found(both) == [("docs", "a", 0), ("other", "x", 0), ("docs", "b", 0)]


def test_where_matches_every_key_and_value_of_the_document_metadata(store):
    store.write_documents(
        "docs",
        [
            doc("a", [1, 0, 0], team="x", lang="en"),
            doc("b", [R, R, 0], team="x", lang="de"),
            doc("c", [0, 1, 0], team="y", lang="en"),
            doc("d", [0, 0, 1], team="x", lang="en", draft=True),
            doc("e", [0, R, R], draft=1),
        ],
    )
    query = [1, 0.5, 0.1]
    assert found(store.search(query, 5, ["docs"], where={"team": "x", "lang": "en"})) == [
        ("docs", "a", 0),
        ("docs", "d", 0),
    ]
    # most of the documents, then few: both must hold whatever the store does with each
    assert [h.document_id for h in store.search(query, 5, ["docs"], where={"team": "x"})] == [
        "b",
        "a",
        "d",
    ]
    assert [h.document_id for h in store.search(query, 5, ["docs"], where={"lang": "de"})] == ["b"]
    assert [h.document_id for h in store.search(query, 5, ["docs"], where={"draft": True})] == ["d"]
    assert store.search(query, 5, ["docs"], where={"team": "z"}) == []
    assert store.search(query, 5, ["docs"], where={"missing": None}) == []
    assert len(store.search(query, 5, ["docs"], where={})) == 5


def test_where_follows_changed_metadata(store):
    store.write_documents("docs", [doc("a", [1, 0, 0], team="x"), doc("b", [0, 1, 0], team="y")])
    assert found(store.search([1, 0, 0], 5, ["docs"], where={"team": "x"})) == [("docs", "a", 0)]
    store.write_documents("docs", [doc("a", [1, 0, 0], hash="h-a2", team="y")])
    assert store.search([1, 0, 0], 5, ["docs"], where={"team": "x"}) == []
    hits = store.search([1, 0, 0], 5, ["docs"], where={"team": "y"})
    assert found(hits) == [("docs", "a", 0), ("docs", "b", 0)]
    assert hits[0].metadata == {"team": "y"}


def test_search_sees_the_stores_own_writes(store):
    store.write_documents("docs", [doc("a", [0, 1, 0])])
    assert found(store.search([1, 0, 0], 1, ["docs"])) == [("docs", "a", 0)]
    store.write_documents("docs", [doc("b", [1, 0, 0])])
    assert found(store.search([1, 0, 0], 1, ["docs"])) == [("docs", "b", 0)]
    store.delete_documents("docs", ["b"])
    assert found(store.search([1, 0, 0], 1, ["docs"])) == [("docs", "a", 0)]


# -- sources -----------------------------------------------------------------------------------


def test_sources_count_documents_and_chunks(store):
    store.claim_source("other", "other-embeddings", 2)
    store.claim_source("docs", "test-embeddings", 3)  # (claiming again changes nothing)
    store.write_documents("docs", [doc("a", [1, 0, 0], [0, 1, 0]), doc("b", [0, 0, 1])])
    states = {s.name: s for s in store.sources()}
    assert list(states) == ["docs", "other"]
    docs = states["docs"]
    assert (docs.embeddings, docs.dimension, docs.documents, docs.chunks) == (
        "test-embeddings",
        3,
        2,
        3,
    )
    assert docs.last_ingest is None
    assert (states["other"].dimension, states["other"].documents, states["other"].chunks) == (
        2,
        0,
        0,
    )
    store.finish_ingest("docs", "2025-01-02T03:04:05+00:00")
    assert store.source("docs").last_ingest == "2025-01-02T03:04:05+00:00"
    assert store.source("never") is None


def test_a_dropped_source_is_forgotten_and_others_stay(store):
    store.claim_source("other", "test-embeddings", 3)
    store.write_documents("docs", [doc("a", [1, 0, 0])])
    store.write_documents("other", [doc("x", [1, 0, 0])])
    store.search([1, 0, 0], 1, ["docs", "other"])
    store.drop_source("docs")
    assert [s.name for s in store.sources()] == ["other"]
    assert store.document_hashes("docs") == {}
    assert found(store.search([1, 0, 0], 5, ["docs", "other"])) == [("other", "x", 0)]
    # claimed again, with another dimension, it starts empty
    store.claim_source("docs", "bigger", 4)
    assert store.search([1, 0, 0, 0], 5, ["docs"]) == []
    store.write_documents("docs", [doc("n", [0, 0, 0, 1])])
    assert found(store.search([0, 0, 0, 1], 5, ["docs"])) == [("docs", "n", 0)]


def test_everything_is_still_there_after_reopening(open_store):
    first = open_store()
    first.claim_source("docs", "test-embeddings", 3)
    first.write_documents("docs", [doc("a", [1, 0, 0], title="A"), doc("b", [0, 1, 0])])
    first.finish_ingest("docs", "2025-01-02T03:04:05+00:00")
    first.close()
    again = open_store()
    assert again.document_hashes("docs") == {"a": "h-a", "b": "h-b"}
    state = again.source("docs")
    assert (state.documents, state.chunks, state.dimension) == (2, 2, 3)
    assert state.last_ingest == "2025-01-02T03:04:05+00:00"
    hits = again.search([0, 1, 0], 2, ["docs"])
    assert found(hits) == [("docs", "b", 0), ("docs", "a", 0)]
    assert hits[1].metadata == {"title": "A"}


def test_a_search_sees_writes_made_through_another_store(open_store):
    reader, writer = open_store(), open_store()
    writer.claim_source("docs", "test-embeddings", 3)
    writer.write_documents("docs", [doc("a", [0, 1, 0])])
    assert found(reader.search([1, 0, 0], 1, ["docs"])) == [("docs", "a", 0)]
    writer.write_documents("docs", [doc("b", [1, 0, 0])])
    assert found(reader.search([1, 0, 0], 1, ["docs"])) == [("docs", "b", 0)]
    writer.delete_documents("docs", ["b"])
    assert found(reader.search([1, 0, 0], 1, ["docs"])) == [("docs", "a", 0)]
    writer.drop_source("docs")
    assert reader.search([1, 0, 0], 1, ["docs"]) == []
    writer.claim_source("docs", "test-embeddings", 3)
    writer.write_documents("docs", [doc("c", [1, 0, 0], team="x")])
    assert found(reader.search([1, 0, 0], 1, ["docs"], where={"team": "x"})) == [("docs", "c", 0)]


# -- the embedded SQLite store -------------------------------------------------------------------


def test_the_sqlite_file_is_private(tmp_path):
    path = tmp_path / "new" / "knowledge.db"
    with SQLiteVectorStore(f"sqlite:///{path}") as store:
        store.claim_source("docs", "e", 3)
        store.write_documents("docs", [doc("a", [1, 0, 0])])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for extra in (path.with_name("knowledge.db-wal"), path.with_name("knowledge.db-shm")):
            assert not extra.exists() or stat.S_IMODE(extra.stat().st_mode) == 0o600
        assert store.display_url == f"sqlite:///{path}"


def test_the_default_file_is_beside_the_history(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_knowledge_path() == tmp_path / "ai-assistant" / "knowledge.db"


def test_a_file_that_is_not_a_database_is_named_with_the_fix(tmp_path):
    path = tmp_path / "knowledge.db"
    path.write_text("these are my notes, not a database\n" * 200)
    with pytest.raises(VectorStoreError) as raised:
        SQLiteVectorStore(str(path))
    assert str(path) in str(raised.value) and "not a SQLite database" in str(raised.value)
    assert "move" in raised.value.hint and "knowledge.store" in raised.value.hint


def test_another_programs_database_is_not_taken_over(tmp_path):
    path = tmp_path / "history.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE conversations (id TEXT)")
    other.close()
    with pytest.raises(VectorStoreError, match="something else") as raised:
        SQLiteVectorStore(str(path))
    assert "knowledge.store" in raised.value.hint
    with sqlite3.connect(path) as other:
        tables = [r[0] for r in other.execute("SELECT name FROM sqlite_master")]
    other.close()
    assert tables == ["conversations"]


def test_the_schema_is_versioned_and_a_newer_one_is_refused(tmp_path):
    path = tmp_path / "knowledge.db"
    SQLiteVectorStore(str(path)).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(VectorStoreError, match="newer"):
        SQLiteVectorStore(str(path))


def test_a_locked_store_says_it_is_busy(tmp_path):
    path = tmp_path / "knowledge.db"
    store = SQLiteVectorStore(str(path), busy_timeout=0.1)
    store.claim_source("docs", "e", 3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(VectorStoreError, match="busy") as raised:
            store.write_documents("docs", [doc("a", [1, 0, 0])])
        assert "retry" in raised.value.hint
        assert store.search([1, 0, 0], 1, ["docs"]) == []  # (reading never waits on a writer)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.write_documents("docs", [doc("a", [1, 0, 0])])
    store.close()


def test_a_source_with_vectors_cannot_be_claimed_for_other_embeddings(tmp_path):
    with SQLiteVectorStore(str(tmp_path / "k.db")) as store:
        store.claim_source("docs", "e", 3)
        store.claim_source("docs", "e2", 2)  # (empty: may change)
        store.write_documents("docs", [doc("a", [1, 0])])
        with pytest.raises(VectorStoreError, match="e2 .2 dimensions") as raised:
            store.claim_source("docs", "e3", 3)
        assert "drop" in raised.value.hint
        with pytest.raises(VectorStoreError, match="claim"):
            store.write_documents("unclaimed", [doc("a", [1, 0])])
        store.write_documents("unclaimed", [doc("empty")])  # (no vector: nothing to check)
        assert store.document_hashes("unclaimed") == {"empty": "h-empty"}


def test_numpy_is_imported_only_by_the_sqlite_store():
    import subprocess
    import sys

    code = (
        "import sys, ai_assistant.storage.vectors, ai_assistant.storage.vectors.base\n"
        "assert 'numpy' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_cache_follows_any_mix_of_writes_from_another_store(tmp_path, monkeypatch):
    """A reader that keeps its matrix across another store's writes, rewrites, shrinks, deletes
    and drops (catching up, or reading whole when it fell too far behind) finds exactly what a
    store opened afresh finds."""
    import random

    from ai_assistant.storage.vectors import sqlite as module

    monkeypatch.setattr(module, "REMEMBERED", 6)
    monkeypatch.setattr(module, "_FORGET_EVERY", 4)
    url = str(tmp_path / "knowledge.db")
    rng = random.Random(5)
    writer, reader = SQLiteVectorStore(url), SQLiteVectorStore(url)
    writer.claim_source("docs", "e", 4)
    writer.claim_source("other", "e", 4)

    def vector() -> list[float]:
        return [rng.uniform(-1, 1) for _ in range(4)]

    def answer(store, query, where=None) -> tuple[list[tuple], list[float]]:
        hits = store.search(query, 1000, ["docs", "other"], where)
        hits.sort(key=lambda h: (h.source, h.document_id, h.seq))
        return [(h.source, h.document_id, h.seq, h.text) for h in hits], [h.score for h in hits]

    def same(one, other) -> bool:
        return one[0] == other[0] and one[1] == pytest.approx(other[1], abs=1e-5)

    for step in range(300):
        source = rng.choice(["docs", "docs", "other"])
        roll = rng.random()
        if roll < 0.6:
            docs = [
                doc(
                    f"d{rng.randrange(40)}",
                    *(vector() for _ in range(rng.randrange(0, 5))),
                    team=rng.choice("xy"),
                )
                for _ in range(rng.randrange(1, 6))
            ]
            writer.write_documents(source, docs)
        elif roll < 0.95:
            writer.delete_documents(source, [f"d{rng.randrange(40)}" for _ in range(3)])
        else:
            writer.drop_source(source)
            writer.claim_source(source, "e", 4)
        if rng.random() < 0.4:  # (the reader falls behind by a few writes at times)
            query = vector()
            with SQLiteVectorStore(url) as fresh:
                assert same(answer(reader, query), answer(fresh, query)), step
                where = {"team": "x"}
                assert same(answer(reader, query, where), answer(fresh, query, where)), step
    writer.close()
    reader.close()
