"""The gateway inside the test process: the real app (``create_app(load_host(...))``), started
by its lifespan as uvicorn starts it, driven through ASGI with no socket and no subprocess.

Every in-process gateway runs on the process's background loop (``ai_assistant.loop``), where
the CLI and the Python API run their chat turns too: LangChain shares its HTTP clients between
models (one per endpoint and timeout), bound to the loop that first used them, so they must
never meet a second loop. Sync callers (plain httpx, the openai client) reach the app through a
transport that hands each request to that loop; async code runs there with ``gateway.run``.

An ASGI transport hands over the whole response at once: what needs tokens delivered one by
one, or a client hanging up on a socket, stays on a real ``serve`` (tests/test_gateway.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_assistant.loop import background_loop

BASE_URL = "http://gateway"
BOUND = 60  # seconds: a bound on any one call, never a pace (a hang fails instead of blocking)


def run(coro: Coroutine[Any, Any, Any], bound: float = BOUND) -> Any:
    """Run ``coro`` on the gateways' loop and return its result (or raise what it raised)."""
    future = asyncio.run_coroutine_threadsafe(coro, background_loop())
    try:
        return future.result(bound)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"not done within {bound} s (a bound, not a pace)") from None


class _SyncTransport(httpx.BaseTransport):
    """httpx's ASGI transport for sync clients: each request is served on the gateways' loop.
    What the app lets escape is raised here, as the ASGI transport raises it."""

    def __init__(self, app: Any) -> None:
        self._asgi = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )

        async def call() -> tuple[httpx.Response, bytes]:
            response = await self._asgi.handle_async_request(forwarded)
            return response, await response.aread()

        response, body = run(call())
        return httpx.Response(
            response.status_code, headers=response.headers, stream=httpx.ByteStream(body)
        )


class InProcessGateway:
    """``with InProcessGateway(app) as gw``: the app's lifespan runs (in one task, as uvicorn
    runs it) from entry to exit. ``gw.client`` is a sync httpx client on it; ``gw.openai(key)``
    the official client; ``gw.run(coro)`` runs async code (``gw.async_client()``,
    ``gw.async_openai(key)``) on the app's loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = httpx.Client(transport=_SyncTransport(app), base_url=BASE_URL)
        self._stop: asyncio.Event | None = None
        self._lifespan: concurrent.futures.Future[None] | None = None

    def __enter__(self) -> InProcessGateway:
        started: concurrent.futures.Future[asyncio.Event] = concurrent.futures.Future()

        async def lifespan() -> None:
            stop = asyncio.Event()
            async with self.app.router.lifespan_context(self.app):
                started.set_result(stop)
                await stop.wait()

        self._lifespan = asyncio.run_coroutine_threadsafe(lifespan(), background_loop())
        concurrent.futures.wait(
            [started, self._lifespan], BOUND, return_when=concurrent.futures.FIRST_COMPLETED
        )
        if self._lifespan.done():
            self._lifespan.result()  # the start-up failure, raised here
        if not started.done():
            raise TimeoutError(f"the gateway's lifespan did not start within {BOUND} s")
        self._stop = started.result()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self._stop is not None and self._lifespan is not None:
            background_loop().call_soon_threadsafe(self._stop.set)
            self._lifespan.result(BOUND)

    def run(self, coro: Coroutine[Any, Any, Any], bound: float = BOUND) -> Any:
        return run(coro, bound)

    def openai(self, key: str, **kwargs: Any) -> Any:
        import openai

        http = httpx.Client(transport=_SyncTransport(self.app))
        return openai.OpenAI(
            base_url=f"{BASE_URL}/v1", api_key=key, max_retries=0, http_client=http, **kwargs
        )

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)

    def async_openai(self, key: str) -> Any:
        import openai

        return openai.AsyncOpenAI(
            base_url=f"{BASE_URL}/v1", api_key=key, max_retries=0, http_client=self.async_client()
        )


class ServerLog(logging.Handler):
    """What ``serve`` would write to its log: every record at INFO and up, through the filter
    ``serve`` installs (redacted by the host's config, tracebacks only with ``-v``), in its
    format. ``text`` is the log so far."""

    def __init__(self, redact: Any) -> None:
        from ai_assistant.server import logs

        super().__init__(logging.INFO)
        self.addFilter(logs.RedactingFilter(redact))
        self.setFormatter(logging.Formatter(logs.FORMAT))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@contextlib.contextmanager
def serving(root: Path, scratch: Path) -> Iterator[tuple[InProcessGateway, ServerLog]]:
    """The gateway ``serve`` would run in ``root`` (its settings, plugins and store), in this
    process, with its log. As for a real ``serve`` in a clean environment, no AI_ASSISTANT_*
    variable and no user-level settings reach it (``scratch`` holds the XDG folders)."""
    from ai_assistant import load_host
    from ai_assistant.server import create_app

    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AI_ASSISTANT_"):
                patch.delenv(name)
        for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME"):
            (scratch / name).mkdir(parents=True, exist_ok=True)
            patch.setenv(name, str(scratch / name))
        root_logger = logging.getLogger()
        level = root_logger.level
        host = load_host(cwd=root)
        log = ServerLog(host.config.redact)
        root_logger.addHandler(log)
        root_logger.setLevel(logging.INFO)  # as serve logs
        try:
            with InProcessGateway(create_app(host)) as gateway:
                yield gateway, log
        finally:
            root_logger.removeHandler(log)
            root_logger.setLevel(level)
