"""A pass-through floor for the gateway benchmarks: the least a gateway can do, used only as a
yardstick, never as a product.

    python benchmarks/relay_floor.py --port 8181 --upstream http://127.0.0.1:PORT/v1 \
        --key bench-key --model fast=ok [--framework asgi|fastapi]

It relays ``POST /v1/chat/completions`` to ``--upstream`` under the same uvicorn as
`ai-assistant serve` (same loop and HTTP parser choice, ``log_level=info``, the access log on as
`serve` has it by default), with the HTTP client the openai SDK uses (``httpx2`` where the SDK is
built on it, else ``httpx``), one keep-alive pool made at start-up. Per request it checks the bearer
key, parses the JSON body and maps the model id to the upstream's model name (``--model ID=NAME``),
then returns the upstream's status and body as they are; a streamed reply is passed on chunk by
chunk. No LangChain, no SDK, no history, no prompt assembly. ``/readyz`` and ``/healthz`` answer
200 once start-up is done.

``--framework asgi`` (the default) is a bare ASGI callable; ``--framework fastapi`` puts the same
relay behind one FastAPI route, to show what the framework alone costs.
"""

# no `from __future__ import annotations`: FastAPI reads the route's annotations at run time
import argparse
import hmac
import json
from typing import Any

try:  # the client the openai SDK is built on
    import httpx2 as httpx
except ImportError:  # pragma: no cover - SDKs built on httpx
    import httpx


class Relay:
    def __init__(self, upstream: str, key: str | None, models: dict[str, str]) -> None:
        self.upstream = upstream.rstrip("/")
        self.key = key.encode() if key else None
        self.models = models
        self.client: Any = None

    def start(self) -> None:
        self.client = httpx.AsyncClient(
            base_url=self.upstream,
            timeout=60,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )

    async def stop(self) -> None:
        await self.client.aclose()

    def authorized(self, authorization: str | None) -> bool:
        if self.key is None:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.key)

    def upstream_body(self, body: bytes) -> tuple[bytes, bool]:
        data = json.loads(body)
        data["model"] = self.models.get(data.get("model"), data.get("model"))
        return json.dumps(data).encode(), bool(data.get("stream"))

    async def relay(self, body: bytes, send_start: Any, send_body: Any) -> None:
        """Forward one completion request; ``send_start(status, content_type)`` then
        ``send_body(chunk, more)``."""
        content, stream = self.upstream_body(body)
        headers = {"content-type": "application/json"}
        if not stream:
            response = await self.client.post("/chat/completions", content=content, headers=headers)
            await send_start(
                response.status_code, response.headers.get("content-type", "application/json")
            )
            await send_body(response.content, False)
            return
        request = self.client.build_request(
            "POST", "/chat/completions", content=content, headers=headers
        )
        response = await self.client.send(request, stream=True)
        try:
            await send_start(
                response.status_code, response.headers.get("content-type", "text/event-stream")
            )
            async for chunk in response.aiter_raw():
                await send_body(chunk, True)
            await send_body(b"", False)
        finally:
            await response.aclose()


def asgi_app(relay: Relay) -> Any:
    ok = json.dumps({"status": "ready"}).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    relay.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await relay.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return

        async def send_start(status: int, content_type: str) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", content_type.encode())],
                }
            )

        async def send_body(chunk: bytes, more: bool) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/readyz", "/healthz"):
            await send_start(200, "application/json")
            await send_body(ok, False)
            return
        if method != "POST" or path != "/v1/chat/completions":
            await send_start(404, "application/json")
            await send_body(b'{"error": {"message": "not found"}}', False)
            return
        authorization = next(
            (v.decode() for k, v in scope["headers"] if k == b"authorization"), None
        )
        if not relay.authorized(authorization):
            await send_start(401, "application/json")
            await send_body(b'{"error": {"message": "invalid API key"}}', False)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await relay.relay(body, send_start, send_body)

    return app


def fastapi_app(relay: Relay) -> Any:
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from starlette.responses import Response, StreamingResponse

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202
        relay.start()
        yield
        await relay.stop()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/readyz")
    @app.get("/healthz")
    async def ready() -> Any:
        return Response(b'{"status": "ready"}', media_type="application/json")

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Any:
        if not relay.authorized(request.headers.get("authorization")):
            return Response(b'{"error": {"message": "invalid API key"}}', status_code=401)
        content, stream = relay.upstream_body(await request.body())
        headers = {"content-type": "application/json"}
        if not stream:
            response = await relay.client.post(
                "/chat/completions", content=content, headers=headers
            )
            return Response(
                response.content,
                status_code=response.status_code,
                media_type=response.headers.get("content-type"),
            )
        upstream = await relay.client.send(
            relay.client.build_request(
                "POST", "/chat/completions", content=content, headers=headers
            ),
            stream=True,
        )

        async def body() -> Any:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(
            body(), status_code=upstream.status_code, media_type="text/event-stream"
        )

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the upstream's /v1 base URL")
    parser.add_argument("--key", help="the bearer key callers must send")
    parser.add_argument("--model", action="append", default=[], metavar="ID=NAME")
    parser.add_argument("--framework", choices=("asgi", "fastapi"), default="asgi")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the floor is a loopback yardstick: --host must be a loopback address")
    relay = Relay(args.upstream, args.key, dict(m.split("=", 1) for m in args.model))
    app = asgi_app(relay) if args.framework == "asgi" else fastapi_app(relay)
    # as `ai-assistant serve` configures uvicorn (server/run.py)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        access_log=not args.no_access_log,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
