"""Conversation history in SQLite: one file per host, numbered migrations, a writer thread.

WAL mode and one short transaction per write, so a process killed mid-reply leaves a consistent
database (with the reply's text up to its last flush) and readers never wait on a writer. Every
wait for another process's write lock is bounded by ``storage.busy_timeout``; past it a write
raises ``StoreBusyError`` (the gateway's 503) instead of waiting on.

``SQLiteStore`` is the blocking store the CLI uses; ``AsyncSQLiteStore`` is the same store for
an event loop, datasette-style: writes queue to one writer thread, reads run in a small thread
pool on a connection of their own, so a locked database never stalls the loop.

The file is private: created 0600 (SQLite gives its -wal and -shm files the same mode), in
folders created 0700; folders that already exist keep their mode.

Who is writing a ``streaming`` reply: each process that writes replies is a *writer*, with a row
in ``writers`` (pid and host, for people to read) and a lock file in ``<database>-writers/`` on
which it holds an exclusive ``flock`` for as long as its store is open. The kernel drops that lock
whenever the process ends, kill -9 included, so a reader that can take the lock knows that no
live process owns the writer's replies, and marks them ``interrupted`` ("the process ended").
Unlike a pid, a lock cannot be inherited by an unrelated process that reuses the number; unlike a
heartbeat, it needs no clock, no background thread and no staleness horizon, so a slow or paused
writer is never mistaken for a dead one. It holds across gateway workers and across hosts that
share the folder, wherever the file system honours locks -- which SQLite needs anyway.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import queue
import socket
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .base import (
    COMPLETE,
    EXCHANGE_COLUMNS,
    INTERRUPTED,
    PROCESS_ENDED,
    STREAMING,
    HistoryStore,
    StoreBusyError,
    StoreError,
    UnknownConversationError,
    UnknownMessageError,
    answer,
    create_private_file,
    enable_wal,
    exchange_messages,
    fix_messages,
    is_busy,
    make_private_folders,
    message_rows,
    migrations,
    now,
    pick,
    settle,
    title_of,
    update_columns,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers are not tracked, replies stay streaming
    fcntl = None  # type: ignore[assignment]

BUSY_TIMEOUT = 5.0  # seconds: storage.busy_timeout's default
CHECKPOINT_EVERY = 100  # writes between the writer thread's WAL checkpoints (~700 pages)

# writer ids held by stores open in this process: alive by definition, and never probed (where
# flock is emulated with POSIX locks, as on NFS, probing one's own lock would release it)
_OWN_WRITERS: set[str] = set()


def _release_writer(writer_id: str, fd: int, lock_path: Path) -> None:
    """Give up a writer's lock and its file (at close, or when the store is collected)."""
    _OWN_WRITERS.discard(writer_id)
    with contextlib.suppress(OSError):
        lock_path.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


class SQLiteStore:
    """The history database, blocking. Safe to share between threads: one connection for
    writes and one for reads, each behind its own lock."""

    dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = Path(path)
        self.url = str(path)
        self.busy_timeout = float(busy_timeout)
        self._in_memory = str(path) == ":memory:"
        # every process must find the same lock files, however it names the database
        real = self.path.expanduser().resolve()
        self.writers_dir = real.with_name(real.name + "-writers")
        self._writer_id: str | None = None
        self._writer_release: weakref.finalize | None = None
        self._writer_lock = threading.Lock()  # one writer per store, even if threads race
        self._aio: AsyncSQLiteStore | None = None
        try:
            if not self._in_memory:
                make_private_folders(self.path.parent)
                create_private_file(self.path)
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the history database {self.path}: {exc}",
                hint="set storage.url to a file you can write",
            ) from None
        self._lock = threading.RLock()  # (re-entered by the writes of a batch)
        self._batching = False
        self._unchecked = 0  # writes since the last checkpoint (see ``written``)
        with self._busy_as_error():
            self._enable_wal()
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        # reads on a connection of their own: under WAL they never wait for a writer, not even
        # for this store's own writer thread while it waits out another process's lock
        self._reader, self._read_lock = self._db, self._lock
        if not self._in_memory:
            self._reader, self._read_lock = self._connect(), threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _enable_wal(self) -> None:
        enable_wal(self._db, self.busy_timeout)

    @contextlib.contextmanager
    def _busy_as_error(self) -> Iterator[None]:
        """A lock that outlasted ``busy_timeout`` is ``StoreBusyError``, naming the store."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            raise StoreBusyError(
                f"the history store {self.path} stayed locked by another process for "
                f"{self.busy_timeout:g} s (storage.busy_timeout)",
                hint="retry in a moment",
            ) from None

    def close(self) -> None:
        self._settle()
        if self._aio is not None:
            self._aio.shutdown()
        if self._writer_release is not None and self._writer_release.alive:
            with contextlib.suppress(sqlite3.Error, StoreError):
                self._write("DELETE FROM writers WHERE id = ?", (self._writer_id,))
            self._writer_release()
        if self._reader is not self._db:
            self._reader.close()
        self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def aio(self) -> AsyncSQLiteStore:
        """This store for an event loop (made on first use)."""
        if self._aio is None:
            self._aio = AsyncSQLiteStore(self)
        return self._aio

    def _settle(self) -> None:
        """Wait for the writes the chat core deferred to an event loop in another thread, so
        that what this thread reads next includes them (and nothing is lost at exit)."""
        settle(self.busy_timeout * 3 + 5)

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Each numbered file of ``migrations/sqlite`` not yet applied, whole, in one
        ``BEGIN IMMEDIATE`` transaction that first records its version: when another process
        migrates at the same time, one waits for the other's write lock and then finds the
        version taken, and rolls back."""
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            applied = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
            for version, _name, sql in migrations("sqlite"):
                if version in applied:
                    continue
                script = (
                    "BEGIN IMMEDIATE;\n"
                    f"INSERT INTO schema_migrations (version, applied_at) "
                    f"VALUES ({version}, '{now()}');\n{sql}\n;COMMIT;"
                )
                try:
                    self._db.executescript(script)
                except sqlite3.IntegrityError:  # another process applied it meanwhile
                    self._rollback()
                except BaseException:
                    self._rollback()
                    raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def check_writable(self) -> None:
        """Raise if a write could not start now (read-only file, locked database)."""
        with self._busy_as_error(), self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")

    def schema_version(self) -> int:
        row = self._read("SELECT MAX(version) AS v FROM schema_migrations")
        return row[0]["v"] or 0

    def counts(self) -> dict[str, int]:
        self._settle()
        return {
            table: self._read(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
            for table in ("conversations", "messages", "writers")
        }

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Several statements, one short write transaction (inside a batch's, in a batch)."""
        self._settle()
        with self._busy_as_error(), self._lock:
            if self._batching:
                yield
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement, one short transaction (autocommit)."""
        self._settle()
        with self._busy_as_error(), self._lock:
            return self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._busy_as_error(), self._read_lock:
            return [dict(r) for r in self._reader.execute(sql, params).fetchall()]

    def run_batch(self, items: list[tuple[Callable[[], Any], Any]]) -> list[tuple[Any, bool, Any]]:
        """Run queued writes in one transaction (a group commit): ``(future, ok, result or
        error)`` for each, to be resolved now that it is committed. When one of them fails, the
        transaction is rolled back and each runs again in a transaction of its own, so only the
        failing one gets its error; a lock that outlasts ``busy_timeout`` fails them all."""
        registered = self._writer_id is not None
        try:
            with self._batch():
                results = [fn() for fn, _future in items]
        except StoreBusyError as exc:
            self._forget_writer(registered)
            return [(future, False, exc) for _fn, future in items]
        except Exception:  # noqa: BLE001 - one write's own error: each on its own, then
            self._forget_writer(registered)
            return [run_one(fn, future) for fn, future in items]
        futures = [future for _fn, future in items]
        return [(future, True, result) for future, result in zip(futures, results, strict=True)]

    def warm_up(self) -> None:
        """Compile the statements of a whole exchange (one question, its answer) in a
        transaction that is rolled back, so the first reply stored costs what the next do."""
        with self._batch(commit=False):
            self.start_exchange(None, "warm-up", ["warm-up"], reply={"status": COMPLETE})

    @contextlib.contextmanager
    def _batch(self, commit: bool = True) -> Iterator[None]:
        """One write transaction around several writes (each one's ``_transaction`` joins it):
        committed at the end if ``commit`` and none failed, else rolled back."""
        with self._busy_as_error(), self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._batching = True
            try:
                yield
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT" if commit else "ROLLBACK")
            finally:
                self._batching = False

    def own_checkpoints(self) -> None:
        """Stop this connection's automatic WAL checkpoints, which run inside the commit that
        crosses the threshold (copying the WAL into the file and syncing it, while whoever
        waits for that commit waits too); ``written`` runs them instead."""
        with self._lock:  # (a setting of the connection: no I/O, no lock on the file)
            self._db.execute("PRAGMA wal_autocheckpoint=0")

    def written(self, count: int) -> None:
        """``count`` more writes were committed and answered: checkpoint the WAL every
        ``CHECKPOINT_EVERY`` of them (passively: it never waits for a reader or writer)."""
        self._unchecked += count
        if self._unchecked >= CHECKPOINT_EVERY:
            self._unchecked = 0
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # -- writers: who owns a streaming reply -------------------------------------------------

    def _writer(self) -> str | None:
        """This store's writer id, registered on first use: lock file first, then the row, so a
        reader never sees a writer whose lock is not yet held. None where locks are unavailable
        (the replies then stay ``streaming`` if the process dies, as before)."""
        if self._writer_id is not None or self._in_memory or fcntl is None:
            return self._writer_id
        with self._writer_lock:
            if self._writer_id is None:
                self._writer_id = self._register_writer()
        return self._writer_id

    def _forget_writer(self, registered: bool) -> None:
        """After a rolled-back batch: a writer registered in it lost its row, so let it go (the
        next streaming reply registers a new one)."""
        if registered or self._writer_id is None:
            return
        with self._writer_lock:
            if self._writer_release is not None:
                self._writer_release()
            self._writer_id = self._writer_release = None

    def _register_writer(self) -> str | None:
        writer_id = uuid.uuid4().hex
        lock_path = self.writers_dir / f"{writer_id}.lock"
        fd = -1
        try:
            make_private_folders(self.writers_dir)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if fd >= 0:
                _release_writer(writer_id, fd, lock_path)
            return None
        _OWN_WRITERS.add(writer_id)
        self._writer_release = weakref.finalize(self, _release_writer, writer_id, fd, lock_path)
        try:
            self._write(
                "INSERT INTO writers (id, pid, host, started_at) VALUES (?, ?, ?, ?)",
                (writer_id, os.getpid(), socket.gethostname(), now()),
            )
        except BaseException:
            self._writer_release()
            raise
        return writer_id

    def _writer_is_dead(self, writer_id: str) -> bool:
        """True when no live process holds the writer's lock. Unsure is alive: a file that
        cannot be opened or locked for another reason never marks a reply."""
        if writer_id in _OWN_WRITERS or fcntl is None:
            return False
        try:
            fd = os.open(self.writers_dir / f"{writer_id}.lock", os.O_RDONLY)
        except FileNotFoundError:
            return True  # its process ended and a reader already cleaned up after it
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return False  # held: its process is alive (or the lock cannot be tested)
        finally:
            os.close(fd)  # a successful probe's lock goes with it
        return True

    def _sweep(self) -> set[str]:
        """Mark the streaming replies of writers whose process has ended as interrupted, and
        forget those writers. Cheap when nothing died: one small query and one lock probe per
        other live writer process. Returns the dead writers whose replies could not be marked
        (a read-only file, a busy database), for readers to correct in what they return."""
        writers = {r["id"] for r in self._read("SELECT id FROM writers")}
        # and writers whose row is gone (a store closed mid-reply): the partial index holds
        # only streaming replies, so this stays small
        writers.update(
            r["writer"]
            for r in self._read(
                "SELECT DISTINCT writer FROM messages "
                "WHERE status = 'streaming' AND writer IS NOT NULL"
            )
        )
        dead = sorted(w for w in writers if self._writer_is_dead(w))
        if not dead:
            return set()
        marks = ",".join("?" * len(dead))
        # readers must not wait long on another write: try briefly, and leave the marking to
        # the next reader if the database (or this store's own writer) stays busy
        if not self._lock.acquire(timeout=0.2):
            return set(dead)
        try:
            self._db.execute("PRAGMA busy_timeout = 200")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute(
                        "UPDATE messages SET status = ?, error = ?, completed_at = ? "
                        f"WHERE status = 'streaming' AND writer IN ({marks})",
                        (INTERRUPTED, PROCESS_ENDED, now(), *dead),
                    )
                    self._db.execute(f"DELETE FROM writers WHERE id IN ({marks})", dead)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except sqlite3.Error:
            return set(dead)
        finally:
            self._lock.release()
        for writer_id in dead:
            with contextlib.suppress(OSError):
                (self.writers_dir / f"{writer_id}.lock").unlink()
        return set()

    # -- conversations -----------------------------------------------------------------------

    @staticmethod
    def _owned(owner: str | None) -> tuple[str, tuple[Any, ...]]:
        # owner None means "any" (the local CLI); a gateway user sees only their own
        return ("", ()) if owner is None else (" AND owner = ?", (owner,))

    def resolve(self, id_or_prefix: str, owner: str | None = None) -> str:
        """The full id of the conversation whose id is or starts with ``id_or_prefix``."""
        self._settle()
        where, extra = self._owned(owner)
        rows = self._read(
            f"SELECT id FROM conversations WHERE (id = ? OR id LIKE ?){where} "
            "ORDER BY updated_at DESC",
            (id_or_prefix, id_or_prefix.replace("%", "").replace("_", "") + "%", *extra),
        )
        return pick(id_or_prefix, [r["id"] for r in rows])

    def latest_conversation(self) -> str | None:
        self._settle()
        rows = self._read(
            "SELECT id FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        )
        return rows[0]["id"] if rows else None

    def conversation(self, id_or_prefix: str, owner: str | None = None) -> dict[str, Any]:
        """The conversation with its messages, oldest first."""
        conversation_id = self.resolve(id_or_prefix, owner)
        unmarked = self._sweep()
        conv = self._read("SELECT * FROM conversations WHERE id = ?", (conversation_id,))[0]
        conv["messages"] = self._read(
            "SELECT m.*, w.pid AS writer_pid, w.host AS writer_host FROM messages m "
            "LEFT JOIN writers w ON w.id = m.writer AND m.status = ? "
            "WHERE m.conversation_id = ? ORDER BY m.id",
            (STREAMING, conversation_id),
        )
        fix_messages(conv["messages"], unmarked)
        return conv

    def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, with a message count."""
        self._settle()
        self._sweep()
        where, extra = self._owned(owner)
        sql = (
            "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) "
            f"AS message_count FROM conversations c WHERE 1=1{where} "
            "ORDER BY c.updated_at DESC, c.rowid DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._read(sql, extra)

    def delete_conversation(self, id_or_prefix: str, owner: str | None = None) -> str:
        conversation_id = self.resolve(id_or_prefix, owner)
        self._write("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return conversation_id

    def set_conversation_model(self, conversation_id: str, model: str) -> None:
        self._write(
            "UPDATE conversations SET model = ?, updated_at = ? WHERE id = ?",
            (model, now(), conversation_id),
        )

    # -- messages ----------------------------------------------------------------------------

    def start_exchange(
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
        """One transaction for the start of an exchange: the conversation (new when
        ``conversation_id`` is None, or with that id when ``new``), the new messages (user
        texts, or ``{"role", "content", "tool_call_id"}`` for user and tool messages), and the
        assistant's reply, empty and ``streaming``, owned by this process's writer; or, given
        ``reply`` (``update_message``'s fields), the whole reply. ``at``: when the exchange
        began (default: now). Returns (conversation id, reply message id)."""
        rows = message_rows(messages)
        stamp = at or now()
        writer = self._writer() if reply is None else None  # (a whole reply has no writer)
        with self._transaction():
            if conversation_id is None or new:
                conversation_id = conversation_id or uuid.uuid4().hex
                self._db.execute(
                    "INSERT INTO conversations (id, title, model, system, created_at, "
                    "updated_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, title_of(rows), model_id, system, stamp, stamp, owner),
                )
            else:
                cursor = self._db.execute(
                    "UPDATE conversations SET updated_at = ? WHERE id = ?",
                    (stamp, conversation_id),
                )
                if cursor.rowcount == 0:  # deleted since it was looked up
                    raise UnknownConversationError(
                        f"conversation {conversation_id!r} was deleted",
                        hint="start a new conversation",
                    )
            # the messages in order, as few statements as SQLite's limit on parameters allows
            # (999 before SQLite 3.32): the reply's id is the last
            values = exchange_messages(conversation_id, rows, model_id, stamp, writer, reply)
            row = "(" + ", ".join("?" * len(EXCHANGE_COLUMNS)) + ")"
            limit = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            most = max(1, limit // len(EXCHANGE_COLUMNS))
            for start in range(0, len(values), most):
                chunk = values[start : start + most]
                cursor = self._db.execute(
                    f"INSERT INTO messages ({', '.join(EXCHANGE_COLUMNS)}) VALUES "
                    + ", ".join([row] * len(chunk)),
                    [value for message in chunk for value in message],
                )
        return conversation_id, int(cursor.lastrowid)

    def update_message(self, message_id: int, **fields: Any) -> None:
        """Set columns of one message (content, status, error, model_id, latency...)."""
        columns, values = update_columns(fields)
        self._write(f"UPDATE messages SET {columns} WHERE id = ?", (*values, message_id))

    def score_message(
        self, message_id: int, score: float, comment: str | None, owner: str | None = None
    ) -> dict[str, Any]:
        """Store feedback on an assistant message of ``owner``'s conversations (any, for
        ``None``: the local CLI and a keyless gateway). Returns the message with its
        conversation id and model; ``UnknownMessageError`` for any other message."""
        self._settle()
        where, extra = self._owned(owner)
        with self._transaction():
            rows = [
                dict(r)
                for r in self._db.execute(
                    "SELECT m.id, m.conversation_id, m.model_id, c.owner FROM messages m "
                    "JOIN conversations c ON c.id = m.conversation_id "
                    f"WHERE m.id = ? AND m.role = 'assistant'{where.replace('owner', 'c.owner')}",
                    (message_id, *extra),
                )
            ]
            if not rows:
                raise UnknownMessageError(f"no assistant message {message_id}")
            self._db.execute(
                "UPDATE messages SET score = ?, score_comment = ?, scored_at = ? WHERE id = ?",
                (score, comment, now(), message_id),
            )
        return rows[0]

    # -- copying -----------------------------------------------------------------------------

    def export(self) -> list[dict[str, Any]]:
        self._settle()
        self._sweep()
        convs = self._read("SELECT * FROM conversations ORDER BY created_at, rowid")
        messages: dict[str, list[dict[str, Any]]] = {}
        for row in self._read("SELECT * FROM messages ORDER BY id"):
            messages.setdefault(row["conversation_id"], []).append(row)
        for conv in convs:
            conv["messages"] = messages.get(conv["id"], [])
        return convs


def run_one(fn: Callable[[], Any], future: Any) -> tuple[Any, bool, Any]:
    """``(future, ok, result or error)`` of running ``fn``."""
    try:
        return future, True, fn()
    except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits it
        return future, False, exc


def resolve(outcomes: list[tuple[Any, bool, Any]]) -> None:
    """Hand each outcome to its future: one wake-up per event loop for its asyncio futures
    (``_LoopOutcome``), and ``set_result``/``set_exception`` on the others."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, bool, Any]]] = {}
    for future, ok, value in outcomes:
        if isinstance(future, _LoopOutcome):
            by_loop.setdefault(future.future.get_loop(), []).append((future.future, ok, value))
        elif ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # (its loop has closed: nobody waits for it)
            loop.call_soon_threadsafe(_resolve_all, settled)


class WriterThread:
    """One daemon thread that runs queued writes in order (datasette's write thread). Not a
    ``ThreadPoolExecutor``: those refuse work once the interpreter starts to exit, and the
    last writes of a CLI chat are waited for at exit."""

    BATCH = 64  # writes at most in one transaction

    def __init__(
        self,
        name: str = "ai-assistant-store-writer",
        batch: Callable[[list[tuple[Callable[[], Any], Any]]], None] | None = None,
        after: Callable[[int], None] | None = None,
    ) -> None:
        self._batch = batch
        self._after = after  # told how many writes were answered, between batches
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> concurrent.futures.Future:
        """Queue ``fn``; its future is running from now on, so nobody can cancel a queued
        write (a client that goes away does not take its reply's record with it)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        self._queue.put((fn, future))
        return future

    def put(self, fn: Callable[[], Any], outcome: Any) -> None:
        """Queue ``fn``; ``outcome.set_result``/``set_exception`` is called with what came of
        it, on the writer thread, once its transaction is committed."""
        self._queue.put((fn, outcome))

    def stop(self) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            # what queued up meanwhile goes in the same transaction (group commit)
            while self._batch is not None and len(items) < self.BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in items:
                stopping = True
                items = items[: items.index(None)]
            if len(items) > 1 and self._batch is not None:
                try:
                    outcomes = self._batch(items)
                except BaseException as exc:  # noqa: BLE001 - the thread lives on; they fail
                    outcomes = [(future, False, exc) for _fn, future in items]
            else:
                outcomes = [run_one(fn, future) for fn, future in items]
            resolve(outcomes)
            if self._after is not None and items:
                with contextlib.suppress(Exception):  # (housekeeping: the writes are done)
                    self._after(len(items))


class _LoopOutcome:
    """Where a queued write's outcome goes when it is awaited on an event loop: an asyncio
    future, resolved there (``resolve``: one wake-up per batch, cheaper than a
    ``concurrent.futures.Future`` wrapped for the loop)."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future


def _retrieved(future: asyncio.Future) -> None:
    """(Its outcome is nobody's business: a store that cannot write says so on use.)"""
    if not future.cancelled():
        future.exception()


def _resolve_all(settled: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for future, ok, value in settled:
        answer(future, ok, value)


class AsyncSQLiteStore(HistoryStore):
    """``SQLiteStore`` for an event loop: writes queue to one writer thread (in order), reads
    run in a few reader threads; the loop itself never touches the file."""

    dialect = "sqlite"

    def __init__(self, core: SQLiteStore) -> None:
        self.core = core
        self.url = core.url
        self._writes = WriterThread(batch=core.run_batch, after=core.written)
        self._reads = ThreadPoolExecutor(4, thread_name_prefix="ai-assistant-store-reader")

    def __repr__(self) -> str:
        return f"AsyncSQLiteStore({self.url!r})"

    async def _run(self, pool: Any, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        call = functools.partial(fn, *args, **kw)
        if isinstance(pool, WriterThread):
            return await asyncio.wrap_future(pool.submit(call))
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def warm_up(self) -> None:
        """For a server whose writes all go through this face: the writer thread runs the WAL
        checkpoints from now on (``own_checkpoints``), and is warmed up (``SQLiteStore.warm_up``)
        without waiting for it (a write that comes meanwhile queues behind it)."""
        self.core.own_checkpoints()
        self.enqueue(self.core.warm_up).add_done_callback(_retrieved)

    def enqueue(self, job: Callable[[], Any]) -> asyncio.Future:
        """Run ``job()`` on the writer thread after everything queued before it (for the chat
        core's writes, which need no task of their own to stay in order). Call it on the event
        loop; its future is resolved there, with one wake-up, once ``job`` is committed."""
        future = asyncio.get_running_loop().create_future()
        self._writes.put(job, _LoopOutcome(future))
        return future

    def shutdown(self) -> None:
        self._writes.stop()
        self._reads.shutdown(wait=True)

    async def close(self) -> None:
        await self.flush()
        await self._run(self._writes, lambda: None)  # (what is queued is written)
        # then let go of the connections, the threads and the writer's lock (in a thread of
        # the loop's own: the store's threads are the ones being stopped)
        await asyncio.to_thread(self.core.close)

    async def check_writable(self) -> None:
        await self._run(self._reads, self.core.check_writable)

    async def schema_version(self) -> int:
        return await self._run(self._reads, self.core.schema_version)

    async def counts(self) -> dict[str, int]:
        return await self._run(self._reads, self.core.counts)

    async def resolve(self, id_or_prefix: str, owner: str | None = None) -> str:
        return await self._run(self._reads, self.core.resolve, id_or_prefix, owner)

    async def latest_conversation(self) -> str | None:
        return await self._run(self._reads, self.core.latest_conversation)

    async def conversation(self, id_or_prefix: str, owner: str | None = None) -> dict[str, Any]:
        return await self._run(self._reads, self.core.conversation, id_or_prefix, owner)

    async def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._run(self._reads, self.core.conversations, limit, owner)

    async def delete_conversation(self, id_or_prefix: str, owner: str | None = None) -> str:
        return await self._run(self._writes, self.core.delete_conversation, id_or_prefix, owner)

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        await self._run(self._writes, self.core.set_conversation_model, conversation_id, model)

    async def start_exchange(self, conversation_id, model_id, messages, **kw) -> tuple[str, int]:
        return await self._run(
            self._writes, self.core.start_exchange, conversation_id, model_id, messages, **kw
        )

    async def update_message(self, message_id: int, **fields: Any) -> None:
        await self._run(self._writes, self.core.update_message, message_id, **fields)

    async def score_message(self, message_id, score, comment, owner=None) -> dict[str, Any]:
        return await self._run(
            self._writes, self.core.score_message, message_id, score, comment, owner
        )

    async def export(self) -> list[dict[str, Any]]:
        return await self._run(self._reads, self.core.export)
