"""What the routes depend on, injected with FastAPI's ``Depends``: the gateway's state (host,
store, limits, keys), the caller's identity, and the limits; and the two ways of answering
(JSON, server-sent events) every router shares."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from ..host import Host
from ..plugins import FAILED
from ..storage import HistoryStore, StoreBusyError, StoreError, UnknownConversationError
from .errors import ApiError
from .replies import ReplyStream
from .requests import Limits

log = logging.getLogger("ai_assistant.server")

STARTING = "the gateway is starting up or shutting down"
READY_WAIT = 1.0  # seconds /readyz waits for the history store


def store_error(exc: StoreError) -> ApiError:
    """503 for a store that is busy or unreachable: it names the store and says to retry."""
    message = str(exc)
    if exc.hint:
        message += f"; {exc.hint}"
    code = "store_busy" if isinstance(exc, StoreBusyError) else "store_unavailable"
    return ApiError(503, message, "service_unavailable", code)


async def settled(turn: Any) -> None:
    """Wait for what ``turn`` has recorded so far, whatever came of it (a store that failed is
    logged by the recorder; the client hears of the reply's own failure)."""
    with contextlib.suppress(Exception):
        await turn.recorder.flush()


async def recorded(reply: Any) -> None:
    """Wait until the turn behind ``reply`` (a ``ReplyStream``) has stored the start of its
    exchange; if it could not, stop the turn (cancelling the upstream call) and answer 503."""
    try:
        await reply.turn.recorder.started()
    except StoreError as exc:
        with contextlib.suppress(Exception):
            await reply._events.aclose()
        raise store_error(exc) from None
    except UnknownConversationError as exc:  # deleted while this request was on its way
        with contextlib.suppress(Exception):
            await reply._events.aclose()
        raise ApiError(404, str(exc), "not_found_error", "conversation_not_found") from None


async def begin(turn: Any, receive: Any, stream: bool) -> Any:
    """The reply of ``turn`` started (a ``ReplyStream``): its first event is in, or the client
    hears why there is none (an ``ApiError``, raised once the failed reply is stored). A stream
    also waits until its exchange is stored, before the headers go out."""
    reply = ReplyStream(turn)
    try:
        await reply.start(receive)
    except ApiError:
        await settled(turn)  # (the failed reply is stored before the client hears of it)
        raise
    if stream:  # (without a stream, the flush in ``whole_text`` tells)
        await recorded(reply)
    return reply


async def whole_text(reply: Any) -> str:
    """A started reply's whole text, once it and its exchange are stored (``ApiError`` if the
    reply broke off; a ``StoreError`` if it could not be stored: a 503)."""
    try:
        text = await reply.collect()
    except ApiError:
        await settled(reply.turn)
        raise
    await reply.turn.recorder.flush()
    return text


def json_response(data: Any, status: int = 200) -> Any:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def sse(data: Any) -> str:
    """One server-sent event carrying ``data`` as JSON (or a bare string such as ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class Gateway:
    """What every route needs: the host, the store, the limits, the API keys; ``started`` once
    the lifespan has started the host (and built its models)."""

    def __init__(self, host: Host, store: Any) -> None:
        self.host = host
        self.store: HistoryStore = store.aio  # (a blocking store is given as its async face)
        value = host.config.value
        self.limits = Limits(host.config)
        self.api_keys = {str(name): str(key) for name, key in value("server.api_keys").items()}
        self.store_completions = value("server.store_completions")
        self.started = False

    def identity(self, request: Any) -> str | None:
        """The calling key's name; ``None`` when no keys are configured (loopback only)."""
        if not self.api_keys:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                "authentication_error",
                "missing_api_key",
            )
        presented = token.strip().encode()
        matched = None
        for name, key in self.api_keys.items():  # compare with every key, in constant time
            if hmac.compare_digest(presented, key.encode()) and matched is None:
                matched = name
        if matched is None:
            raise ApiError(401, "invalid API key", "authentication_error", "invalid_api_key")
        return matched

    def authorized(self, request: Any) -> bool:
        """Whether ``request`` may use the API (always, when no keys are configured)."""
        try:
            self.identity(request)
        except ApiError:
            return False
        return True

    def notice(self, message: str) -> None:
        log.info(self.host.config.redact(message))

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        problems = []
        if not self.started:
            problems.append(STARTING)
        if not len(self.host.registry):
            problems.append("no model is registered")
        try:  # (a store that is locked for a while answers "busy" after a second)
            if self.started:  # (the store is open only while the lifespan runs)
                await asyncio.wait_for(self.store.check_writable(), READY_WAIT)
        except TimeoutError:
            problems.append("the history store is busy (locked by another process)")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"the history store is not writable: {type(exc).__name__}")
        failed = [p.name for p in self.host.plugins.report if p.status == FAILED]
        body = {
            "status": "ready" if not problems else "not ready",
            "models": len(self.host.registry),
            "failed_plugins": failed,
            "problems": problems,
            "pid": os.getpid(),  # which worker answered (--workers N)
        }
        return (200 if not problems else 503), body


# (async: FastAPI runs a plain function dependency in a thread pool, a hop per request)
async def gateway(request: Request) -> Gateway:
    """The app's gateway state."""
    return request.app.state.gateway


State = Annotated[Gateway, Depends(gateway)]


async def caller(request: Request) -> str | None:
    """The calling API key's name (401 without a valid key; ``None`` when no keys are set)."""
    return request.app.state.gateway.identity(request)


async def limits(state: State) -> Limits:
    return state.limits


Caller = Annotated[str | None, Depends(caller)]
RequestLimits = Annotated[Limits, Depends(limits)]
