"""Conversation history in SQLite: conversations, their messages, numbered schema migrations.

WAL mode and one short transaction per write, so a process killed mid-reply leaves a consistent
database (with the reply's text up to its last flush) and readers never wait on a writer.

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

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import AiAssistantError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers are not tracked, replies stay streaming
    fcntl = None  # type: ignore[assignment]

# Each migration runs once, in order, in its own transaction; applied versions are recorded in
# schema_migrations. Never edit a published migration: add the next number.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            system TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            model_id TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed')),
            error TEXT,
            created_at TEXT NOT NULL,
            completed_at TEXT,
            latency_ms INTEGER,
            first_token_ms INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER
        );
        CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
        CREATE INDEX conversations_by_update ON conversations (updated_at);
        """,
    ),
    (
        2,
        """
        -- who a conversation belongs to: the gateway's API key name (NULL from the CLI)
        ALTER TABLE conversations ADD COLUMN owner TEXT;
        CREATE INDEX conversations_by_owner ON conversations (owner, updated_at);
        """,
    ),
    (
        3,
        """
        -- the processes writing replies (see the module docstring): pid and host are for people,
        -- liveness comes from each writer's lock file
        CREATE TABLE writers (
            id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL
        );
        ALTER TABLE messages ADD COLUMN writer TEXT;
        CREATE INDEX messages_streaming ON messages (writer) WHERE status = 'streaming';
        -- replies left streaming before writers were recorded: their processes cannot be told
        -- apart, and in practice they were killed (a live one's final status still overwrites)
        UPDATE messages SET status = 'interrupted', error = 'the process ended',
            completed_at = strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')
            WHERE status = 'streaming';
        """,
    ),
    (
        4,
        """
        -- tool messages, and the tool calls of an assistant reply (a JSON list of
        -- {"id", "name", "args"}): SQLite cannot change a CHECK, so the table is rebuilt
        CREATE TABLE messages_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
            content TEXT NOT NULL,
            model_id TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('complete', 'streaming', 'interrupted', 'failed')),
            error TEXT,
            created_at TEXT NOT NULL,
            completed_at TEXT,
            latency_ms INTEGER,
            first_token_ms INTEGER,
            input_tokens INTEGER,
            output_tokens INTEGER,
            writer TEXT,
            tool_calls TEXT,
            tool_call_id TEXT
        );
        INSERT INTO messages_new (id, conversation_id, role, content, model_id, status, error,
            created_at, completed_at, latency_ms, first_token_ms, input_tokens, output_tokens,
            writer)
            SELECT id, conversation_id, role, content, model_id, status, error, created_at,
                completed_at, latency_ms, first_token_ms, input_tokens, output_tokens, writer
            FROM messages;
        DROP TABLE messages;
        ALTER TABLE messages_new RENAME TO messages;
        CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
        CREATE INDEX messages_streaming ON messages (writer) WHERE status = 'streaming';
        """,
    ),
    (
        5,
        """
        -- feedback on an assistant reply (POST /api/chat/message/{id}/score)
        ALTER TABLE messages ADD COLUMN score REAL;
        ALTER TABLE messages ADD COLUMN score_comment TEXT;
        ALTER TABLE messages ADD COLUMN scored_at TEXT;
        """,
    ),
]

COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
FAILED = "failed"

PROCESS_ENDED = "the process ended"  # the error of a reply whose writer died mid-stream

# writer ids held by stores open in this process: alive by definition, and never probed (where
# flock is emulated with POSIX locks, as on NFS, probing one's own lock would release it)
_OWN_WRITERS: set[str] = set()


class UnknownConversationError(AiAssistantError, LookupError):
    """No conversation has that id (or id prefix)."""


class UnknownMessageError(AiAssistantError, LookupError):
    """No assistant message has that id (among the caller's own conversations)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_store_path() -> Path:
    """``$XDG_DATA_HOME/ai-assistant/history.db`` (``~/.local/share/...`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ai-assistant" / "history.db"


def _make_private_folders(folder: Path) -> None:
    """Create ``folder`` and any missing parent 0700; folders that exist are left alone."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process just made it
            item.mkdir(mode=0o700)


def _create_private_file(path: Path) -> None:
    """Create an empty ``path`` 0600 unless it exists (the mode of an existing file is kept)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _release_writer(writer_id: str, fd: int, lock_path: Path) -> None:
    """Give up a writer's lock and its file (at close, or when the store is collected)."""
    _OWN_WRITERS.discard(writer_id)
    with contextlib.suppress(OSError):
        lock_path.unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


class Store:
    """The history database. Safe to share between threads (one connection, one lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._in_memory = str(path) == ":memory:"
        # every process must find the same lock files, however it names the database
        real = self.path.expanduser().resolve()
        self.writers_dir = real.with_name(real.name + "-writers")
        self._writer_id: str | None = None
        self._writer_release: weakref.finalize | None = None
        self._writer_lock = threading.Lock()  # one writer per store, even if threads race
        try:
            if not self._in_memory:
                _make_private_folders(self.path.parent)
                _create_private_file(self.path)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
        except (OSError, sqlite3.Error) as exc:
            raise AiAssistantError(
                f"cannot open the history database {self.path}: {exc}",
                hint="set storage.path to a writable file, or pass --no-log",
            ) from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._enable_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _enable_wal(self, wait: float = 10.0) -> None:
        """Switch a new file to WAL (a no-op once it is). When another process is setting up the
        same new file, SQLite answers "locked" at once rather than wait (waiting could deadlock),
        so wait here, as long as for any other lock, and try again."""
        deadline = time.monotonic() + wait
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def close(self) -> None:
        if self._writer_release is not None and self._writer_release.alive:
            with contextlib.suppress(sqlite3.Error):
                self._write("DELETE FROM writers WHERE id = ?", (self._writer_id,))
            self._writer_release()
        self._db.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            applied = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
            for version, sql in MIGRATIONS:
                if version in applied:
                    continue
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    # re-check under the write lock: another process may have just migrated
                    if self._db.execute(
                        "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
                    ).fetchone():
                        self._db.execute("COMMIT")
                        continue
                    for statement in sql.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, now()),
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    def check_writable(self) -> None:
        """Raise if a write could not start now (read-only file, locked database)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")

    def schema_version(self) -> int:
        row = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Several statements, one short write transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """One statement, one short transaction (autocommit)."""
        with self._lock:
            return self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

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

    def _register_writer(self) -> str | None:
        writer_id = uuid.uuid4().hex
        lock_path = self.writers_dir / f"{writer_id}.lock"
        fd = -1
        try:
            _make_private_folders(self.writers_dir)
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
        with self._lock:
            writers = {r[0] for r in self._db.execute("SELECT id FROM writers")}
            # and writers whose row is gone (a store closed mid-reply): the partial index holds
            # only streaming replies, so this stays small
            writers.update(
                r[0]
                for r in self._db.execute(
                    "SELECT DISTINCT writer FROM messages "
                    "WHERE status = 'streaming' AND writer IS NOT NULL"
                )
            )
        dead = sorted(w for w in writers if self._writer_is_dead(w))
        if not dead:
            return set()
        marks = ",".join("?" * len(dead))
        try:
            with self._lock:
                # readers must not wait long on another process's write: try briefly, and
                # leave the marking to the next reader if the database stays busy
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
                    self._db.execute("PRAGMA busy_timeout = 10000")
        except sqlite3.Error:
            return set(dead)
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
        where, extra = self._owned(owner)
        rows = self._read(
            f"SELECT id FROM conversations WHERE (id = ? OR id LIKE ?){where} "
            "ORDER BY updated_at DESC",
            (id_or_prefix, id_or_prefix.replace("%", "").replace("_", "") + "%", *extra),
        )
        exact = [r["id"] for r in rows if r["id"] == id_or_prefix]
        if exact:
            return exact[0]
        if len(rows) == 1:
            return rows[0]["id"]
        if not rows:
            raise UnknownConversationError(
                f"no conversation {id_or_prefix!r}",
                hint="`ai-assistant conversations list` shows the ids",
            )
        raise UnknownConversationError(
            f"{id_or_prefix!r} matches {len(rows)} conversations", hint="give more of the id"
        )

    def latest_conversation(self) -> str | None:
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
        for message in conv["messages"]:
            message["tool_calls"] = json.loads(message["tool_calls"] or "[]")
            if message["status"] == STREAMING and message["writer"] in unmarked:
                message.update(
                    status=INTERRUPTED, error=PROCESS_ENDED, writer_pid=None, writer_host=None
                )
        return conv

    def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, with a message count."""
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

    def _insert_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        model_id: str | None,
        status: str,
        stamp: str,
        writer: str | None = None,
        tool_call_id: str | None = None,
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO messages (conversation_id, role, content, model_id, status, created_at, "
            "completed_at, writer, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                role,
                content,
                model_id,
                status,
                stamp,
                stamp if status == COMPLETE else None,
                writer,
                tool_call_id,
            ),
        )
        self._db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id)
        )
        return int(cursor.lastrowid)

    def start_exchange(
        self,
        conversation_id: str | None,
        model_id: str,
        messages: list[str | dict[str, Any]],
        *,
        system: str | None = None,
        owner: str | None = None,
    ) -> tuple[str, int]:
        """One transaction for the start of an exchange: the conversation (new when
        ``conversation_id`` is None), the new messages (user texts, or ``{"role", "content",
        "tool_call_id"}`` for user and tool messages), and the assistant's reply, empty and
        ``streaming``, owned by this process's writer. Returns (conversation id, reply message
        id)."""
        rows = [{"role": "user", "content": m} if isinstance(m, str) else m for m in messages]
        writer = self._writer()
        stamp = now()
        with self._transaction():
            if conversation_id is None:
                conversation_id = uuid.uuid4().hex
                users = (r["content"] for r in rows if r["role"] == "user")
                title = next((t for t in users if t.strip()), "")
                self._db.execute(
                    "INSERT INTO conversations (id, title, model, system, created_at, "
                    "updated_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        " ".join(title.split())[:80] or "(untitled)",
                        model_id,
                        system,
                        stamp,
                        stamp,
                        owner,
                    ),
                )
            for row in rows:
                self._insert_message(
                    conversation_id,
                    row["role"],
                    row["content"],
                    None,
                    COMPLETE,
                    stamp,
                    tool_call_id=row.get("tool_call_id"),
                )
            reply_id = self._insert_message(
                conversation_id, "assistant", "", model_id, STREAMING, stamp, writer
            )
        return conversation_id, reply_id

    def update_message(self, message_id: int, **fields: Any) -> None:
        """Set columns of one message (content, status, error, model_id, latency...)."""
        allowed = {
            "content",
            "status",
            "error",
            "model_id",
            "latency_ms",
            "first_token_ms",
            "input_tokens",
            "output_tokens",
            "completed_at",
            "tool_calls",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown message fields: {sorted(unknown)}")
        if fields.get("tool_calls") is not None:
            fields["tool_calls"] = json.dumps(fields["tool_calls"])
        if fields.get("status") in (COMPLETE, INTERRUPTED, FAILED):
            fields.setdefault("completed_at", now())
        columns = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE messages SET {columns} WHERE id = ?", (*fields.values(), message_id))

    def score_message(
        self, message_id: int, score: float, comment: str | None, owner: str | None = None
    ) -> dict[str, Any]:
        """Store feedback on an assistant message of ``owner``'s conversations (any, for
        ``None``: the local CLI and a keyless gateway). Returns the message with its
        conversation id and model; ``UnknownMessageError`` for any other message."""
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
