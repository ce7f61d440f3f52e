"""What every history store shares: the async interface, statuses, errors, URLs (with their
passwords masked), the migration files, and a blocking face for synchronous callers."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import threading
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import AiAssistantError
from ..masking import MASK, redact

COMPLETE = "complete"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
FAILED = "failed"

PROCESS_ENDED = "the process ended"  # the error of a reply whose writer died mid-stream

CONVERSATION_COLUMNS = ("id", "title", "model", "system", "created_at", "updated_at", "owner")
MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "role",
    "content",
    "model_id",
    "status",
    "error",
    "created_at",
    "completed_at",
    "latency_ms",
    "first_token_ms",
    "input_tokens",
    "output_tokens",
    "writer",
    "tool_calls",
    "tool_call_id",
    "score",
    "score_comment",
    "scored_at",
)
# what update_message may set
UPDATABLE = frozenset(
    {
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
)


class StoreError(AiAssistantError):
    """The history store cannot do what was asked (cannot open, locked, unreachable)."""


class StoreBusyError(StoreError):
    """The store stayed locked (or out of connections) longer than ``storage.busy_timeout``:
    worth retrying in a moment."""


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


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///...`` URL (``sqlite:////abs`` or ``sqlite:///rel``), or the
    path itself."""
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :].removeprefix("/") or ":memory:"
    return url


def _credentials(url: str) -> tuple[str, str, str] | None:
    """``(scheme://, user, password)`` of a PostgreSQL URL whose netloc has credentials, read
    the way a person writes them: up to the last ``@``, so a password written raw (libpq
    takes one) may hold ``#``, ``?``, ``/`` or ``@``."""
    scheme, sep, rest = url.partition("://")
    if not (sep and is_postgresql(url)) or "@" not in rest:
        return None
    user, _colon, password = rest.rpartition("@")[0].partition(":")
    return scheme + sep, user, password


def mask_url(url: str) -> str:
    """``url`` fit to show: its password, in the netloc or the query, masked (any scheme: the
    one masking every output uses)."""
    url = str(url)
    found = _credentials(url)
    if found:
        scheme, user, password = found
        shown = f"{user}:{MASK}" if password and user else MASK if password else user
        url = f"{scheme}{shown}@{url.rpartition('@')[2]}"
    return redact(url)


def url_password(url: str) -> str | None:
    """The password in a PostgreSQL URL, for redaction wherever the URL may be quoted."""
    if not is_postgresql(url):
        return None
    found = re.search(r"(?i)[?&]password=([^&#]*)", url)
    credentials = _credentials(url)
    return (credentials[2] if credentials else None) or (found.group(1) if found else None)


def url_secrets(url: str) -> list[str]:
    """What of a PostgreSQL URL's password may turn up in a message, longest first: the
    password, percent-decoded too, and each part of it between raw URL characters."""
    from urllib.parse import unquote

    password = url_password(url)
    if not password:
        return []
    found = {password, unquote(password)}
    found.update(p for p in re.split(r"[@/?#:]", password) if len(p) >= 4)
    # libpq reads a raw @, ? or / as the end of the credentials and may quote what follows
    # it, up to and with the URL's own @, as a host or a parameter: that, however short
    found.update(password.partition(mark)[2] + "@" for mark in "@?/#" if mark in password)
    return sorted(found, key=len, reverse=True)


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of each numbered ``migrations/<dialect>/NNNN_name.sql``, in
    order. Each file runs whole, in one transaction, recorded in ``schema_migrations``; never
    edit a published one: add the next number."""
    folder = resources.files(__package__).joinpath("migrations", dialect)
    found = []
    for item in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", item.name)
        if match:
            found.append((int(match.group(1)), match.group(2), item.read_text("utf-8")))
    return sorted(found)


# the deferred writes of every store in this process: a blocking reader (another command in the
# same process, a new store on the same file) first waits for them, so it reads what was written
_DEFERRED: set[asyncio.Future] = set()


def settle(timeout: float = 30.0) -> None:
    """Wait for the deferred writes of this process that run on an event loop in another thread
    (a no-op on that loop itself, and in the stores' own threads)."""
    if threading.current_thread().name.startswith("ai-assistant-store-"):
        return  # (the store's own threads never wait for what is queued behind them)
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
    for task in list(_DEFERRED):
        if not task.done():
            by_loop.setdefault(task.get_loop(), []).append(task)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    for loop, tasks in by_loop.items():
        if loop is running or loop.is_closed() or not loop.is_running():
            continue

        async def wait(tasks: list[asyncio.Future] = tasks) -> None:
            await asyncio.wait(tasks)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(wait(), loop).result(timeout=timeout)


atexit.register(settle)  # (the loop thread is a daemon: still running while atexit runs)


class HistoryStore:
    """The history store as the gateway and the chat core use it: every method a coroutine.

    Rows are plain dicts with the same keys and values whichever database holds them;
    ``owner=None`` means any owner (the local CLI), a name limits to that caller's own."""

    url: str  # with the password masked
    dialect: str

    async def open(self) -> None:
        """Connect and migrate (a no-op once open)."""

    def warm_up(self) -> None:
        """Make the first write cost what the next ones do, in the background (for a server,
        once it is open)."""

    async def close(self) -> None:
        """Wait for pending writes, then let go of connections and the writer's liveness."""

    async def check_writable(self) -> None:
        raise NotImplementedError

    async def schema_version(self) -> int:
        raise NotImplementedError

    async def counts(self) -> dict[str, int]:
        """Rows per table: conversations, messages, writers."""
        raise NotImplementedError

    async def resolve(self, id_or_prefix: str, owner: str | None = None) -> str:
        raise NotImplementedError

    async def latest_conversation(self) -> str | None:
        raise NotImplementedError

    async def conversation(self, id_or_prefix: str, owner: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    async def conversations(
        self, limit: int | None = None, owner: str | None = None
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def delete_conversation(self, id_or_prefix: str, owner: str | None = None) -> str:
        raise NotImplementedError

    async def set_conversation_model(self, conversation_id: str, model: str) -> None:
        raise NotImplementedError

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
        """The conversation (created when ``conversation_id`` is None, or with that id when
        ``new``), the new messages and the empty ``streaming`` reply, in one transaction.
        Given ``reply`` (``update_message``'s fields, a final status among them), the reply is
        stored whole instead: the whole exchange in one write. ``at`` (``now()``'s form): when
        the exchange began, if not now. Returns (conversation id, reply message id)."""
        raise NotImplementedError

    async def update_message(self, message_id: int, **fields: Any) -> None:
        raise NotImplementedError

    async def score_message(
        self, message_id: int, score: float, comment: str | None, owner: str | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def export(self) -> list[dict[str, Any]]:
        """Every conversation with its messages (for ``storage copy``)."""
        raise NotImplementedError

    async def import_conversation(self, conv: dict[str, Any]) -> int:
        """Add ``conv`` (as ``export`` gives it) unless present; append the messages a copy
        made earlier lacks. Returns how many messages were added."""
        raise NotImplementedError

    # -- the chat core's deferred writes --------------------------------------------------------

    def defer(self, awaitable: Any) -> asyncio.Future:
        """Run ``awaitable`` as a task this store waits for at ``close`` (and ``flush``), and
        that blocking readers in other threads wait for (``settle``)."""
        task = asyncio.ensure_future(awaitable)
        pending = self.__dict__.setdefault("_deferred", set())
        for bag in (pending, _DEFERRED):
            bag.add(task)
            task.add_done_callback(bag.discard)
        return task

    async def flush(self) -> None:
        """Wait for every deferred write (their failures are their owners' to report)."""
        pending = list(self.__dict__.get("_deferred", ()))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def aio(self) -> HistoryStore:
        return self


def answer(future: asyncio.Future, ok: bool, value: Any) -> None:
    """Give a queued write's ``future`` its outcome, unless it has one: ``value`` as its result
    (``ok``) or its exception, which its caller gets if it is still there (one that went away
    is not reported as an error nobody retrieved)."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
        future.exception()


def format_store_error(url: str, exc: BaseException) -> str:
    """One line about ``exc`` that never carries the URL's password."""
    text = f"{type(exc).__name__}: {exc}".strip()
    for secret in url_secrets(url):
        text = text.replace(secret, MASK + "@" if secret.endswith("@") else MASK)
    return redact(text)


# -- what both dialects share ------------------------------------------------------------------


def pick(id_or_prefix: str, ids: list[str]) -> str:
    """The one conversation id that ``id_or_prefix`` names among the ``ids`` it matched."""
    if id_or_prefix in ids:
        return id_or_prefix
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UnknownConversationError(
            f"no conversation {id_or_prefix!r}",
            hint="`ai-assistant conversations list` shows the ids",
        )
    raise UnknownConversationError(
        f"{id_or_prefix!r} matches {len(ids)} conversations", hint="give more of the id"
    )


def message_rows(messages: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": m} if isinstance(m, str) else m for m in messages]


def title_of(rows: list[dict[str, Any]]) -> str:
    users = (r["content"] for r in rows if r["role"] == "user")
    title = next((t for t in users if t.strip()), "")
    return " ".join(title.split())[:80] or "(untitled)"


def checked_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A message's ``fields`` as stored: only ``UPDATABLE`` names, tool calls as JSON, and a
    ``completed_at`` once the status is final."""
    unknown = set(fields) - UPDATABLE
    if unknown:
        raise ValueError(f"unknown message fields: {sorted(unknown)}")
    fields = dict(fields)
    if fields.get("tool_calls") is not None:
        fields["tool_calls"] = json.dumps(fields["tool_calls"])
    if fields.get("status") in (COMPLETE, INTERRUPTED, FAILED):
        fields.setdefault("completed_at", now())
    return fields


def update_columns(fields: dict[str, Any], mark: str = "?") -> tuple[str, list[Any]]:
    """``"a = ?, b = ?"`` and the values for ``update_message``'s ``fields``."""
    fields = checked_fields(fields)
    return ", ".join(f"{name} = {mark}" for name in fields), list(fields.values())


# the columns of a reply as ``start_exchange`` inserts it, in this order
REPLY_COLUMNS = tuple(c for c in MESSAGE_COLUMNS if c in UPDATABLE | {"created_at", "writer"})


# the columns of each message ``start_exchange`` inserts, in this order
EXCHANGE_COLUMNS = ("conversation_id", "role", "tool_call_id", *REPLY_COLUMNS)


def exchange_messages(
    conversation_id: str,
    rows: list[dict[str, Any]],
    model_id: str,
    stamp: str,
    writer: str | None,
    reply: dict[str, Any] | None,
) -> list[tuple[Any, ...]]:
    """What ``start_exchange`` inserts into ``messages``, one tuple of ``EXCHANGE_COLUMNS`` a
    message, in order: the new ``rows``, complete, then the reply (``reply_row``)."""
    values = []
    for r in rows:
        message = dict.fromkeys(REPLY_COLUMNS)
        message.update(content=r["content"], status=COMPLETE, created_at=stamp, completed_at=stamp)
        values.append((conversation_id, r["role"], r.get("tool_call_id"), *message.values()))
    answer = reply_row(model_id, stamp, writer, reply)
    values.append((conversation_id, "assistant", None, *answer.values()))
    return values


def reply_row(
    model_id: str, stamp: str, writer: str | None, reply: dict[str, Any] | None
) -> dict[str, Any]:
    """The assistant row ``start_exchange`` inserts: empty and ``streaming``, owned by
    ``writer``; or, given the whole ``reply`` (``update_message``'s fields), final and owned by
    nobody."""
    row = dict.fromkeys(REPLY_COLUMNS)
    row.update(content="", model_id=model_id, status=STREAMING, created_at=stamp, writer=writer)
    if reply is not None:
        row.update(checked_fields(reply), writer=None)
        row["content"] = row["content"] or ""
        row["model_id"] = row["model_id"] or model_id
    return row


def fix_messages(messages: list[dict[str, Any]], unmarked: set[str]) -> None:
    """Decode tool calls; show the replies of dead writers that could not be marked yet as
    interrupted."""
    for message in messages:
        message["tool_calls"] = json.loads(message["tool_calls"] or "[]")
        if message["status"] == STREAMING and message["writer"] in unmarked:
            message.update(
                status=INTERRUPTED, error=PROCESS_ENDED, writer_pid=None, writer_host=None
            )


# -- files of the SQLite stores (history and knowledge) ------------------------------------


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and any missing parent 0700; folders that exist are left alone."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for item in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process just made it
            item.mkdir(mode=0o700)


def create_private_file(path: Path) -> None:
    """Create an empty ``path`` 0600 unless it exists (the mode of an existing file is kept)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def is_busy(exc: BaseException) -> bool:
    """Is ``exc`` SQLite saying the database is locked by another connection?"""
    import sqlite3

    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def enable_wal(db: Any, busy_timeout: float) -> None:
    """Switch a new SQLite file to WAL (a no-op once it is). When another process is setting up
    the same new file, SQLite answers "locked" at once rather than wait (waiting could
    deadlock), so wait here, as long as for any other lock, and try again."""
    import sqlite3
    import time

    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
