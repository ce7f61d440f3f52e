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
from .errors import ApiError, from_chat_error

log = logging.getLogger("ai_assistant.server")


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

    def _end(self, exc: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self.turn.settle(exc)
            self.recorder.finish(self.reply)

    def _api_error(self, exc: Exception) -> ApiError:
        if isinstance(exc, ChatError):
            return from_chat_error(exc)
        if isinstance(exc, TimeoutError):
            return ApiError(
                504,
                f"no complete reply within server.limits.request_timeout ({self.timeout:g} s)",
                "timeout_error",
                "timeout",
            )
        log.error("reply failed: %s", self._redact(f"{type(exc).__name__}: {exc}"))
        return ApiError(500, "internal error while producing the reply", "server_error")

    async def start(self) -> None:
        """Wait for the first token; a reply that fails before it raises ``ApiError``."""
        try:
            self._first = await self._next()
        except Exception as exc:
            self._end(exc)
            raise self._api_error(exc) from None
        except BaseException as exc:
            self._end(exc)
            raise
        if self._first is None:
            self._end(None)

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
