"""The routes anyone may call: liveness, readiness, and the landing page at ``/``."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse

from . import schema
from .deps import State, json_response

router = APIRouter()

OPEN_PATHS = ("/", "/docs", "/openapi.json", "/healthz", "/readyz")


@router.get("/healthz", **schema.operation("Alive", "always", auth=False))
async def healthz() -> Any:
    return json_response({"status": "ok"})


@router.get("/readyz", **schema.readiness())
async def readyz(request: Request, state: State) -> Any:
    status, body = await state.readiness()
    if not state.authorized(request):  # anyone may ask; only callers see why
        body = {"status": body["status"]}
    return json_response(body, status)


@router.get("/", include_in_schema=False)
async def landing(request: Request, state: State) -> Any:
    return HTMLResponse(landing_page(request.app, bool(state.api_keys)))


def landing_page(app: Any, has_keys: bool) -> str:
    """A short page for a person who opens the gateway in a browser: what it serves, and how
    to call it."""
    rows = []
    for path, operations in app.openapi()["paths"].items():  # (what /docs shows too)
        for method, operation in operations.items():
            key = "key" if operation.get("security") else "no key"
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}"
                f"</code></td><td>{html.escape(operation.get('summary', ''))}</td>"
                f"<td>{key}</td></tr>"
            )
    if has_keys:
        auth = (
            "Send an API key with every request except <code>/</code>, <code>/docs</code>, "
            "<code>/openapi.json</code>, <code>/healthz</code> and <code>/readyz</code>: "
            "<code>Authorization: Bearer &lt;key&gt;</code>. Keys are set under "
            "<code>[default.server.api_keys]</code> in <code>.secrets.toml</code>."
        )
    else:
        auth = (
            "No API keys are configured, so no key is needed (and the gateway listens on "
            "loopback only, unless started with <code>--insecure</code>). Set keys under "
            "<code>[default.server.api_keys]</code> in <code>.secrets.toml</code>; clients then "
            "send <code>Authorization: Bearer &lt;key&gt;</code>."
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(app.title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
td{{padding:.2em .8em .2em 0;vertical-align:top}}</style></head>
<body><h1>{html.escape(app.title)} {html.escape(app.version)}</h1>
<p>Every registered model over OpenAI's chat-completions API (<code>/v1</code>, for any OpenAI
client: <code>base_url="&lt;this address&gt;/v1"</code>) and a conversation API
(<code>/api</code>). Try them in <a href="/docs">/docs</a>; the schema is
<a href="/openapi.json">/openapi.json</a>.</p>
<h2>Authentication</h2><p>{auth}</p>
<h2>Routes</h2><table>{"".join(rows)}</table>
</body></html>
"""
