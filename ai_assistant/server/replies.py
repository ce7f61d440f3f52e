"""One reply to an HTTP request, with the chat service's fallbacks and history.

The first token (or the failure) is awaited before the response starts, so a provider that fails
before answering becomes a proper status code (429, 502, 504) even for a streaming request. After
that, tokens stream; a client that goes away cancels the upstream call, and the partial reply is
stored as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ..chat import ChatError, Recorder, Reply, Turn, ainvoke_turn, astream_turn
from ..store import FAILED
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


class ReplyStream:
    def __init__(
        self,
        gateway: Any,
        model_id: str,
        messages: list[Any],
        recorder: Recorder,
        user_texts: list[str],
        options: dict[str, Any],
        stream: bool = True,
    ) -> None:
        self.reply = Reply(model_id)
        self.recorder = recorder
        self.turn = Turn(
            gateway.host,
            model_id,
            self.reply,
            on_notice=gateway.notice,
            on_progress=recorder.progress,
        )
        self.timeout = gateway.limits.request_timeout
        self._redact = gateway.host.config.redact
        recorder.start(model_id, user_texts, self.reply)
        call = astream_turn if stream else ainvoke_turn  # no upstream stream if none is read
        self._tokens = call(self.turn, messages, **options)
        self._deadline = asyncio.get_running_loop().time() + self.timeout
        self._first: str | None = None
        self._ended = False

    async def _next(self) -> str | None:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await anext(self._tokens)
        except StopAsyncIteration:
            return None

    def _end(self, exc: BaseException | None, why: str | None = None) -> None:
        if not self._ended:
            self._ended = True
            self.turn.settle(exc)
            if why is not None:
                self.reply.error = why
            elif self.reply.status == FAILED and not self.reply.error and exc is not None:
                self.reply.error = (  # an exception without a message: say what it was
                    self._timed_out() if isinstance(exc, TimeoutError) else type(exc).__name__
                )
            self.recorder.finish(self.reply)

    def _timed_out(self) -> str:
        return f"no complete reply within server.limits.request_timeout ({self.timeout:g} s)"

    def _api_error(self, exc: Exception) -> ApiError:
        if isinstance(exc, ChatError):
            return from_chat_error(exc)
        if isinstance(exc, TimeoutError):
            return ApiError(504, self._timed_out(), "timeout_error", "timeout")
        log.error(
            "reply failed: %s",
            self._redact(f"{type(exc).__name__}: {exc}"),
            exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,  # (-v: redacted by logs)
        )
        return ApiError(500, "internal error while producing the reply", "server_error")

    async def start(self, receive: Any = None) -> None:
        """Wait for the first token; a reply that fails before it raises ``ApiError``.

        With ``receive`` (the request's ASGI receive), a client that disconnects meanwhile
        cancels the upstream call at once: the reply is stored interrupted and ``ClientGone``
        is raised."""
        try:
            self._first = await self._first_or_gone(receive)
        except ClientGone:
            raise
        except Exception as exc:
            self._end(exc)
            raise self._api_error(exc) from None
        except BaseException as exc:
            self._end(exc)
            raise
        if self._first is None:
            self._end(None)

    async def _first_or_gone(self, receive: Any) -> str | None:
        """The first token, awaited in this task (the upstream stream stays in the task that
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
        self._end(asyncio.CancelledError(), why=LEFT_BEFORE_FIRST_TOKEN)
        with contextlib.suppress(Exception):
            await self._tokens.aclose()
        log.info("%s: the upstream call was cancelled", LEFT_BEFORE_FIRST_TOKEN)
        raise ClientGone()

    async def tokens(self) -> AsyncIterator[str]:
        """The reply's text pieces; a failure after the first raises ``ApiError``."""
        try:
            text = self._first
            while text is not None:
                yield text
                text = await self._next()
        except Exception as exc:
            self._end(exc)
            raise self._api_error(exc) from None
        except BaseException as exc:  # the client went away (cancelled, or the reader closed)
            self._end(exc)
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._tokens.aclose())  # cancel the upstream request
            raise
        self._end(None)

    async def collect(self) -> str:
        return "".join([text async for text in self.tokens()])

    def usage(self) -> dict[str, int] | None:
        reply = self.reply
        if reply.input_tokens is None and reply.output_tokens is None:
            return None
        prompt, completion = reply.input_tokens or 0, reply.output_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
