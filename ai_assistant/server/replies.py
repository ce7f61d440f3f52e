"""One reply to an HTTP request: the chat core's turn, driven from a route.

The first token (or tool call, or the failure) is awaited before the response starts, so a
provider that fails before answering becomes a proper status code (429, 502, 504) even for a
streaming request. After that, events stream; a client that goes away cancels the upstream call,
and the turn records the partial reply as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..chat import ChatError, Turn
from ..chat.events import Done, Error, Event, Token, ToolCall, ToolResult
from .errors import ApiError, from_chat_error

log = logging.getLogger("ai_assistant.server")

LEFT_BEFORE_FIRST_TOKEN = "the client disconnected before the first token"


class ClientGone(ApiError):
    """The client disconnected while the reply was awaited: nobody reads this response (the
    server drops it; 499 is nginx's "client closed request", for any middleware that counts)."""

    def __init__(self) -> None:
        super().__init__(499, LEFT_BEFORE_FIRST_TOKEN, code="client_disconnected")


async def _client_disconnects(receive: Any) -> None:
    """Returns when the ASGI server reports that the client went away (the request body has
    been read, so the next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _api_error(exc: BaseException, redact: Any) -> ApiError:
    if isinstance(exc, ChatError):
        return from_chat_error(exc)
    log.error(
        "reply failed: %s",
        redact(f"{type(exc).__name__}: {exc}"),
        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,  # (-v: redacted by logs)
    )
    return ApiError(500, "internal error while producing the reply", "server_error")


class ReplyStream:
    """``turn``'s reply for a route: ``start`` awaits its first event, ``events`` gives the reply's
    tokens and tool calls (an ``ApiError`` for a failure after the first)."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.reply = turn.reply
        self._redact = turn.host.config.redact
        self._events = turn.events()
        self._first: Event | None = None

    async def _next(self) -> Event | None:
        """The next token, tool call or end; a failure raises ``ApiError``."""
        while True:
            try:
                event = await anext(self._events)
            except StopAsyncIteration:
                return None
            if isinstance(event, Error):
                raise from_chat_error(event.error)
            if isinstance(event, (Token, ToolCall, ToolResult, Done)):
                return event

    async def start(self, receive: Any = None) -> None:
        """Wait for the first event; a reply that fails before it raises ``ApiError``.

        With ``receive`` (the request's ASGI receive), a client that disconnects meanwhile
        cancels the upstream call at once: the reply is stored interrupted and ``ClientGone``
        is raised."""
        try:
            self._first = await self._first_or_gone(receive)
        except ApiError:
            raise
        except Exception as exc:
            raise _api_error(exc, self._redact) from None

    async def _first_or_gone(self, receive: Any) -> Event | None:
        """The first event, awaited in this task (the upstream stream stays in the task that
        reads it); a watcher cancels the wait when the client disconnects."""
        if receive is None:
            return await self._next()
        handler = asyncio.current_task()
        assert handler is not None
        left = False

        async def watch() -> None:
            nonlocal left
            await _client_disconnects(receive)
            left = True
            self.turn.interrupt_reason = LEFT_BEFORE_FIRST_TOKEN  # what the history says
            handler.cancel()  # wherever the upstream call is, it is cancelled there

        watcher = asyncio.ensure_future(watch())
        try:
            return await self._next()
        except asyncio.CancelledError:
            if not left or handler.uncancel() > 0:  # (cancelled for another reason too)
                raise
        finally:
            watcher.cancel()  # the response reads `receive` itself from here on
            await asyncio.wait((watcher,))
            if not watcher.cancelled():
                watcher.exception()  # (retrieved: a failed watcher changes nothing)
        with contextlib.suppress(Exception):
            await self._events.aclose()
        log.info("%s: the upstream call was cancelled", LEFT_BEFORE_FIRST_TOKEN)
        raise ClientGone()

    async def events(self) -> AsyncIterator[Token | ToolCall | ToolResult]:
        """The reply's tokens, tool calls and (when the gateway runs tools) tool results; a
        failure after the first raises ``ApiError``."""
        try:
            event = self._first
            while event is not None and not isinstance(event, Done):
                yield event
                event = await self._next()
        except ApiError:
            raise
        except Exception as exc:
            raise _api_error(exc, self._redact) from None
        except BaseException:  # the client went away (cancelled, or the reader closed)
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._events.aclose())  # cancel the upstream request
            raise

    async def collect(self) -> str:
        """The whole reply's text (its tool calls are in ``reply.tool_calls``)."""
        return "".join([e.text async for e in self.events() if isinstance(e, Token)])
