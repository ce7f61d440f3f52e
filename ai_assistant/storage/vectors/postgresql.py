"""Knowledge in PostgreSQL with pgvector, for a team sharing one index (``knowledge.store =
"postgresql://..."``).

A pgvector column has one fixed dimension, and its HNSW index (cosine) needs it, so the chunks of
every source whose vectors have ``N`` dimensions live in ``knowledge_chunks_N``, created when the
first such source is claimed; ``knowledge_sources`` and ``knowledge_documents`` (metadata as
jsonb) are shared. A chunks table that is empty when a source is claimed gets its index when
that ingest finishes (``finish_ingest``): building it from the rows is several times faster than
feeding them one by one into a live graph, and meanwhile a search scans exactly. Above 2,000
dimensions pgvector 0.6 cannot index a ``vector``: such a table is always searched exactly.

One connection guarded by a lock rather than a pool: the interface is blocking and used from one
thread at a time, so a pool would only add a thread and idle connections to every process; the
lock makes an accidental second thread wait instead of garbling the protocol. A connection that
broke (the server restarted) is replaced on the next call.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..base import format_store_error, is_postgresql, migrations, now
from .base import DocumentRows, Hit, SourceState, VectorStore, VectorStoreError

KNOWLEDGE_CLASS = 0x41494B4E  # "AIKN": the first key of this store's advisory locks
SCHEMA_LOCK = 0  # (KNOWLEDGE_CLASS, 0): held while migrating or creating a chunks table
MAX_DIMENSION = 16000  # pgvector's limit for a vector column
MAX_INDEXED_DIMENSION = 2000  # and for an HNSW index on one
# the candidates an HNSW scan keeps (pgvector's default is 40): at 100,000 chunks of 384
# dimensions, 100 finds 97% of the true 5 nearest where 40 finds 86%, for about 3 ms more
EF_SEARCH = 100
MAX_EF_SEARCH = 1000  # pgvector's ceiling
MAX_BUILD_MEMORY = 1 << 30  # the most maintenance_work_mem an index build asks for
CONNECT_TIMEOUT = 10  # seconds

HINT = (
    "check knowledge.store (host, port, database, user, password) and that the server is "
    "running and reachable from here"
)

_CHUNKS_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    source TEXT NOT NULL,
    document_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    content TEXT NOT NULL,
    hash TEXT NOT NULL,
    embedding vector({dimension}) NOT NULL,
    PRIMARY KEY (source, document_id, seq),
    FOREIGN KEY (source, document_id) REFERENCES knowledge_documents (source, id)
        ON DELETE CASCADE
)
"""
# where write_documents copies a call's chunks (binary COPY is the fastest way in) before merging
# them into their table in one statement; ON COMMIT DELETE ROWS empties it with the transaction
_STAGE_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS knowledge_stage (document_id TEXT, seq INTEGER, "
    "content TEXT, hash TEXT, embedding vector) ON COMMIT DELETE ROWS"
)
_STAGE_TYPES = ("text", "int4", "text", "text")  # and the vector type's oid


def chunks_table(dimension: int) -> str:
    """The table of the chunks whose vectors have ``dimension`` dimensions (the name is built
    from the integer alone, so it can be put into SQL as it is)."""
    return f"knowledge_chunks_{int(dimension)}"


class PackedVector(bytes):
    """A vector in pgvector's binary form (what the server reads fastest, and exactly)."""


def pack_vector(vector: Sequence[float]) -> PackedVector:
    """``vector`` (floats, or a numpy array) as pgvector's binary form: its dimension as int16,
    an int16 0, then each value as a big-endian float4 (a twentieth of the cost of the text)."""
    size = len(vector)
    head = struct.pack(">HH", size, 0)
    if hasattr(vector, "astype"):  # numpy, without importing it
        return PackedVector(head + vector.astype(">f4").tobytes())
    return PackedVector(head + struct.pack(f">{size}f", *vector))


def _teach_vectors(conn: Any) -> int:
    """Let ``conn`` send a ``PackedVector`` as a ``vector`` (in parameters, and in a binary COPY
    by the type's oid, which it returns)."""
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise VectorStoreError("the vector type is missing although the extension is there")

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            return obj

    conn.adapters.register_dumper(PackedVector, VectorDumper)
    conn.adapters.register_dumper(None, VectorDumper)  # (by its oid, for COPY)
    return info.oid


def search_sql(dimension: int, where: bool) -> str:
    """The statement of a search among vectors of ``dimension`` (with a metadata filter if
    ``where``): parameters ``query`` (a vector), ``sources``, ``where`` (jsonb), ``k``.
    The distance is the ORDER BY, so that pgvector's HNSW index scan yields rows in order."""
    return (
        "SELECT c.source, c.document_id, c.seq, c.content, d.metadata, "
        "c.embedding <=> %(query)s::vector AS distance "
        f"FROM {chunks_table(dimension)} c JOIN knowledge_documents d "
        "ON d.source = c.source AND d.id = c.document_id "
        "WHERE c.source = ANY(%(sources)s)"
        + (" AND d.metadata @> %(where)s" if where else "")
        + " ORDER BY distance LIMIT %(k)s"
    )


class PostgresVectorStore(VectorStore):
    """Knowledge chunks and their vectors in PostgreSQL with pgvector
    (``postgresql://user:password@host/db``)."""

    kind = "PostgreSQL vector store"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        if not is_postgresql(url):
            raise VectorStoreError(
                f"not a PostgreSQL URL: {self.display_url!r}",
                hint="knowledge.store takes postgresql://user:password@host:port/database",
            )
        self._lock = threading.Lock()
        self._conn: Any = None
        self._staged = False  # the connection has its stage table
        self._vector_oid = 0
        with self._session("opening"):
            pass  # connect, enable pgvector and migrate now, to fail here if at all

    def __repr__(self) -> str:
        return f"PostgresVectorStore({self.display_url!r})"

    # -- connection ------------------------------------------------------------------------

    def _error(self, exc: BaseException, doing: str) -> VectorStoreError:
        """An error that names the store and what it was doing, never its password."""
        return VectorStoreError(
            f"the vector store {self.display_url} failed while {doing}: "
            f"{format_store_error(self.url, exc)}"
        )

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise VectorStoreError(
                f"cannot open the vector store {self.display_url}: "
                f"{format_store_error(self.url, exc)}",
                hint=HINT,
            ) from None
        try:
            self._migrate(conn)
            self._vector_oid = _teach_vectors(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: Any) -> None:
        """pgvector enabled, then each numbered file of ``migrations/vectors_postgresql`` not
        yet applied, whole, recorded in ``knowledge_schema_migrations``: in one transaction under
        an advisory lock, so a second process opening at the same time waits for the first, then
        finds nothing left to do."""
        import psycopg
        from psycopg import errors

        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (KNOWLEDGE_CLASS, SCHEMA_LOCK))
                if not conn.execute(
                    "SELECT 1 FROM pg_extension WHERE extname = 'vector'"
                ).fetchone():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS knowledge_schema_migrations "
                    "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                )
                cur = conn.execute("SELECT version FROM knowledge_schema_migrations")
                applied = {row[0] for row in cur.fetchall()}
                for version, _name, sql in migrations("vectors_postgresql"):
                    if version not in applied:
                        conn.execute(sql.encode())  # whole: several statements, no parameters
                        conn.execute(
                            "INSERT INTO knowledge_schema_migrations (version, applied_at) "
                            "VALUES (%s, %s)",
                            (version, now()),
                        )
        except (errors.FeatureNotSupported, errors.UndefinedFile) as exc:
            raise VectorStoreError(
                f"the PostgreSQL server of the vector store {self.display_url} does not have "
                f"the pgvector extension: {format_store_error(self.url, exc)}",
                hint="install pgvector on the database server (e.g. the postgresql-16-pgvector "
                "package, or see https://github.com/pgvector/pgvector#installation), "
                "or use a server that has it",
            ) from None
        except errors.InsufficientPrivilege as exc:
            raise VectorStoreError(
                f"the vector store {self.display_url} needs the pgvector extension, which is not "
                f"enabled in its database, and its user may not enable it: "
                f"{format_store_error(self.url, exc)}",
                hint="ask a superuser to run `CREATE EXTENSION vector;` in that database "
                "(once), or grant the user what the tables need",
            ) from None
        except psycopg.Error as exc:
            raise VectorStoreError(
                f"cannot prepare the vector store {self.display_url}: "
                f"{format_store_error(self.url, exc)}",
                hint="the database user needs to create tables in its schema",
            ) from None

    @contextmanager
    def _session(self, doing: str) -> Iterator[Any]:
        """The connection (made on first use or after it broke), for one thread at a time;
        psycopg's errors become ``VectorStoreError``s saying what the store was ``doing``."""
        import psycopg

        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn, self._staged = self._connect(), False
            conn = self._conn
            try:
                yield conn
            except psycopg.Error as exc:
                if conn.broken:
                    conn.close()
                    self._conn = None
                raise self._error(exc, doing) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- sources ---------------------------------------------------------------------------

    _SOURCES = (
        "SELECT s.name, s.embeddings, s.dimension, COUNT(d.id), COALESCE(SUM(d.chunks), 0), "
        "s.last_ingest FROM knowledge_sources s "
        "LEFT JOIN knowledge_documents d ON d.source = s.name"
    )

    def sources(self) -> list[SourceState]:
        with self._session("listing sources") as conn:
            rows = conn.execute(f"{self._SOURCES} GROUP BY s.name ORDER BY s.name").fetchall()
        return [SourceState(*row[:3], int(row[3]), int(row[4]), row[5]) for row in rows]

    def source(self, name: str) -> SourceState | None:
        with self._session(f"reading source {name!r}") as conn:
            row = conn.execute(
                f"{self._SOURCES} WHERE s.name = %s GROUP BY s.name", (name,)
            ).fetchone()
        return None if row is None else SourceState(*row[:3], int(row[3]), int(row[4]), row[5])

    def claim_source(self, name: str, embeddings: str, dimension: int) -> None:
        if not isinstance(dimension, int) or not 0 < dimension <= MAX_DIMENSION:
            raise VectorStoreError(
                f"source {name!r}: a vector of {dimension!r} dimensions cannot be stored "
                f"(pgvector takes 1 to {MAX_DIMENSION})"
            )
        table = chunks_table(dimension)
        with self._session(f"claiming source {name!r}") as conn:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                with conn.transaction():  # (two processes creating one table would collide)
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)", (KNOWLEDGE_CLASS, SCHEMA_LOCK)
                    )
                    conn.execute(_CHUNKS_TABLE.format(table=table, dimension=dimension).encode())
            with conn.transaction():
                row = conn.execute(
                    "SELECT dimension FROM knowledge_sources WHERE name = %s FOR UPDATE", (name,)
                ).fetchone()
                if row is not None and row[0] != dimension:
                    # its vectors can no longer be searched: they go (their chunks by cascade)
                    conn.execute("DELETE FROM knowledge_documents WHERE source = %s", (name,))
                conn.execute(
                    "INSERT INTO knowledge_sources (name, embeddings, dimension) "
                    "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "embeddings = EXCLUDED.embeddings, dimension = EXCLUDED.dimension",
                    (name, embeddings, dimension),
                )
                # a table about to be filled from empty goes without its index until the ingest
                # finishes: pgvector builds an index from the rows in a third of the time it
                # takes them one by one into a live graph (a search meanwhile scans exactly)
                if (
                    self._has_index(conn, dimension)
                    and not conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]
                ):
                    conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)", (KNOWLEDGE_CLASS, dimension)
                    )
                    conn.execute(f"DROP INDEX IF EXISTS {table}_embedding")

    @staticmethod
    def _has_index(conn: Any, dimension: int) -> bool:
        if dimension > MAX_INDEXED_DIMENSION:
            return False
        index = f"{chunks_table(dimension)}_embedding"
        return conn.execute("SELECT to_regclass(%s)", (index,)).fetchone()[0] is not None

    def _build_index(self, conn: Any, dimension: int) -> None:
        """The HNSW index of ``knowledge_chunks_<dimension>``, unless there already (under a
        lock of that dimension's: two processes building it at once would collide), with room
        to build the graph in memory."""
        if dimension > MAX_INDEXED_DIMENSION or self._has_index(conn, dimension):
            return
        table = chunks_table(dimension)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (KNOWLEDGE_CLASS, dimension))
            if self._has_index(conn, dimension):
                return  # (another process built it while this one waited)
            # the graph fits in maintenance_work_mem, or the build is several times slower:
            # about the vectors plus their neighbour lists, within bounds, for this build only
            rows, room = conn.execute(
                f"SELECT (SELECT COUNT(*) FROM {table}), setting::bigint * 1024 "
                "FROM pg_settings WHERE name = 'maintenance_work_mem'"
            ).fetchone()
            needed = min(int(rows * (dimension * 4 + 400) * 1.5), MAX_BUILD_MEMORY)
            if needed > room:
                conn.execute(f"SET LOCAL maintenance_work_mem = '{needed // 1024}kB'")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_embedding ON {table} "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        # the planner's statistics of the rows just loaded, without which it may not see that
        # the index pays (autovacuum would gather them, later)
        conn.execute(f"ANALYZE {table}, knowledge_documents")

    def drop_source(self, name: str) -> None:
        with self._session(f"dropping source {name!r}") as conn:
            # (its documents, and their chunks, go by cascade)
            conn.execute("DELETE FROM knowledge_sources WHERE name = %s", (name,))

    def finish_ingest(self, name: str, when: str) -> None:
        with self._session(f"finishing the ingest of source {name!r}") as conn:
            row = conn.execute(
                "SELECT dimension FROM knowledge_sources WHERE name = %s", (name,)
            ).fetchone()
            if row is not None:
                self._build_index(conn, row[0])
            conn.execute(
                "UPDATE knowledge_sources SET last_ingest = %s WHERE name = %s", (when, name)
            )

    @staticmethod
    def _dimension(conn: Any, source: str) -> int:
        row = conn.execute(
            "SELECT dimension FROM knowledge_sources WHERE name = %s", (source,)
        ).fetchone()
        if row is None:
            raise VectorStoreError(
                f"the vector store has no source {source!r}",
                hint="claim_source records a source before its documents are written",
            )
        return row[0]

    # -- documents -------------------------------------------------------------------------

    def document_hashes(self, source: str) -> dict[str, str]:
        with self._session(f"reading the documents of source {source!r}") as conn:
            rows = conn.execute(
                "SELECT id, hash FROM knowledge_documents WHERE source = %s", (source,)
            ).fetchall()
        return dict(rows)

    def chunk_vectors(self, source: str, document_id: str) -> dict[str, Sequence[float]]:
        with self._session(f"reading the chunks of {document_id!r}") as conn:
            row = conn.execute(
                "SELECT dimension FROM knowledge_sources WHERE name = %s", (source,)
            ).fetchone()
            if row is None:
                return {}
            rows = conn.execute(
                f"SELECT hash, embedding::text FROM {chunks_table(row[0])} "
                "WHERE source = %s AND document_id = %s",
                (source, document_id),
            ).fetchall()
        return {chunk_hash: [float(x) for x in json.loads(vector)] for chunk_hash, vector in rows}

    def write_documents(self, source: str, documents: Iterable[DocumentRows]) -> None:
        # the last of each id, so that one statement never touches a row twice
        docs = list({doc.id: doc for doc in documents}.values())
        if not docs:
            return
        with self._session(f"writing documents of source {source!r}") as conn:
            if not self._staged:
                conn.execute(_STAGE_TABLE)
                self._staged = True
            with conn.transaction():
                table = chunks_table(self._dimension(conn, source))
                conn.execute(
                    "INSERT INTO knowledge_documents (source, id, hash, metadata, chunks) "
                    "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::jsonb[], %s::int[]) "
                    "ON CONFLICT (source, id) DO UPDATE SET hash = EXCLUDED.hash, "
                    "metadata = EXCLUDED.metadata, chunks = EXCLUDED.chunks",
                    (
                        source,
                        [doc.id for doc in docs],
                        [doc.hash for doc in docs],
                        [json.dumps(doc.metadata) for doc in docs],
                        [len(doc.chunks) for doc in docs],
                    ),
                )
                copy_in = "COPY knowledge_stage FROM STDIN (FORMAT BINARY)"
                with conn.cursor().copy(copy_in) as copy:
                    copy.set_types([*_STAGE_TYPES, self._vector_oid])
                    for doc in docs:
                        for chunk in doc.chunks:
                            row = (doc.id, chunk.seq, chunk.text, chunk.hash)
                            copy.write_row((*row, pack_vector(chunk.vector)))
                # an unchanged chunk (same text, same vector) is left alone: no new row version,
                # nothing for the index to take again
                conn.execute(
                    f"INSERT INTO {table} AS c "
                    "(source, document_id, seq, content, hash, embedding) "
                    "SELECT %s, document_id, seq, content, hash, embedding "
                    "FROM knowledge_stage ON CONFLICT (source, document_id, seq) DO UPDATE SET "
                    "content = EXCLUDED.content, hash = EXCLUDED.hash, "
                    "embedding = EXCLUDED.embedding "
                    "WHERE c.hash <> EXCLUDED.hash OR c.embedding <> EXCLUDED.embedding",
                    (source,),
                )
                conn.execute(
                    f"DELETE FROM {table} c USING unnest(%s::text[], %s::int[]) AS n(id, ends) "
                    "WHERE c.source = %s AND c.document_id = n.id AND c.seq >= n.ends",
                    (
                        [doc.id for doc in docs],
                        [max((c.seq for c in doc.chunks), default=-1) + 1 for doc in docs],
                        source,
                    ),
                )

    def delete_documents(self, source: str, document_ids: Iterable[str]) -> int:
        ids = list(document_ids)
        if not ids:
            return 0
        with self._session(f"deleting documents of source {source!r}") as conn:
            cur = conn.execute(  # (their chunks go by cascade)
                "DELETE FROM knowledge_documents WHERE source = %s AND id = ANY(%s)", (source, ids)
            )
            return cur.rowcount

    # -- search ----------------------------------------------------------------------------

    def search(
        self,
        vector: Sequence[float],
        k: int,
        sources: Sequence[str],
        where: dict[str, Any] | None = None,
    ) -> list[Hit]:
        from psycopg import errors
        from psycopg.types.json import Jsonb

        sources = list(sources)
        if k <= 0 or not sources:
            return []
        dimension = len(vector)
        params = {"query": pack_vector(vector), "sources": sources, "k": int(k)}
        if where:
            params["where"] = Jsonb(where)
        with self._session("searching") as conn:
            try:
                with conn.transaction():
                    # the sources asked for, and those sharing their table
                    dimensions = dict(
                        conn.execute(
                            "SELECT name, dimension FROM knowledge_sources "
                            "WHERE name = ANY(%s) OR dimension = %s",
                            (sources, dimension),
                        ).fetchall()
                    )
                    wrong = {
                        s: dimensions[s]
                        for s in sources
                        if dimensions.get(s, dimension) != dimension
                    }
                    if wrong:
                        raise VectorStoreError(
                            f"a query vector of {dimension} dimensions cannot search "
                            + ", ".join(f"source {s!r} ({d} dimensions)" for s, d in wrong.items()),
                            hint="embed the query with the source's embeddings",
                        )
                    if not any(s in dimensions for s in sources):
                        return []
                    # an HNSW scan yields ef_search candidates and filters come after it: a
                    # search filtered (by `where`, or among other sources in the table) looks
                    # at more of them to still find k
                    filtered = bool(where) or len(dimensions) > len(set(sources) & set(dimensions))
                    ef_search = max(EF_SEARCH * 2, k * 10) if filtered else max(EF_SEARCH, k)
                    conn.execute(f"SET LOCAL hnsw.ef_search = {min(ef_search, MAX_EF_SEARCH)}")
                    # never a prepared, generic plan: the planner sees the filter and k, to choose
                    # between the index and an exact scan of the few rows a filter lets through
                    sql = search_sql(dimension, bool(where))
                    rows = conn.execute(sql, params, prepare=False).fetchall()
                    if len(rows) < k:
                        # fewer than k passed the filters among the candidates the index gave
                        # (or there are fewer than k): an exact scan of the rows that pass finds
                        # every one there is
                        conn.execute("SET LOCAL enable_indexscan = off")
                        rows = conn.execute(sql, params, prepare=False).fetchall()
            except errors.UndefinedTable:
                return []  # (no chunks table of this dimension)
        return [
            Hit(
                source=source,
                document_id=document_id,
                seq=seq,
                text=content,
                score=1.0 - float(distance),
                metadata=metadata,
            )
            for source, document_id, seq, content, metadata, distance in rows
        ]
