"""The gateway application: authentication, limits, health, and the two APIs."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..host import Host
from ..plugins import FAILED
from ..store import Store
from . import schema
from .errors import ApiError
from .requests import Limits

log = logging.getLogger("ai_assistant.server")


def json_response(data: Any, status: int = 200) -> Any:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def sse(data: Any) -> str:
    """One server-sent event carrying ``data`` as JSON (or a bare string such as ``[DONE]``)."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class Gateway:
    """What every route needs: the host, the store, the limits, and who is calling."""

    def __init__(self, host: Host, store: Store) -> None:
        self.host = host
        self.store = store
        self.limits = Limits(host.config)
        keys = host.config.get("server.api_keys") or {}
        self.api_keys = {str(name): str(key) for name, key in keys.items()}
        self.store_completions = host.config.get("server.store_completions", True) is not False

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
        }
        return (200 if not problems else 503), body


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


def create_app(host: Host, store: Store | None = None) -> Any:
    """The FastAPI app for ``host``; history goes to ``store`` (default: ``storage.path``)."""
    from .. import __version__
    from ..chat import open_store
    from . import conversations_api, openai_api

    gateway = Gateway(host, store or open_store(host))
    app = FastAPI(
        title="ai-assistant gateway",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.gateway = gateway
    app.add_middleware(ContainErrors, redact=host.config.redact)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Any:
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Any:
        kind = {404: "not_found_error", 405: "invalid_request_error"}.get(
            exc.status_code, "invalid_request_error"
        )
        return ApiError(
            exc.status_code, f"{request.method} {request.url.path}: {exc.detail}", kind
        ).response()

    @app.get("/healthz", **schema.operation("Alive", "always", auth=False))
    async def healthz() -> Any:
        return json_response({"status": "ok"})

    @app.get("/readyz", **schema.readiness())
    async def readyz(request: Request) -> Any:
        status, body = gateway.readiness()
        if not gateway.authorized(request):  # anyone may ask; only callers see why
            body = {"status": body["status"]}
        return json_response(body, status)

    openai_api.register(app, gateway)
    conversations_api.register(app, gateway)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            spec.setdefault("components", {})["securitySchemes"] = schema.security_schemes()
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
