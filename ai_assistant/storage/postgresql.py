"""Conversation history in PostgreSQL, for several gateway workers and hosts over one database:
psycopg 3's async driver with a connection pool (``storage.pool_size``).

Who is writing a ``streaming`` reply: each store that writes replies is a *writer*, with a row in
``writers`` (pid and host, for people) and a session advisory lock ``(ADVISORY_CLASS,
lock_key)`` held by a connection of its own for as long as the store is open. The server drops a
session's advisory locks when the session ends -- the process exits or is killed, its host
vanishes (once TCP keepalive notices) -- so a writer whose lock no session holds in ``pg_locks``
is dead, on whatever host it ran, and its replies are marked ``interrupted``. A random key is
never reused the way a backend pid in ``pg_stat_activity`` is, and needs no heartbeat or clock.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import secrets
import socket
import uuid
from typing import Any, NamedTuple

from .base import (
    CONVERSATION_COLUMNS,
    EXCHANGE_COLUMNS,
    INTERRUPTED,
    MESSAGE_COLUMNS,
    PROCESS_ENDED,
    STREAMING,
    HistoryStore,
    StoreBusyError,
    StoreError,
    UnknownConversationError,
    UnknownMessageError,
    answer,
    exchange_messages,
    format_store_error,
    mask_url,
    message_rows,
    migrations,
    now,
    pick,
    title_of,
    update_columns,
)

ADVISORY_CLASS = 0x41494153  # "AIAS": the first key of every lock this store takes
MIGRATION_LOCK = 0  # (ADVISORY_CLASS, 0): held while migrating

_CONV = ", ".join(CONVERSATION_COLUMNS)
_MSG = ", ".join(f"m.{c}" for c in MESSAGE_COLUMNS)
# the integer columns of a message, typed in VALUES rows where they may all be NULL
_CASTS = dict.fromkeys(
    ("latency_ms", "first_token_ms", "input_tokens", "output_tokens"), "::integer"
)

# the live writers' keys: advisory locks held by any session on this database
_LIVE_KEYS = (
    "SELECT objid::text::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    f"AND classid = {ADVISORY_CLASS}::oid AND objsubid = 2 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class NoConnectionError(StoreBusyError):
    """No pooled connection came within ``storage.busy_timeout``."""


class PostgresStore(HistoryStore):
    """The history store in PostgreSQL (``postgresql://user:password@host/db``)."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10, busy_timeout: float = 5.0) -> None:
        self._conninfo = url
        self.url = mask_url(url)
        self.pool_size = pool_size
        self.busy_timeout = float(busy_timeout)
        self._pool: Any = None
        self._opening: asyncio.Lock | None = None
        self._writer_conn: Any = None
        self._writer_id: str | None = None
        self._writer_lock: asyncio.Lock | None = None
        self._queued: list[_Write] = []  # the chat's writes (_write)
        self._writing: asyncio.Task | None = None
        self._alone: set[asyncio.Future] = set()  # writes of a batch gone on alone

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def _error(self, exc: BaseException, doing: str) -> StoreError:
        """A store error for ``exc`` that names the store, never its password."""
        from psycopg import errors
        from psycopg_pool import PoolTimeout

        why = format_store_error(self._conninfo, exc)
        if isinstance(exc, (PoolTimeout, errors.LockNotAvailable, errors.QueryCanceled)):
            kind = NoConnectionError if isinstance(exc, PoolTimeout) else StoreBusyError
            return kind(
                f"the history store {self.url} stayed busy for {self.busy_timeout:g} s "
                f"(storage.busy_timeout) while {doing}: {why}",
                hint="retry in a moment",
            )
        return StoreError(f"the history store {self.url} failed while {doing}: {why}")

    def _answer_within(self) -> float:
        """Seconds a write may wait for the server's answer: its locks' ``busy_timeout`` and
        ``ANSWER_GRACE``; past that the server is taken to have stopped answering (a frozen
        host, a network gone silent), and the writes queued behind it must not wait on."""
        return self.busy_timeout + ANSWER_GRACE

    def _unanswered(self, sent_commit: bool) -> StoreError:
        why = TimeoutError(f"no answer from the server within {self._answer_within():g} s")
        if sent_commit:
            return self._unconfirmed(why)
        return StoreBusyError(
            f"the history store {self.url} did not answer: {why}; nothing was stored",
            hint="retry in a moment; if it goes on, check the server",
        )

    def _unconfirmed(self, exc: BaseException) -> StoreError:
        """The error of a write whose commit nobody can confirm or deny (``exc`` came after it
        was sent, or is one nobody expected): it may or may not be stored."""
        why = format_store_error(self._conninfo, exc)
        return StoreError(
            f"the history store {self.url} could not confirm a commit: the write may or may "
            f"not be stored ({why})",
            hint="look at the conversation before sending it again",
        )

    # -- connections -----------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is not None:
                return
            import psycopg
            from psycopg_pool import AsyncConnectionPool

            timeout_ms = int(self.busy_timeout * 1000)

            async def configure(conn: Any) -> None:
                conn.adapters.register_dumper(str, _nul_free_text())
                await conn.execute(f"SET lock_timeout = {timeout_ms}")

            try:  # first one connection, to fail fast and clearly, and to migrate
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, connect_timeout=max(2, int(timeout_ms / 1000))
                )
                async with conn:
                    await self._migrate(conn)
            except Exception as exc:
                raise StoreError(
                    f"cannot open the history store {self.url}: "
                    f"{format_store_error(self._conninfo, exc)}",
                    hint="check storage.url and that the server is reachable",
                ) from None
            pool = AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self.pool_size,
                kwargs={"autocommit": True},
                configure=configure,
                timeout=self.busy_timeout,
                open=False,
                name="ai-assistant-history",
            )
            await pool.open(wait=False)
            self._pool = pool

    async def close(self) -> None:
        await self.flush()
        loop = asyncio.get_running_loop()
        while True:  # (the writes queued so far are answered, those gone alone too)
            busy = [t for t in (self._writing, *self._alone) if t is not None and not t.done()]
            if not busy or any(t.get_loop() is not loop for t in busy):
                break
            await asyncio.wait(busy)
        if self._writer_conn is not None:
            try:
                async with self._conn() as conn:
                    await conn.execute("DELETE FROM writers WHERE id = %s", (self._writer_id,))
            except StoreError:
                pass
            await self._writer_conn.close()  # (its advisory lock goes with it)
            self._writer_conn = self._writer_id = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _conn(self) -> Any:
        return _Connection(self)

    async def _migrate(self, conn: Any) -> None:
        """Each numbered file of ``migrations/postgresql`` not yet applied, whole, in one
        transaction, under an advisory lock: a second process migrating at the same time waits
        for the first, then finds nothing left to do."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (ADVISORY_CLASS, MIGRATION_LOCK)
            )
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            applied = {r[0] for r in await cur.fetchall()}
            for version, _name, sql in migrations("postgresql"):
                if version in applied:
                    continue
                await conn.execute(sql.encode())  # whole: several statements, no parameters
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, now()),
                )

    async def _rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        async with self._conn() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    # -- the chat's writes, in groups ------------------------------------------------------

    async def _write(self, sql: str, params: Any, order: tuple[int, str, int]) -> list[Any]:
        """Run one of the chat's writes (an exchange's start, a reply's update) and return its
        rows. Writes that arrive while others are on their way wait, then go together: one
        transaction, pipelined (one round trip, one commit), so under load each costs a part
        of one. A write alone runs alone. ``order``: its place in a batch (``_Write.order``)."""
        loop = asyncio.get_running_loop()
        writing = self._writing
        if writing is not None and not writing.done() and writing.get_loop() is not loop:
            raise StoreError(f"the history store {self.url} is writing on another event loop")
        future = loop.create_future()
        self._queued.append(_Write(sql, params, future, order))
        if writing is None or writing.done():
            self._writing = loop.create_task(self._write_queued())
        return await asyncio.shield(future)  # (a caller that goes away leaves its write be)

    async def _write_queued(self) -> None:
        batch: list[_Write] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await self._write_batch(batch)
        except BaseException:  # (cancelled with its loop: no caller is left waiting)
            stopped = StoreError(f"the history store {self.url} stopped writing")
            for write in batch + self._queued:
                answer(write.future, False, stopped)
            self._queued = []
            raise

    async def _write_batch(self, batch: list[_Write]) -> None:
        """Answer each write of ``batch``.

        - A statement the database refuses for its own values is answered with that error; the
          others, rolled back with it, go again together. One that waited for a row lock (or a
          deadlock, or a timeout) goes on alone, with all of ``storage.busy_timeout`` to wait:
          a batch waits for a lock ``BATCH_LOCK_TIMEOUT_MS`` at most. No statement is written
          twice.
        - A connection found dead before the commit was sent: nothing was written, so the batch
          goes again on another connection.
        - The outcome unknown (the connection lost once the commit was sent), a refusal of the
          whole database (read-only, full): every write of the batch gets the error, and none
          is written again behind its caller's back. No connection within ``busy_timeout``:
          the writes queued meanwhile get that error too, so none waits twice as long.
        """
        batch.sort(key=lambda write: write.order)
        dead_connections = self.pool_size + 1  # (each found dead is dropped by the pool)
        while len(batch) > 1:
            try:
                results = await self._run_together(batch)
            except _Refused as refused:
                write = batch.pop(refused.index)
                if refused.contended:  # (again, alone, beside the next batches)
                    self._detach(asyncio.ensure_future(self._write_alone(write)))
                else:
                    answer(write.future, False, refused.error)
                continue
            except _Unsent as unsent:
                dead_connections -= 1
                if dead_connections > 0:
                    continue
                failed, error = batch, unsent.error
            except NoConnectionError as error_:
                failed, error = batch + self._queued, error_
                self._queued = []
            except StoreError as error_:  # (named and explained already)
                failed, error = batch, error_
            except Exception as error_:  # noqa: BLE001 - each caller gets it, explained
                failed, error = batch, self._unconfirmed(error_)
            else:
                for write, rows in zip(batch, results, strict=True):
                    answer(write.future, True, rows)
                return
            for write in failed:
                answer(write.future, False, error)
            return
        for write in batch:  # (one: alone; if it waits long, as for a lock, the writes
            # that come next need not wait for it)
            task = asyncio.ensure_future(self._write_alone(write))
            try:
                await asyncio.wait([task], timeout=BATCH_LOCK_TIMEOUT_MS / 1000)
            finally:
                if not task.done():
                    self._detach(task)

    async def _write_alone(self, write: _Write) -> None:
        """``write`` in a transaction of its own (autocommit: one round trip)."""
        import psycopg

        try:
            async with self._conn() as conn:
                try:
                    async with asyncio.timeout(self._answer_within()):
                        rows = await _rows_of(await conn.execute(write.sql, write.params))
                except TimeoutError:  # (sent: whether it was applied, nobody can tell)
                    conn.pgconn.finish()
                    raise self._unanswered(True) from None
                except psycopg.Error as exc:
                    if conn.broken:  # (sent, and the connection went: nobody can tell)
                        raise self._unconfirmed(exc) from None
                    raise  # (the server's refusal, or the driver's before sending)
                answer(write.future, True, rows)
        except StoreError as exc:
            answer(write.future, False, exc)
        except Exception as exc:  # noqa: BLE001 - a value the driver could not send
            answer(write.future, False, self._error(exc, "running a query"))

    def _detach(self, task: asyncio.Future) -> None:
        """Let ``task`` (a write alone) go on beside the batches that come next; ``close``
        waits for it."""
        self._alone.add(task)
        task.add_done_callback(self._alone.discard)

    async def _run_together(self, batch: list[_Write]) -> list[Any]:
        """The rows of each write of ``batch``, run in one pipelined transaction; or
        ``_Refused`` naming the write at fault, ``_Unsent``, or the error (unknown outcome)."""
        import psycopg

        cursors: list[Any] = []  # (the SET's, then one a write)
        committing = False
        error: Exception | None = None
        async with self._conn() as conn:
            try:
                # BEGIN and COMMIT are statements of the pipeline: an error raised while it
                # runs is kept (the pipeline's end then raises nothing psycopg would log)
                async with asyncio.timeout(self._answer_within()), conn.pipeline():
                    try:
                        await conn.execute("BEGIN", prepare=False)
                        lock_wait = min(BATCH_LOCK_TIMEOUT_MS, int(self.busy_timeout * 1000))
                        set_lock = f"SET LOCAL lock_timeout = {lock_wait}"
                        cursors.append(await conn.execute(set_lock, prepare=False))
                        for write in batch:  # (prepared once used often: psycopg's default)
                            cursors.append(await conn.execute(write.sql, write.params))
                        committing = True
                        await conn.execute("COMMIT", prepare=False)
                    except psycopg.Error as exc:
                        error = exc
            except TimeoutError:  # (the server stopped answering: this connection is done)
                conn.pgconn.finish()
                raise self._unanswered(committing) from None
            except psycopg.Error as exc:
                error = error or exc
            except Exception as exc:  # (a value the driver could not send: nothing was sent)
                if committing:
                    raise
                error = exc
            except BaseException:  # cancelled midway: this connection must not be reused
                conn.pgconn.finish()
                raise
            if error is None:
                return [await _rows_of(cursor) for cursor in cursors[1:]]
            # not used again: an aborted pipeline can leave psycopg's prepared statements out
            # of step with the server's (the open transaction goes with it)
            state, broken = getattr(error, "sqlstate", None) or "", conn.broken
            await conn.close()
            if committing and (broken or not state):
                # the commit was sent and no answer from the server came back (a refusal has
                # a SQLSTATE): it may have been applied, and nobody can tell
                raise self._unconfirmed(error)
            if broken:
                raise _Unsent(self._error(error, "running a query"))
            # the first statement with no result is the one at fault (those after it were
            # skipped); an error with no SQLSTATE before the commit is the driver's, about the
            # write it was sending
            failed = next(
                (i for i, cur in enumerate(cursors) if cur.pgresult is None), len(cursors)
            )
            own = state.startswith(_OWN_FAULT) or not (state or committing)
            contended = state.startswith(_CONTENDED)
            if 1 <= failed <= len(batch) and (own or contended):
                raise _Refused(failed - 1, self._error(error, "running a query"), contended)
            raise error

    async def _execute(self, sql: str, params: Any = ()) -> None:
        async with self._conn() as conn:
            await conn.execute(sql, params)

    # -- writers -----------------------------------------------------------------------------

    async def _writer(self) -> str:
        """This store's writer id: its lock first, then its row, so that no reader sees a
        writer whose lock is not yet held."""
        if self._writer_id is not None:
            return self._writer_id
        if self._writer_lock is None:
            self._writer_lock = asyncio.Lock()
        async with self._writer_lock:
            if self._writer_id is not None:
                return self._writer_id
            import psycopg

            key = secrets.randbelow(2**31 - 2) + 1
            writer_id = uuid.uuid4().hex
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                await conn.execute("SELECT pg_advisory_lock(%s, %s)", (ADVISORY_CLASS, key))
            except psycopg.Error as exc:
                raise self._error(exc, "registering as a writer") from None
            await self._execute(
                "INSERT INTO writers (id, pid, host, started_at, lock_key) "
                "VALUES (%s, %s, %s, %s, %s)",
                (writer_id, os.getpid(), socket.gethostname(), now(), key),
            )
            self._writer_conn, self._writer_id = conn, writer_id
        return writer_id

    async def _sweep(self) -> None:
        """Mark the streaming replies of writers that no live session holds the lock of as
        interrupted, and forget those writers (one short transaction)."""
        own = self._writer_id or ""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE messages SET status = %s, error = %s, completed_at = %s "
                "WHERE status = 'streaming' AND writer IS NOT NULL AND writer <> %s "
                "AND writer NOT IN (SELECT id FROM writers WHERE lock_key IN "
                f"({_LIVE_KEYS}))",
                (INTERRUPTED, PROCESS_ENDED, now(), own),
            )
            await conn.execute(
                f"DELETE FROM writers WHERE id <> %s AND lock_key NOT IN ({_LIVE_KEYS})", (own,)
            )

    # -- the interface ---------------------------------------------------------------------

    async def check_writable(self) -> None:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT pg_is_in_recovery()")
            if (await cur.fetchone())[0]:
                raise StoreError(f"the history store {self.url} is a read-only replica")

    async def schema_version(self) -> int:
        rows = await self._rows("SELECT MAX(version) AS v FROM schema_migrations")
        return rows[0]["v"] or 0

    async def counts(self) -> dict[str, int]:
        rows = await self._rows(
            "SELECT (SELECT COUNT(*) FROM conversations) AS conversations, "
            "(SELECT COUNT(*) FROM messages) AS messages, "
            "(SELECT COUNT(*) FROM writers) AS writers"
        )
        return {k: int(v) for k, v in rows[0].items()}

    @staticmethod
    def _owned(owner: str | None, column: str = "owner") -> tuple[str, tuple[Any, ...]]:
        return ("", ()) if owner is None else (f" AND {column} = %s", (owner,))

    async def resolve(self, id_or_prefix: str, owner: str | None = None) -> str:
        where, extra = self._owned(owner)
        rows = await self._rows(
            f"SELECT id FROM conversations WHERE (id = %s OR id ILIKE %s){where} "
            "ORDER BY updated_at DESC",
            (id_or_prefix, id_or_prefix.replace("%", "").replace("_", "") + "%", *extra),
        )
        return pick(id_or_prefix, [r["id"] for r in rows])

    async def latest_conversation(self) -> str | None:
        rows = await self._rows(
            "SELECT id FROM conversations ORDER BY updated_at DESC, seq DESC LIMIT 1"
        )
        return rows[0]["id"] if rows else None

    async def conversation(self, id_or_prefix: str, owner: str | None = None) -> dict[str, Any]:
        conversation_id = await self.resolve(id_or_prefix, owner)
        await self._sweep()
        conv = (
            await self._rows(f"SELECT {_CONV} FROM conversations WHERE id = %s", (conversation_id,))
        )[0]
        conv["messages"] = await self._rows(
            f"SELECT {_MSG}, w.pid AS writer_pid, w.host AS writer_host FROM messages m "
            "LEFT JOIN writers w ON w.id = m.writer AND m.status = %s "
            "WHERE m.conversation_id = %s ORDER BY m.id",
            (STREAMING, conversation_id),
        )
        for message in conv["messages"]:
            message["tool_calls"] = json.loads(message["tool_calls"] or "[]")
        return conv

    async def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        await self._sweep()
        where, extra = self._owned(owner, "c.owner")
        columns = ", ".join(f"c.{c}" for c in CONVERSATION_COLUMNS)
        sql = (
            f"SELECT {columns}, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id)"
            f" AS message_count FROM conversations c WHERE TRUE{where} "
            "ORDER BY c.updated_at DESC, c.seq DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return await self._rows(sql, extra)

    async def delete_conversation(self, id_or_prefix: str, owner: str | None = None) -> str:
        conversation_id = await self.resolve(id_or_prefix, owner)
        await self._execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
        return conversation_id

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        await self._execute(
            "UPDATE conversations SET model = %s, updated_at = %s WHERE id = %s",
            (model, now(), conversation_id),
        )

    async def start_exchange(
        self,
        conversation_id: str | None,
        model_id: str,
        messages: list[str | dict[str, Any]],
        *,
        system: str | None = None,
        owner: str | None = None,
        new: bool = False,
        reply: dict[str, Any] | None = None,
        at: str | None = None,
    ) -> tuple[str, int]:
        rows = message_rows(messages)
        stamp = at or now()
        writer = await self._writer() if reply is None else None  # (a whole reply has none)
        # one statement, so one round trip, atomic by itself: the conversation (a CTE) and the
        # messages in order, the reply last (ids follow the VALUES order)
        params: list[Any] = []
        continuing = not (conversation_id is None or new)
        if not continuing:
            conversation_id = conversation_id or uuid.uuid4().hex
            head = (
                "WITH c AS (INSERT INTO conversations (id, title, model, system, created_at, "
                "updated_at, owner) VALUES (%s, %s, %s, %s, %s, %s, %s)) "
            )
            params += [conversation_id, title_of(rows), model_id, system, stamp, stamp, owner]
        else:
            head = (
                "WITH c AS (UPDATE conversations SET updated_at = %s WHERE id = %s RETURNING id) "
            )
            params += [stamp, conversation_id]
        values = exchange_messages(conversation_id, rows, model_id, stamp, writer, reply)
        # each row has every column; the casts type the ones that may all be NULL
        row = "(" + ", ".join(f"%s{_CASTS.get(c, '')}" for c in EXCHANGE_COLUMNS) + ")"
        params += [value for message in values for value in message]
        # (continuing, the rows go in only if the conversation is still there: one deleted
        # since it was looked up is unknown, not a foreign-key failure)
        guard = " WHERE EXISTS (SELECT 1 FROM c)" if continuing else ""
        sql = (
            head
            + f"INSERT INTO messages ({', '.join(EXCHANGE_COLUMNS)}) SELECT * FROM (VALUES "
            + ", ".join([row] * len(values))
            + ") AS v"
            + guard
            + " RETURNING id"
        )
        # (a new conversation first: it locks no row of another, and a continuing exchange in
        # the same batch may be its next turn)
        order = (0, conversation_id, 0) if continuing else (-1, "", 0)
        ids = [r[0] for r in await self._write(sql, params, order)]
        if not ids:
            raise UnknownConversationError(
                f"conversation {conversation_id!r} was deleted", hint="start a new conversation"
            )
        return conversation_id, int(max(ids))

    async def update_message(self, message_id: int, **fields: Any) -> None:
        columns, values = update_columns(fields, "%s")
        sql = f"UPDATE messages SET {columns} WHERE id = %s"
        await self._write(sql, (*values, message_id), (1, "", message_id))

    async def score_message(
        self, message_id: int, score: float, comment: str | None, owner: str | None = None
    ) -> dict[str, Any]:
        from psycopg.rows import dict_row

        where, extra = self._owned(owner, "c.owner")
        async with self._conn() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT m.id, m.conversation_id, m.model_id, c.owner FROM messages m "
                "JOIN conversations c ON c.id = m.conversation_id "
                f"WHERE m.id = %s AND m.role = 'assistant'{where} FOR UPDATE OF m",
                (message_id, *extra),
            )
            rows = await cur.fetchall()
            if not rows:
                raise UnknownMessageError(f"no assistant message {message_id}")
            await conn.execute(
                "UPDATE messages SET score = %s, score_comment = %s, scored_at = %s WHERE id = %s",
                (score, comment, now(), message_id),
            )
        return rows[0]

    async def export(self) -> list[dict[str, Any]]:
        await self._sweep()
        convs = await self._rows(f"SELECT {_CONV} FROM conversations ORDER BY created_at, seq")
        messages: dict[str, list[dict[str, Any]]] = {}
        for row in await self._rows(f"SELECT {_MSG} FROM messages m ORDER BY id"):
            messages.setdefault(row["conversation_id"], []).append(row)
        for conv in convs:
            conv["messages"] = messages.get(conv["id"], [])
        return convs

    async def import_conversation(self, conv: dict[str, Any]) -> int:
        """Add ``conv`` and its messages (new message ids; a reply still ``streaming`` in the
        source arrives ``interrupted``), or, when it is here already, the messages it has
        gained since: one transaction per conversation, so a copy run twice adds nothing."""
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO conversations (id, title, model, system, created_at, updated_at, "
                "owner) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "model = EXCLUDED.model, updated_at = EXCLUDED.updated_at",
                tuple(conv[c] for c in CONVERSATION_COLUMNS),
            )
            cur = await conn.execute(
                "SELECT COUNT(*) FROM messages WHERE conversation_id = %s", (conv["id"],)
            )
            have = (await cur.fetchone())[0]
            missing = conv["messages"][have:]
            columns = [c for c in MESSAGE_COLUMNS if c not in ("id", "writer")]
            rows = []
            for message in missing:
                message = dict(message)
                if message["status"] == STREAMING:
                    message.update(status=INTERRUPTED, error=PROCESS_ENDED)
                if not isinstance(message.get("tool_calls"), (str, type(None))):
                    message["tool_calls"] = json.dumps(message["tool_calls"]) or None
                rows.append(tuple(message.get(c) for c in columns))
            if rows:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        f"INSERT INTO messages ({', '.join(columns)}) "
                        f"VALUES ({', '.join(['%s'] * len(columns))})",
                        rows,
                    )
        return len(rows)


@functools.cache
def _nul_free_text() -> type:
    """psycopg's dumper of ``str`` parameters, but for NUL (U+0000), which PostgreSQL's text
    cannot hold: sent as U+FFFD, so a message with one is stored (as SQLite would) instead of
    failing its request."""
    from psycopg.types.string import StrDumperUnknown

    class NulFreeText(StrDumperUnknown):
        def dump(self, obj: str) -> Any:
            return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)

    return NulFreeText


# how long a batch of writes waits for a row lock (the write whose row is locked then goes on
# alone, with all of storage.busy_timeout to wait), and the writes queued behind a write alone
# wait for it at most
BATCH_LOCK_TIMEOUT_MS = 50
# seconds past storage.busy_timeout a write waits for the server's answer before it takes the
# server for gone (and closes that connection)
ANSWER_GRACE = 10.0
# SQLSTATEs of a refusal of one statement of a batch: for its own values or rows (data,
# integrity, a statement the server cannot run)...
_OWN_FAULT = ("22", "23", "42", "54")
# ...or for waiting on others (a lock, a deadlock, a serialization failure, a timeout)
_CONTENDED = ("55P03", "40P01", "40001", "57014")


class _Write(NamedTuple):
    sql: str
    params: Any
    future: asyncio.Future
    # its place in a batch: new conversations first (they lock no row of another), then the
    # conversations whose rows it locks (by id), then the messages (by id): (-1, "", 0),
    # (0, id, 0), (1, "", id); every batch locks rows in that order, so two never deadlock
    order: tuple[int, str, int]


class _Refused(Exception):  # noqa: N818 - not an error of its own: which write, and why
    """The database refused the write at ``index`` of a batch with ``error`` (``contended``:
    for waiting on others, not for its own values)."""

    def __init__(self, index: int, error: StoreError, contended: bool) -> None:
        self.index, self.error, self.contended = index, error, contended


class _Unsent(Exception):  # noqa: N818 - a batch to run again
    """The batch's connection was found dead before its commit was sent: nothing was written."""

    def __init__(self, error: StoreError) -> None:
        self.error = error


async def _rows_of(cursor: Any) -> list[tuple[Any, ...]]:
    return await cursor.fetchall() if cursor.description else []


def _ended_while_idle(conn: Any) -> bool:
    """Whether the server ended ``conn`` while it sat in the pool (a restart, a terminated
    session): an idle connection has nothing to read unless the server said goodbye or closed
    it. One poll that does not wait, no round trip; without it, the first query on each such
    connection would fail its request."""
    import select

    try:
        poll = select.poll()  # (not select.select: it fails on descriptors over 1023)
        poll.register(conn.pgconn.socket, select.POLLIN)
        return bool(poll.poll(0))
    except Exception:  # noqa: BLE001 - no socket left: ended too
        return True


class _Connection:
    """``async with store._conn() as conn``: a pooled connection (the pool opened on first
    use); psycopg's and the pool's errors become ``StoreError``s that name the store."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        await self.store.open()
        for _ in range(self.store.pool_size + 1):
            pooled = self.store._pool.connection()
            try:
                conn = await pooled.__aenter__()
            except Exception as exc:
                raise self.store._error(exc, "waiting for a connection") from None
            if not _ended_while_idle(conn):
                self._cm = pooled
                return conn
            await conn.close()  # (and the pool drops it, and opens another)
            await pooled.__aexit__(None, None, None)
        raise StoreError(
            f"the history store {self.store.url}: every connection the pool gave had been "
            "closed by the server",
            hint="retry in a moment; if it goes on, check the server",
        )

    async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        import psycopg

        try:
            await self._cm.__aexit__(kind, exc, tb)
        except psycopg.Error as error:
            raise self.store._error(error, "finishing a query") from None
        if isinstance(exc, psycopg.Error):
            raise self.store._error(exc, "running a query") from None
        return False
