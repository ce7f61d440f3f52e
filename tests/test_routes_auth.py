"""Every route of the gateway refuses a missing key and a wrong key when keys are configured,
except the few that are public on purpose. The routes come from the app itself, so a new route
cannot be forgotten: it is either refused without a key or listed here as public."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from ai_assistant import load_host

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/"}
KEY = "route-walk-key-0123456789"


@pytest.fixture
def app(project):
    project.write(".secrets.toml", f'[default.server.api_keys]\nalice = "{KEY}"\n')
    from ai_assistant.server import create_app

    return create_app(load_host())


def _routes(routes, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route, included routers' too (FastAPI may keep an included
    router as one entry holding its own routes)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            found += _routes(included.routes, prefix + (getattr(context, "prefix", "") or ""))
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if method not in ("HEAD", "OPTIONS") and path is not None:
                found.append((method, re.sub(r"\{[^}]+\}", "some-id", prefix + path)))
    return found


def _statuses(app, headers: dict[str, str]) -> dict[tuple[str, str], int]:
    async def walk():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return {
                (method, path): (
                    await client.request(method, path, headers=headers, json={})
                ).status_code
                for method, path in _routes(app.routes)
            }

    return asyncio.run(walk())


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic " + KEY}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_every_route_but_the_public_ones_refuses_without_a_valid_key(app, headers):
    statuses = _statuses(app, headers)
    private = {route: status for route, status in statuses.items() if route[1] not in PUBLIC}
    assert len(private) >= 7  # /v1 and /api routes: the walk found them
    assert {route: status for route, status in private.items() if status != 401} == {}
    public = {route for route in statuses if route[1] in PUBLIC}
    assert ("GET", "/healthz") in public and ("GET", "/readyz") in public


def test_a_valid_key_gets_past_authentication_everywhere(app):
    statuses = _statuses(app, {"Authorization": f"Bearer {KEY}"})
    assert {route: status for route, status in statuses.items() if status == 401} == {}
