"""Recording a turn in the history store: the new messages, then the reply as it goes.

On an async store (the gateway's) nothing here waits for the store on the event loop. The
conversation's id is made here, so the turn knows it at once; each write is a task of the
store's (``HistoryStore.defer``), chained after the previous one of the same exchange so they
land in order. The start of the exchange runs while the model is asked; a surface that must know
it was stored (the gateway, before it answers) awaits ``started()``, and ``flush()`` before it
says the reply is done. The store waits for whatever is still pending when it closes.

A blocking SQLite store (the CLI's, the Python API's) is written through instead, as the turn
goes: one user's loop may wait on a local file, and a reply's text is then stored before it is
shown, so a kill loses nothing that was seen.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..host import Host
from ..storage import AsyncSQLiteStore, HistoryStore, SQLiteStore, SyncStore, now
from ..storage import open_store as _open_store

if TYPE_CHECKING:
    from .prompt import Message
    from .reply import Reply

log = logging.getLogger("ai_assistant.chat")


def open_store(source: Host | Config) -> SQLiteStore | SyncStore:
    """The history store at ``storage.url`` (a relative file is taken from the settings file's
    folder). Settings alone are enough: a command that only reads history imports no plugin."""
    config = source.config if isinstance(source, Host) else source
    return _open_store(config)


class Recorder:
    """Writes one exchange to the history: the new messages, then the reply as it goes."""

    def __init__(
        self,
        store: Any,
        conversation_id: str | None,
        *,
        owner: str | None = None,
        system: str | None = None,
        whole: bool = False,
    ) -> None:
        # a blocking SQLite store (the CLI, the Python API: one user, whose loop may wait on a
        # local file) is written through, so what was shown is stored before a kill can lose
        # it; any other store (the gateway's) through its async face, deferred
        self._through = store if isinstance(store, SQLiteStore) else None
        self.store: HistoryStore | None = store.aio if store is not None else None
        # the gateway's SQLite store: writes go straight to its writer thread's queue, which
        # keeps them in order without a task per write
        self._queue = self.store if isinstance(self.store, AsyncSQLiteStore) else None
        self._ids: dict[str, int] = {}  # the current reply's id, once the queue has stored it
        self._queued: list[asyncio.Future] = []  # (the start, the latest write)
        self.conversation_id = conversation_id
        self.owner = owner
        self.system = system
        self._start: asyncio.Future | None = None
        self._last: asyncio.Future | None = None
        # ``whole``, on an async store: each exchange is written once, whole, as its reply ends
        # (one write instead of two, for a reply nobody reads before it ends); until then its
        # start waits here
        self._whole = whole and self._through is None
        self._pending: tuple[str, list[Any], bool, Reply, str] | None = None
        self._previous: Recorder | None = None  # the turn before (``follow``)
        self._creates = False  # whether this exchange's start creates the conversation

    def follow(self, previous: Recorder | None) -> None:
        """Make this exchange's deferred writes wait for those of ``previous`` (the turn
        before, in the same conversation): a second turn's start never overtakes the first's,
        which may be what creates the conversation; and if that one could not be stored, this
        one creates the conversation instead."""
        if previous is not None and self._last is None:
            self._last = previous._last
            self._previous = previous

    def _created_nothing(self) -> bool:
        """Whether this exchange was to create its conversation and its start was not stored."""
        start = self._start
        failed = start is not None and (start.cancelled() or start.exception() is not None)
        return self._creates and failed

    def _then(self, write: Any, after_start: bool = True) -> asyncio.Future:
        """Defer ``write(reply message id)`` (a coroutine function) until the previous write has
        ended; skipped when the start of its reply failed (there is no reply to update)."""
        assert self.store is not None
        previous, start = self._last, self._start

        async def run() -> Any:
            if previous is not None:
                await asyncio.wait((previous,))
            if not after_start:
                return await write()
            if start is None or start.cancelled() or start.exception() is not None:
                return None
            return await write(start.result())  # (the id of the reply this write is about)

        task = self.store.defer(run())
        task.add_done_callback(_report)
        self._last = task
        return task

    def start(self, model_id: str, messages: list[Message | str], reply: Reply) -> None:
        """Store ``messages`` (user texts, or user and tool messages) and the empty reply."""
        if self.store is None:
            return
        rows: list[Any] = [
            m
            if isinstance(m, str)
            else {"role": m.role, "content": m.content, "tool_call_id": m.tool_call_id}
            for m in messages
        ]
        if self._through is not None:
            self.conversation_id, reply.message_id = self._through.start_exchange(
                self.conversation_id, model_id, rows, system=self.system, owner=self.owner
            )
            return
        new = self.conversation_id is None
        if new:
            self.conversation_id = uuid.uuid4().hex
        if self._whole:  # (stamped now: the question was asked now, not when it is written)
            self._pending = (model_id, rows, new, reply, now())
            return
        self._begin(model_id, rows, new, reply)

    def _begin(
        self,
        model_id: str,
        rows: list[Any],
        new: bool,
        reply: Reply,
        at: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        """Write the start of the exchange (and, given its ``fields``, the whole reply)."""
        store, conversation_id = self.store, self.conversation_id
        assert store is not None
        kw = {"system": self.system, "owner": self.owner, "new": new, "reply": fields, "at": at}
        if self._queue is not None:
            core, ids = self._queue.core, {}

            def job() -> None:
                # (run again alone if its batch was rolled back: an id from that run is void)
                ids.clear()
                reply.message_id = None
                _, message_id = core.start_exchange(conversation_id, model_id, rows, **kw)
                reply.message_id = ids["id"] = message_id

            self._ids = ids
            self._queued = [self._enqueue(job)] * 2
            return

        async def write() -> int:
            previous = self._previous
            if previous is not None and previous._created_nothing():
                kw["new"] = True  # (the turn before could not create the conversation)
            self._creates = bool(kw["new"])
            _, reply.message_id = await store.start_exchange(conversation_id, model_id, rows, **kw)
            return reply.message_id

        self._start = self._then(write, after_start=False)

    def _enqueue(self, job: Any) -> asyncio.Future:
        assert self._queue is not None
        future = self._queue.enqueue(job)
        future.add_done_callback(_report)
        return future

    def _update(self, **fields: Any) -> None:
        """Queue an update of the current reply (skipped if its start could not be stored)."""
        core, ids = self._queue.core, self._ids  # type: ignore[union-attr]
        self._queued[1] = self._enqueue(lambda: ids and core.update_message(ids["id"], **fields))

    async def started(self) -> None:
        """Wait until the start of the exchange is stored (``StoreError`` if it could not be)."""
        if self._queued:
            await _done(self._queued[0])
        if self._start is not None:
            await asyncio.shield(self._start)

    async def flush(self) -> None:
        """Wait until every write of this exchange so far is stored; raise the store's error
        if the exchange could not be stored. (One wait: the queue keeps the writes in order.)"""
        if self._queued:
            await _done(self._queued[1])
            self._queued[0].result()  # (the start's error, if it failed)
            return
        await self.started()
        if self._last is not None:
            await asyncio.shield(self._last)

    def progress(self, reply: Reply) -> None:
        if self._pending is not None:
            return  # (nothing is stored before the whole reply)
        text, model_id, store = reply.text, reply.model_id, self.store
        if self._through is not None and reply.message_id is not None:
            self._through.update_message(reply.message_id, content=text, model_id=model_id)
        if self._queued:
            self._update(content=text, model_id=model_id)
        if self.store is None or self._start is None:
            return
        self._then(
            lambda message_id: store.update_message(message_id, content=text, model_id=model_id)
        )

    def finish(self, reply: Reply) -> None:
        stored = self._start is not None or self._queued or self._through
        if self.store is None or not (stored or self._pending):
            return
        fields = {
            "content": reply.text,
            "model_id": reply.model_id,
            "status": reply.status,
            "error": reply.error,
            "latency_ms": reply.latency_ms,
            "first_token_ms": reply.first_token_ms,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "tool_calls": list(reply.tool_calls) or None,
        }
        if self._through is not None:
            if reply.message_id is not None:
                self._through.update_message(reply.message_id, **fields)
            return
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._begin(*pending, fields=fields)
            return
        if self._queued:
            self._update(**fields)
            return
        store = self.store
        self._then(lambda message_id: store.update_message(message_id, **fields))


async def _done(future: asyncio.Future) -> None:
    """Wait for a queued write, at no cost when it is already done. (Cancelling the wait never
    cancels the write, nor its future.)"""
    if not future.done():
        await asyncio.shield(future)
    future.result()


def _report(task: asyncio.Future) -> None:
    """A deferred write that failed is logged (its exchange's surface also sees it when it
    awaits ``started``/``flush``); retrieving it keeps asyncio from warning."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("the history store could not record a reply: %s", task.exception())
