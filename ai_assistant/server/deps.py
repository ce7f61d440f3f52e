"""What the routes depend on, injected with FastAPI's ``Depends``: the gateway's state (host,
store, limits, keys), the caller's identity, and the limits; and the two ways of answering
(JSON, server-sent events) every router shares."""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.responses import Response

from ..host import Host
from ..plugins import FAILED
from ..store import Store
from .errors import ApiError
from .requests import Limits

log = logging.getLogger("ai_assistant.server")

STARTING = "the gateway is starting up or shutting down"


def json_response(data: Any, status: int = 200) -> Any:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def sse(data: Any) -> str:
    """One server-sent event carrying ``data`` as JSON (or a bare string such as ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class Gateway:
    """What every route needs: the host, the store, the limits, the API keys; ``started`` once
    the lifespan has started the host (and built its models)."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host = host
        self.store = store
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

    def readiness(self) -> tuple[int, dict[str, Any]]:
        problems = []
        if not self.started:
            problems.append(STARTING)
        if not len(self.host.registry):
            problems.append("no model is registered")
        try:
            self.store.check_writable()
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
