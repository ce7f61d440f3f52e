"""The embedded default vector store: one SQLite file, searched by numpy.

Chosen by measurement (``benchmarks/bench_knowledge_search.py --candidates``): it installs from
wheels everywhere with no compiler and no server, works with any ``sqlite3`` (no extension
loading), and at 100,000 chunks of 384 dimensions a search takes 7-8 ms on two busy cores
(sqlite-vec's brute force took ten times as long; LanceDB and Chroma weigh 450-500 MB).

Vectors are stored L2-normalised as float32 blobs, so a cosine similarity is a dot product. Each
source's vectors are held in process memory as one matrix, loaded on first search; a search is
one matrix-vector product over the matching rows and an ``argpartition``, so its cost grows
linearly with the chunks searched. Every write transaction stamps the sources it changed with a
new value of a store-wide ``generation`` counter; each search reads those stamps (one small
query, in the same read transaction as the rows it returns), and brings the matrix of a source
whose stamp changed up to date by reading just the chunks written and removed since, so a search
sees what any process wrote before it began.

The file is private (0600, folders created 0700), in WAL mode; every wait for another process's
lock is bounded, then reported as busy. The schema is versioned by ``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..base import (
    create_private_file,
    default_store_path,
    enable_wal,
    is_busy,
    make_private_folders,
    now,
    sqlite_path,
)
from .base import Chunk, DocumentRows, Hit, SourceState, VectorStore, VectorStoreError

BUSY_TIMEOUT = 5.0  # seconds a write waits for another process's lock before "busy"
APPLICATION_ID = 0x4B4E4F57  # "KNOW": tells our files from other SQLite databases

# the schema, one script per version (PRAGMA user_version); never edit a published one: append.
# A chunk's text and hash have a table of their own so that loading vectors reads only vectors
# (five to a page). ``store_meta.generation`` counts write transactions; ``sources.created`` is
# the generation that created the source (a source dropped and claimed again is another one);
# ``chunks.generation`` is the stamp of the write that last wrote the row, and
# ``removed_chunks`` says which write removed which chunk, so a cache can read just what changed
# since it was loaded. Removals are remembered for the last ``REMEMBERED`` writes (everything up
# to ``store_meta.forgotten`` is forgotten); a cache older than that is read whole.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE store_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO store_meta (key, value) VALUES ('generation', 0), ('forgotten', 0);
    CREATE TABLE sources (
        name TEXT PRIMARY KEY,
        embeddings TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        last_ingest TEXT,
        created INTEGER NOT NULL,
        generation INTEGER NOT NULL
    );
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        hash TEXT NOT NULL,
        metadata TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (source, doc_id)
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        document INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        vector BLOB NOT NULL,
        UNIQUE (document, seq)
    );
    CREATE INDEX chunks_of_source ON chunks (source, generation, document);
    CREATE TABLE chunk_texts (id INTEGER PRIMARY KEY, hash TEXT NOT NULL, text TEXT NOT NULL);
    CREATE TABLE removed_chunks (
        generation INTEGER NOT NULL,
        source TEXT NOT NULL,
        id INTEGER NOT NULL
    );
    CREATE INDEX removed_chunks_since ON removed_chunks (generation);
    """,
)

_FILTERS_KEPT = 16  # filters whose rows (and small sub-matrices) each source keeps
REMEMBERED = 1000  # writes whose removals are kept for caches to catch up with
_FORGET_EVERY = 100  # writes between two forgettings of older removals


def default_knowledge_path() -> Path:
    """``knowledge.db`` beside the history database, in the user's data directory."""
    return default_store_path().with_name("knowledge.db")


class _Matrix:
    """One source's vectors as searched, as of ``generation``: row ``i`` is chunk ``ids[i]`` of
    document ``documents[i]`` (rowids in the file). Rows are updated in place: a rewritten chunk
    keeps its row, a new one is appended (into spare rows, grown by a quarter when full), and a
    removed one is marked dead (id and document -1, scored -inf) until dead rows are a quarter
    of all, when the matrix is compacted."""

    __slots__ = (
        "generation",
        "created",
        "size",
        "_vectors",
        "_ids",
        "_documents",
        "dead",
        "filters",
    )

    def __init__(
        self, generation: int, created: int, ids: Any, documents: Any, vectors: Any, size: int
    ) -> None:
        self.generation, self.created = generation, created
        self.size = size  # (rows past it are spare)
        self._ids, self._documents, self._vectors = ids, documents, vectors
        self.dead = np.empty(0, dtype=np.int64)  # positions of removed rows
        # per ``where`` filter (as of ``generation``): the matching rows, and a copy of just
        # those rows when they are few
        self.filters: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

    @property
    def vectors(self) -> Any:
        return self._vectors[: self.size]

    @property
    def ids(self) -> Any:
        return self._ids[: self.size]

    @property
    def documents(self) -> Any:
        return self._documents[: self.size]

    @property
    def live(self) -> int:
        return self.size - len(self.dead)

    def positions(self, ids: Any) -> Any:
        """The row of each of ``ids``, or -1."""
        if not self.size or not len(ids):
            return np.full(len(ids), -1, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        ordered = self.ids[order]
        at = np.minimum(np.searchsorted(ordered, ids), self.size - 1)
        return np.where(ordered[at] == ids, order[at], -1)

    def forget(self, ids: Any) -> None:
        rows = self.positions(ids)
        rows = rows[rows >= 0]
        self._ids[rows] = -1
        self._documents[rows] = -1
        self.dead = np.union1d(self.dead, rows)

    def put(self, ids: Any, documents: Any, vectors: Any) -> None:
        rows = self.positions(ids)
        old = rows >= 0
        self._vectors[rows[old]] = vectors[old]
        self._documents[rows[old]] = documents[old]
        new = ~old
        added = int(new.sum())
        if self.size + added > len(self._ids):
            self._grow(max(self.size + added, self.size * 5 // 4))
        end = self.size + added
        self._vectors[self.size : end] = vectors[new]
        self._ids[self.size : end] = ids[new]
        self._documents[self.size : end] = documents[new]
        self.size = end

    def _grow(self, capacity: int) -> None:
        keep = np.ones(self.size, dtype=bool)
        keep[self.dead] = False
        live = int(keep.sum())
        vectors = np.empty((max(capacity, live), self._vectors.shape[1]), dtype=np.float32)
        ids = np.empty(len(vectors), dtype=np.int64)
        documents = np.empty(len(vectors), dtype=np.int64)
        if live == self.size:  # (slices copy fast; np.compress with ``out`` is 10x slower)
            vectors[:live], ids[:live], documents[:live] = self.vectors, self.ids, self.documents
        else:
            vectors[:live] = self.vectors[keep]
            ids[:live], documents[:live] = self.ids[keep], self.documents[keep]
        self._vectors, self._ids, self._documents = vectors, ids, documents
        self.size, self.dead = live, np.empty(0, dtype=np.int64)

    def compact(self) -> None:
        """Drop the dead rows once they are a quarter of all (a copy of the live ones)."""
        if len(self.dead) * 4 > self.size:
            self._grow(self.size - len(self.dead))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _matches(metadata: dict[str, Any], where: dict[str, Any]) -> bool:
    return all(name in metadata and _same(metadata[name], v) for name, v in where.items())


def _unit_rows(vectors: Any) -> Any:
    """``vectors`` as float32 rows of unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32, copy=False)


def _read_rows(
    cursor: sqlite3.Cursor, count: int, dimension: int, spare: int = 0
) -> tuple[Any, Any, Any]:
    """The ``count`` rows of (id, document, vector blob) of ``cursor`` as three arrays, read in
    batches into arrays made beforehand (never the whole result as Python objects at once),
    with ``spare`` rows more at the end (which cost no memory until written)."""
    rowids = np.empty(count + spare, dtype=np.int64)
    documents = np.empty(count + spare, dtype=np.int64)
    vectors = np.empty((count + spare, dimension), dtype=np.float32)
    start = 0
    while batch := cursor.fetchmany(4096):
        end = start + len(batch)
        ids, docs, blobs = zip(*batch, strict=True)
        rowids[start:end] = ids
        documents[start:end] = docs
        vectors[start:end] = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(-1, dimension)
        start = end
    return rowids, documents, vectors


def _dot(vectors: Any, query: Any) -> Any:
    """Each row of ``vectors`` times ``query``. numpy's own loop on this thread, not BLAS: as
    fast here (the product is bound by memory), and BLAS's threads, which spin waiting for each
    other, make a search several times slower as soon as other work competes for the cores."""
    return np.einsum("ij,j->i", vectors, query)


def _top(scores: Any, k: int) -> Any:
    """Indices of the ``k`` highest ``scores``, highest first."""
    if k < len(scores):
        part = np.argpartition(scores, len(scores) - k)[len(scores) - k :]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


class SQLiteVectorStore(VectorStore):
    """Knowledge in one SQLite file (``url``: a path or ``sqlite:///path``). Safe to share
    between threads (one lock), and between processes (WAL, generation stamps)."""

    kind = "SQLite vector store"

    def __init__(self, url: str, busy_timeout: float = BUSY_TIMEOUT) -> None:
        super().__init__(str(url))
        self.path = Path(sqlite_path(str(url))).expanduser()
        self.busy_timeout = float(busy_timeout)
        self._lock = threading.RLock()
        self._matrices: dict[str, _Matrix] = {}
        in_memory = str(self.path) == ":memory:"
        try:
            if not in_memory:
                make_private_folders(self.path.parent)
                create_private_file(self.path)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
            )
        except (OSError, sqlite3.Error) as exc:
            raise VectorStoreError(
                f"cannot open the knowledge store {self.path}: {exc}",
                hint="set knowledge.store to a writable file",
            ) from None
        try:
            with self._errors():
                # (8 KiB pages hold five vectors of 384 floats; 4 KiB ones only two)
                self._db.execute("PRAGMA page_size = 8192")  # (a no-op once the file has pages)
                if not in_memory:
                    self._enable_wal()
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._migrate()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteVectorStore({str(self.path)!r})"

    # -- the file ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as ``VectorStoreError``s that say which file and what to do."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_busy(exc):
                raise VectorStoreError(
                    f"the knowledge store {self.path} is busy: another process held its lock "
                    f"for more than {self.busy_timeout:g} s",
                    hint="retry in a moment",
                ) from None
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise self._not_ours("is not a SQLite database") from None
            raise VectorStoreError(
                f"the knowledge store {self.path} failed: {exc}",
                hint="check that the file and its folder are writable",
            ) from None

    def _not_ours(self, what: str) -> VectorStoreError:
        return VectorStoreError(
            f"{self.path} {what}, so it cannot be the knowledge store",
            hint="move the file away (a new store is created in its place), or set "
            "knowledge.store to another file",
        )

    def _enable_wal(self) -> None:
        enable_wal(self._db, self.busy_timeout)

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == len(MIGRATIONS):
            self._check_application()
            return
        with self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                tables = self._db.execute(
                    "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                ).fetchone()[0]
                if tables:
                    raise self._not_ours("is a SQLite database of something else")
                self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self._check_application()
            if version > len(MIGRATIONS):
                raise VectorStoreError(
                    f"the knowledge store {self.path} has schema version {version}, newer than "
                    f"this ai-assistant knows ({len(MIGRATIONS)})",
                    hint="upgrade ai-assistant, or set knowledge.store to another file",
                )
            for number in range(version, len(MIGRATIONS)):
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _check_application(self) -> None:
        if self._db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            raise self._not_ours("is a SQLite database of something else")

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, taken at once (so it never has to upgrade a read lock), that
        stamps the store with a new generation."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def _bump(self, *sources: str) -> int:
        """Stamp ``sources`` with a generation no write has had (inside a write); return it.
        Removals older than the last ``REMEMBERED`` writes are forgotten here."""
        self._db.execute("UPDATE store_meta SET value = value + 1 WHERE key = 'generation'")
        (generation,) = self._db.execute(
            "SELECT value FROM store_meta WHERE key = 'generation'"
        ).fetchone()
        self._db.executemany(
            "UPDATE sources SET generation = ? WHERE name = ?", [(generation, s) for s in sources]
        )
        if generation % _FORGET_EVERY == 0:
            horizon = generation - REMEMBERED
            self._db.execute("DELETE FROM removed_chunks WHERE generation <= ?", (horizon,))
            self._db.execute(
                "UPDATE store_meta SET value = max(value, ?) WHERE key = 'forgotten'", (horizon,)
            )
        return generation

    def _remove_chunks(self, generation: int, where: str, params: list[tuple]) -> None:
        """Delete the chunks ``where`` selects (for each of ``params``), remembering which."""
        self._db.executemany(
            f"INSERT INTO removed_chunks (generation, source, id) "
            f"SELECT {generation}, source, id FROM chunks WHERE {where}",
            params,
        )
        self._db.executemany(
            f"DELETE FROM chunk_texts WHERE id IN (SELECT id FROM chunks WHERE {where})", params
        )
        self._db.executemany(f"DELETE FROM chunks WHERE {where}", params)

    def close(self) -> None:
        with self._lock:
            self._matrices.clear()
            self._db.close()

    # -- sources -------------------------------------------------------------------------------

    def sources(self) -> list[SourceState]:
        with self._lock, self._errors():
            rows = self._db.execute(
                """
                SELECT s.name, s.embeddings, s.dimension, s.last_ingest,
                    (SELECT count(*) FROM documents d WHERE d.source = s.name),
                    (SELECT count(*) FROM chunks c WHERE c.source = s.name)
                FROM sources s ORDER BY s.name
                """
            ).fetchall()
        return [
            SourceState(
                name=name,
                embeddings=embeddings,
                dimension=dimension,
                documents=documents,
                chunks=chunks,
                last_ingest=last,
            )
            for name, embeddings, dimension, last, documents, chunks in rows
        ]

    def claim_source(self, name: str, embeddings: str, dimension: int) -> None:
        with self._lock, self._errors(), self._write():
            row = self._db.execute(
                "SELECT embeddings, dimension FROM sources WHERE name = ?", (name,)
            ).fetchone()
            if row == (embeddings, dimension):
                return
            if row is not None and self._has_chunks(name):
                raise VectorStoreError(
                    f"source {name!r} holds vectors of {row[0]} ({row[1]} dimensions), not of "
                    f"{embeddings} ({dimension} dimensions)",
                    hint="drop the source first (re-embed it)",
                )
            generation = self._bump(name)
            self._db.execute(
                "INSERT INTO sources (name, embeddings, dimension, created, generation) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "embeddings = excluded.embeddings, dimension = excluded.dimension",
                (name, embeddings, int(dimension), generation, generation),
            )

    def _has_chunks(self, source: str) -> bool:
        return bool(
            self._db.execute(
                "SELECT EXISTS (SELECT 1 FROM chunks WHERE source = ?)",
                (source,),
            ).fetchone()[0]
        )

    def drop_source(self, name: str) -> None:
        with self._lock, self._errors(), self._write():
            # (its removals need no remembering: claimed again, it is created anew)
            self._db.execute(
                "DELETE FROM chunk_texts WHERE id IN (SELECT id FROM chunks WHERE source = ?)",
                (name,),
            )
            self._db.execute("DELETE FROM chunks WHERE source = ?", (name,))
            self._db.execute("DELETE FROM removed_chunks WHERE source = ?", (name,))
            self._db.execute("DELETE FROM documents WHERE source = ?", (name,))
            self._db.execute("DELETE FROM sources WHERE name = ?", (name,))
            self._bump()
            self._matrices.pop(name, None)

    def finish_ingest(self, name: str, when: str) -> None:
        with self._lock, self._errors(), self._write():
            self._db.execute("UPDATE sources SET last_ingest = ? WHERE name = ?", (when, name))

    # -- documents -----------------------------------------------------------------------------

    def document_hashes(self, source: str) -> dict[str, str]:
        with self._lock, self._errors():
            return dict(
                self._db.execute(
                    "SELECT doc_id, hash FROM documents WHERE source = ?", (source,)
                ).fetchall()
            )

    def chunk_vectors(self, source: str, document_id: str) -> dict[str, Sequence[float]]:
        with self._lock, self._errors():
            rows = self._db.execute(
                "SELECT t.hash, c.vector FROM documents d JOIN chunks c ON c.document = d.id "
                "JOIN chunk_texts t ON t.id = c.id WHERE d.source = ? AND d.doc_id = ? "
                "ORDER BY c.seq",
                (source, document_id),
            ).fetchall()
        return {text_hash: np.frombuffer(blob, dtype=np.float32) for text_hash, blob in rows}

    def _dimension(self, source: str) -> int:
        row = self._db.execute("SELECT dimension FROM sources WHERE name = ?", (source,)).fetchone()
        if row is None:
            raise VectorStoreError(
                f"the knowledge store holds no source {source!r}",
                hint="claim the source before writing to it",
            )
        return row[0]

    def _blobs(self, source: str, dimension: int, chunks: list[Chunk]) -> list[bytes]:
        """Each chunk's vector as a normalised float32 blob, after checking its dimension."""
        if not chunks:
            return []
        for chunk in chunks:
            if len(chunk.vector) != dimension:
                raise VectorStoreError(
                    f"a vector of {len(chunk.vector)} dimensions for source {source!r}, whose "
                    f"vectors have {dimension} dimensions",
                    hint="re-embed the source (drop it and ingest again) if its embeddings changed",
                )
        matrix = _unit_rows(np.asarray([chunk.vector for chunk in chunks], dtype=np.float32))
        return [row.tobytes() for row in matrix]

    def write_documents(self, source: str, documents: Iterable[DocumentRows]) -> None:
        # the last of each id (a lazy iterable never runs while the lock is held)
        documents = list({doc.id: doc for doc in documents}.values())
        if not documents:
            return
        with self._lock, self._errors():
            # (documents without chunks, say empty files, need no claim: no vector to check)
            dimension = self._dimension(source) if any(d.chunks for d in documents) else 0
            blobs = [self._blobs(source, dimension, doc.chunks) for doc in documents]
            stamp = now()
            with self._write():
                generation = self._bump(source)
                ids = []
                for doc in documents:
                    self._db.execute(
                        "INSERT INTO documents (source, doc_id, hash, metadata, updated_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, doc_id) DO UPDATE SET "
                        "hash = excluded.hash, metadata = excluded.metadata, "
                        "updated_at = excluded.updated_at",
                        (source, doc.id, doc.hash, json.dumps(doc.metadata), stamp),
                    )
                    (rowid,) = self._db.execute(
                        "SELECT id FROM documents WHERE source = ? AND doc_id = ?",
                        (source, doc.id),
                    ).fetchone()
                    ids.append(rowid)
                written = [
                    (rowid, chunk, blob)
                    for rowid, doc, doc_blobs in zip(ids, documents, blobs, strict=True)
                    for chunk, blob in zip(doc.chunks, doc_blobs, strict=True)
                ]
                self._db.executemany(
                    "INSERT INTO chunks (source, document, seq, generation, vector) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (document, seq) DO UPDATE SET "
                    "generation = excluded.generation, vector = excluded.vector",
                    [(source, d, c.seq, generation, blob) for d, c, blob in written],
                )
                self._db.executemany(
                    "INSERT INTO chunk_texts (id, hash, text) "
                    "SELECT id, ?, ? FROM chunks WHERE document = ? AND seq = ? "
                    "ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, text = excluded.text",
                    [(c.hash, c.text, d, c.seq) for d, c, _ in written],
                )
                ends = [(rowid, len(doc.chunks)) for rowid, doc in zip(ids, documents, strict=True)]
                self._remove_chunks(generation, "document = ? AND seq >= ?", ends)

    def delete_documents(self, source: str, document_ids: Iterable[str]) -> int:
        pairs = [(source, doc_id) for doc_id in dict.fromkeys(document_ids)]
        if not pairs:
            return 0
        with self._lock, self._errors(), self._write():
            generation = self._bump(source)
            self._remove_chunks(
                generation,
                "document = (SELECT id FROM documents WHERE source = ? AND doc_id = ?)",
                pairs,
            )
            return self._db.executemany(
                "DELETE FROM documents WHERE source = ? AND doc_id = ?", pairs
            ).rowcount

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        vector: Sequence[float],
        k: int,
        sources: Sequence[str],
        where: dict[str, Any] | None = None,
    ) -> list[Hit]:
        names = list(dict.fromkeys(sources))
        if k <= 0 or not names:
            return []
        query = np.asarray(vector, dtype=np.float32).ravel()
        norm = float(np.linalg.norm(query))
        if norm:
            query = query / norm
        with self._lock, self._errors():
            # one read transaction: the stamps, the matrices they validate, and the hits' rows
            # are of one snapshot, whatever other processes write meanwhile
            self._db.execute("BEGIN")
            try:
                found = self._search(query, k, names, where)
            finally:
                self._db.execute("COMMIT")
        return found

    def _search(
        self, query: Any, k: int, names: list[str], where: dict[str, Any] | None
    ) -> list[Hit]:
        marks = ", ".join("?" * len(names))
        states = {
            name: rest
            for name, *rest in self._db.execute(
                f"SELECT name, dimension, created, generation FROM sources WHERE name IN ({marks})",
                names,
            )
        }
        candidates: list[tuple[float, int, str]] = []
        for name in names:
            if name not in states:
                self._matrices.pop(name, None)  # (dropped, maybe by another process)
                continue
            dimension, created, generation = states[name]
            if dimension != len(query):
                raise VectorStoreError(
                    f"a query vector of {len(query)} dimensions for source {name!r}, whose "
                    f"vectors have {dimension} dimensions",
                    hint="search each source with the embeddings it was ingested with",
                )
            matrix = self._matrix(name, dimension, created, generation)
            if not matrix.live:
                continue
            if where:
                rows, sub = self._filter(name, matrix, where)
                scores = _dot(sub, query) if sub is not None else _dot(matrix.vectors, query)[rows]
            else:
                rows, scores = None, _dot(matrix.vectors, query)
                scores[matrix.dead] = -np.inf
            best = _top(scores, min(k, len(scores)))
            best = best[np.isfinite(scores[best])]
            picked = best if rows is None else rows[best]
            candidates.extend(
                zip(
                    scores[best].tolist(),
                    matrix.ids[picked].tolist(),
                    [name] * len(best),
                    strict=True,
                )
            )
        candidates.sort(key=lambda c: -c[0])  # (stable: ties keep the order of ``sources``)
        candidates = candidates[:k]
        if not candidates:
            return []
        marks = ", ".join("?" * len(candidates))
        rows_by_id = {
            row[0]: row[1:]
            for row in self._db.execute(
                "SELECT c.id, d.doc_id, c.seq, t.text, d.metadata FROM chunks c "
                "JOIN documents d ON d.id = c.document JOIN chunk_texts t ON t.id = c.id "
                f"WHERE c.id IN ({marks})",
                [chunk for _, chunk, _ in candidates],
            )
        }
        return [
            Hit(
                source=name,
                document_id=rows_by_id[chunk][0],
                seq=rows_by_id[chunk][1],
                text=rows_by_id[chunk][2],
                score=min(1.0, max(-1.0, score)),
                metadata=json.loads(rows_by_id[chunk][3]),
            )
            for score, chunk, name in candidates
        ]

    def _matrix(self, source: str, dimension: int, created: int, generation: int) -> _Matrix:
        """``source``'s vectors as of ``generation``: the cached matrix, brought up to date with
        just what was written and removed since if it can be, else read whole."""
        cached = self._matrices.get(source)
        if cached is not None and cached.generation == generation:
            return cached
        if (
            cached is not None
            and cached.created == created
            and cached.vectors.shape[1] == dimension
            and self._catch_up(source, cached, generation)
        ):
            return cached
        self._matrices.pop(source, None)  # (let the old matrix go before reading the new)
        (count,) = self._db.execute(
            "SELECT count(*) FROM chunks WHERE source = ?", (source,)
        ).fetchone()
        (total,) = self._db.execute("SELECT count(*) FROM chunks").fetchone()
        # reading the table in order is about twice as fast as looking each row up from the
        # index: worth it while the other sources' rows read for nothing are fewer than these
        scan = "NOT INDEXED" if count * 2 >= total else ""
        cursor = self._db.execute(
            f"SELECT id, document, vector FROM chunks {scan} WHERE source = ?", (source,)
        )
        # (a quarter more rows, so that the chunks other writers add fit without a copy)
        arrays = _read_rows(cursor, count, dimension, spare=count // 4 + 64)
        matrix = _Matrix(generation, created, *arrays, size=count)
        self._matrices[source] = matrix
        return matrix

    def _catch_up(self, source: str, matrix: _Matrix, generation: int) -> bool:
        """Apply to ``matrix`` the removals and writes since its generation, unless they are
        forgotten or many (then reading whole is as cheap): whether it did."""
        (forgotten,) = self._db.execute(
            "SELECT value FROM store_meta WHERE key = 'forgotten'"
        ).fetchone()
        if matrix.generation < forgotten:
            return False
        since = (source, matrix.generation)
        (count,) = self._db.execute(
            "SELECT count(*) FROM chunks WHERE source = ? AND generation > ?", since
        ).fetchone()
        if count * 2 > matrix.live:
            return False
        removed = self._db.execute(
            "SELECT id FROM removed_chunks WHERE generation > ? AND source = ?", since[::-1]
        ).fetchall()
        matrix.forget(np.array([chunk for (chunk,) in removed], dtype=np.int64))
        cursor = self._db.execute(
            "SELECT id, document, vector FROM chunks WHERE source = ? AND generation > ?", since
        )
        matrix.put(*_read_rows(cursor, count, matrix.vectors.shape[1]))
        matrix.compact()
        matrix.generation = generation
        matrix.filters.clear()
        return True

    def _filter(self, source: str, matrix: _Matrix, where: dict[str, Any]) -> tuple[Any, Any]:
        """The rows of documents whose metadata has every key/value of ``where``, and, when they
        are at most half the source, a copy of those rows to score alone (scoring every row and
        then picking is faster than copying more than half of them)."""
        key = json.dumps(where, sort_keys=True, default=str)
        if key in matrix.filters:
            matrix.filters.move_to_end(key)
            return matrix.filters[key]
        matching = [
            doc
            for doc, metadata in self._db.execute(
                "SELECT id, metadata FROM documents WHERE source = ?", (source,)
            )
            if _matches(json.loads(metadata), where)
        ]
        rows = np.flatnonzero(np.isin(matrix.documents, np.asarray(matching, dtype=np.int64)))
        sub = matrix.vectors[rows] if len(rows) * 2 <= matrix.size else None
        matrix.filters[key] = (rows, sub)
        # at most _FILTERS_KEPT filters, and their copies at most one more matrix's worth
        budget = matrix.vectors.nbytes
        while len(matrix.filters) > _FILTERS_KEPT or (
            len(matrix.filters) > 1
            and sum(s.nbytes for _, s in matrix.filters.values() if s is not None) > budget
        ):
            matrix.filters.popitem(last=False)
        return rows, sub
