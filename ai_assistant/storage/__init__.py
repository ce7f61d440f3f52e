"""The history store: conversations, messages, scores, owners. One async interface
(``HistoryStore``), chosen by ``storage.url``: a file path or ``sqlite:///...`` (the default is
the user's data directory) for one host, ``postgresql://...`` for several.

Only this package writes SQL. ``open_store`` gives the blocking face the CLI and the Python API
use; ``open_async_store`` the async one the gateway uses (``store.aio`` turns one into the
other)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
from pathlib import Path
from typing import Any

from .base import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    PROCESS_ENDED,
    STREAMING,
    HistoryStore,
    StoreBusyError,
    StoreError,
    UnknownConversationError,
    UnknownMessageError,
    default_store_path,
    is_postgresql,
    mask_url,
    now,
    settle,
    sqlite_path,
    url_password,
)
from .sqlite import BUSY_TIMEOUT, AsyncSQLiteStore, SQLiteStore

__all__ = [
    "BUSY_TIMEOUT",
    "COMPLETE",
    "FAILED",
    "INTERRUPTED",
    "PROCESS_ENDED",
    "STREAMING",
    "AsyncSQLiteStore",
    "HistoryStore",
    "SQLiteStore",
    "StoreBusyError",
    "StoreError",
    "SyncStore",
    "UnknownConversationError",
    "UnknownMessageError",
    "default_store_path",
    "is_postgresql",
    "mask_url",
    "now",
    "open_async_store",
    "open_store",
    "settle",
    "store_url",
    "url_password",
]


def store_url(config: Any) -> str:
    """``storage.url`` (or the older ``storage.path``), a relative file taken from the settings
    file's folder; the default file in the user's data directory when neither is set."""
    url = config.value("storage.url") or config.value("storage.path")
    if not url:
        return str(default_store_path())
    url = str(url)
    if is_postgresql(url):
        return url
    path = Path(sqlite_path(url)).expanduser()
    if str(path) != ":memory:" and not path.is_absolute():
        path = config.root / path
    return str(path)


def _options(config: Any) -> dict[str, Any]:
    return {"busy_timeout": config.value("storage.busy_timeout")}


def open_async_store(config: Any) -> HistoryStore:
    """The store for an event loop (a PostgreSQL store connects on first use, or ``open``)."""
    url = store_url(config)
    if is_postgresql(url):
        from .postgresql import PostgresStore

        return PostgresStore(url, pool_size=config.value("storage.pool_size"), **_options(config))
    return SQLiteStore(url, **_options(config)).aio


def open_store(config: Any) -> SQLiteStore | SyncStore:
    """The store for blocking code: SQLite directly, PostgreSQL through the process's
    background event loop."""
    url = store_url(config)
    if is_postgresql(url):
        return SyncStore(open_async_store(config))
    return SQLiteStore(url, **_options(config))


class SyncStore:
    """An async store's methods, blocking: each runs on the process's background loop (where
    the chat turns of the CLI and the Python API run too, so a pool serves both)."""

    def __init__(self, store: HistoryStore) -> None:
        self.aio = store
        self.url = store.url
        self.dialect = store.dialect
        self.run(store.open())
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        """What the chat core deferred is written before the process ends."""
        with contextlib.suppress(Exception):
            self.run(asyncio.wait_for(self.aio.close(), 30))

    def close(self) -> None:
        atexit.unregister(self._at_exit)
        self.run(self.aio.close())

    def run(self, coro: Any) -> Any:
        from ..loop import background_loop

        loop = background_loop()
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                raise RuntimeError("SyncStore used on its own loop: await store.aio instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.aio, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if name not in ("flush", "open"):
                settle()  # read what this process wrote
            return self.run(method(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"SyncStore({self.aio!r})"
