"""Conversation history in SQLite: conversations, their messages, numbered schema migrations.

WAL mode and one short transaction per write, so a process killed mid-reply leaves a consistent
database (with the reply's text up to its last flush) and readers never wait on a writer.

The file is private: created 0600 (SQLite gives its -wal and -shm files the same mode), in
folders created 0700; folders that already exist keep their mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import AiAssistantError

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
]

COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
FAILED = "failed"


class UnknownConversationError(AiAssistantError, LookupError):
    """No conversation has that id (or id prefix)."""


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


class Store:
    """The history database. Safe to share between threads (one connection, one lock)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._in_memory = str(path) == ":memory:"
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
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
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
        conv = self._read("SELECT * FROM conversations WHERE id = ?", (conversation_id,))[0]
        conv["messages"] = self._read(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
        )
        return conv

    def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, with a message count."""
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
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO messages (conversation_id, role, content, model_id, status, created_at, "
            "completed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                role,
                content,
                model_id,
                status,
                stamp,
                stamp if status == COMPLETE else None,
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
        user_texts: list[str],
        *,
        system: str | None = None,
        owner: str | None = None,
    ) -> tuple[str, int]:
        """One transaction for the start of an exchange: the conversation (new when
        ``conversation_id`` is None), the user's messages, and the assistant's reply, empty and
        ``streaming``. Returns (conversation id, reply message id)."""
        stamp = now()
        with self._transaction():
            if conversation_id is None:
                conversation_id = uuid.uuid4().hex
                title = next((t for t in user_texts if t.strip()), "")
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
            for text in user_texts:
                self._insert_message(conversation_id, "user", text, None, COMPLETE, stamp)
            reply_id = self._insert_message(
                conversation_id, "assistant", "", model_id, STREAMING, stamp
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
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown message fields: {sorted(unknown)}")
        if fields.get("status") in (COMPLETE, INTERRUPTED, FAILED):
            fields.setdefault("completed_at", now())
        columns = ", ".join(f"{name} = ?" for name in fields)
        self._write(f"UPDATE messages SET {columns} WHERE id = ?", (*fields.values(), message_id))
