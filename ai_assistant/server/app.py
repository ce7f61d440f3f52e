"""The gateway application: its lifespan (the host starts and stops with it), error handling,
and one router per API (health and landing page, OpenAI's ``/v1``, the conversation ``/api``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException

from ..chat.settings import chat_settings
from ..host import Host
from ..storage import StoreError
from . import conversations_api, health, knowledge_api, logs, openai_api, schema
from .deps import Gateway, store_error
from .errors import ApiError

log = logging.getLogger("ai_assistant.server")


class ContainErrors:
    """Outermost but one (inside Starlette's ServerErrorMiddleware, which re-raises to the
    server, whose log then carries a traceback): an exception that escapes a route becomes one
    log line and a 500 in OpenAI's shape, and goes no further."""

    def __init__(self, app: Any, redact: Any) -> None:
        self.app = app
        self.redact = redact

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - logged in one line, answered 500
            # the message may quote configuration: redacted; the traceback only with -v
            log.error(
                "%s %s failed: %s",
                scope.get("method"),
                scope.get("path"),
                self.redact(f"{type(exc).__name__}: {exc}"),
                exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
            )
            if not started:  # (a stream already under way just ends)
                response = ApiError(500, "internal error", "server_error").response()
                await response(scope, receive, send)


PRIMED_PATH = "/v1/chat/completions"


async def prime_routes(app: Any, timeout: float = 2.0) -> int | None:
    """FastAPI prepares a route on the first request that reaches it (its dependencies; where
    its endpoint is, read from the source file, for error messages): about 6 ms, which the first
    completion would otherwise pay. One request made in this process does it at start-up: a
    ``POST /v1/chat/completions`` that goes no further than its checks (no API key: 401; with no
    keys configured, an empty body: 400), so no model is asked and nothing is stored. It goes
    through the app's middleware, not FastAPI's telemetry (no span or metric records it), and
    never through the server (no access log). The status it got; ``None`` if it could not be
    made (a failure here is not the start-up's)."""
    stack = getattr(app, "middleware_stack", None)  # (built when the lifespan started)
    if stack is None:
        return None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PRIMED_PATH,
        "raw_path": PRIMED_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-length", b"0")],
        "client": None,
        "server": None,
        "state": {},
        "app": app,
    }
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    try:
        await asyncio.wait_for(stack(scope, receive, send), timeout)
    except Exception:  # noqa: BLE001 - the first real request pays instead
        return None
    return status[0] if status else None


def create_app(host: Host, store: Any = None, *, own_process: bool = False) -> Any:
    """The FastAPI app for ``host``; history goes to ``store`` (default: ``storage.url``).

    Its lifespan starts the host (plugins' startup hooks, and every ready model built, so the
    first request costs what the second does) and stops it at shutdown; ``/readyz`` says ready
    only in between. With ``own_process`` (``serve``: nothing else runs in the process), what
    start-up made is frozen out of the garbage collector's reach once it is done, so a full
    collection never walks it mid-request (it took ~70 ms with ~160,000 objects)."""
    from .. import __version__
    from ..storage import open_async_store

    gateway = Gateway(host, store or open_async_store(host.config))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.store.open()
        gateway.store.warm_up()
        try:
            await host.start(build_models=True)  # (every model built and warmed up)
            with contextlib.suppress(Exception):  # (read once, now; a problem shows on use)
                chat_settings(host)
            await prime_routes(app)
            if own_process:
                gc.collect()
                gc.freeze()
            gateway.started = True
            try:
                yield
            finally:
                gateway.started = False
                await host.stop()
        finally:
            logs.write_through()  # (serve's last lines: out before a re-raised signal ends it)
            await gateway.store.close()  # (after the replies still being recorded)

    app = FastAPI(
        title="ai-assistant gateway",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.add_middleware(ContainErrors, redact=host.config.redact)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Any:
        return exc.response()

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> Any:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return store_error(exc).response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(
            exc.status_code, "invalid_request_error"
        )
        return ApiError(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind
        ).response()

    app.include_router(health.router)
    app.include_router(openai_api.router)
    app.include_router(conversations_api.router)
    app.include_router(knowledge_api.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            spec.setdefault("components", {})["securitySchemes"] = schema.security_schemes()
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
