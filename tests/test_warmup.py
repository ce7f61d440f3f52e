"""The gateway's warm-up at start-up: every built model's provider does its first-use work
through an offline copy (an in-memory HTTP transport), so nothing reaches any server; a warm-up
that hangs, blocks or fails never holds start-up or /readyz; the CLI never warms up."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest
from gateway_client import InProcessGateway

from ai_assistant import host as host_module
from ai_assistant import load_host
from ai_assistant.host import Host

# three models whose every call goes wrong in its own way (each its own class: warmed apart)
STUCK_PLUGIN = """
import asyncio, time
from ai_assistant import hookimpl


def build(kind):
    from langchain_openai import ChatOpenAI

    class Stuck(ChatOpenAI):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
            if kind == "hangs":
                await asyncio.sleep(3600)
            if kind == "blocks":  # its thread's loop stops with it
                time.sleep(3)
            raise RuntimeError("this model is broken")

    return Stuck(model=kind, base_url="http://127.0.0.1:9/v1", api_key="unused", max_retries=0)


@hookimpl
def register_models(config, registry):
    for kind in KINDS:
        registry.register(kind, factory=lambda kind=kind: build(kind))
"""


def stuck_plugin(*kinds: str) -> str:
    return STUCK_PLUGIN.replace("KINDS", repr(kinds))


def warm_up(host: Host, timeout: float | None = None) -> dict[str, int]:
    async def run() -> dict[str, int]:
        return await host.warm_up(host._build_ready_models(), timeout)

    return asyncio.run(run())


def lifespan(app, asked: list[str]) -> list[tuple[str, int]]:
    """Start ``app`` as a server does, ask ``asked`` paths, stop; the statuses and how long the
    start took."""

    async def run() -> list[tuple[str, int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            started = time.monotonic()
            async with app.router.lifespan_context(app):
                seen = [("start-up", round(time.monotonic() - started, 1))]
                for path in asked:
                    seen.append((path, (await client.get(path)).status_code))
            return seen

    return asyncio.run(run())


def test_warm_up_sends_nothing_to_any_server(chat_project, upstream, caplog):
    """Every openai_compatible model of chat_project (one of them at a port nobody listens on)
    is warmed through its offline copy (the model itself keeps its clients): the fake upstream
    records no request, and the log has no "HTTP Request" line for what never went out."""
    host, sent = load_host(), len(upstream.requests)  # (the upstream serves the whole session)
    model = host.get_model("good")
    with caplog.at_level(logging.DEBUG):
        counts = warm_up(host)
    assert model.http_async_client is None  # (the model keeps its own clients)
    # LangChain's own first call and the one kind of OpenAIChatModel; echo has no offline copy
    assert counts == {"warmed": 2, "skipped": 1, "failed": 0, "timed out": 0}
    assert upstream.requests[sent:] == []
    assert "HTTP Request" not in caplog.text and "127.0.0.1" not in caplog.text


def test_the_gateway_starts_warm_and_asks_the_upstream_only_when_asked(chat_project, upstream):
    """On the gateways' loop (tests/gateway_client.py: LangChain's shared HTTP clients must
    never meet a second loop): nothing reaches the upstream until a completion is asked for."""
    from ai_assistant.server import create_app

    app, sent = create_app(load_host()), len(upstream.requests)
    with InProcessGateway(app) as gateway:
        before = upstream.requests[sent:]
        assert gateway.client.get("/readyz").status_code == 200
        gateway.client.post(
            "/v1/chat/completions",
            json={"model": "good", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert before == []
    assert [r["body"]["messages"][-1]["content"] for r in upstream.requests[sent:]] == ["hi"]


def test_a_warm_up_that_hangs_or_fails_is_given_up(project):
    project.plugin("stuck", stuck_plugin("hangs", "fails"))
    started = time.monotonic()
    counts = warm_up(load_host(), timeout=0.5)
    assert time.monotonic() - started < 5  # (0.5 s, plus a second for the cancelled ones)
    assert counts == {"warmed": 1, "skipped": 1, "failed": 1, "timed out": 1}


def test_a_warm_up_that_blocks_does_not_hold_start_up_or_readiness(project, monkeypatch):
    """A model whose call blocks its thread (so the warm-up cannot even be cancelled): start-up
    goes on after WARM_UP_SECONDS and a second, and /readyz says ready."""
    project.plugin("stuck", stuck_plugin("blocks", "hangs", "fails"))
    monkeypatch.setattr(host_module, "WARM_UP_SECONDS", 0.3)
    from ai_assistant.server import create_app

    seen = lifespan(create_app(load_host()), ["/readyz"])
    assert seen[0][1] < 2.5, seen  # not the 3 s the blocking model takes
    assert seen[1] == ("/readyz", 200)


def test_routes_are_primed_without_asking_a_model_or_storing(chat_project, upstream):
    """prime_routes: one in-process request that stops at the route's checks (400 for an empty
    body with no keys configured; 401 without a key when there are keys)."""
    from ai_assistant.server import create_app
    from ai_assistant.server.app import prime_routes

    async def prime(app) -> int | None:
        app.middleware_stack = app.build_middleware_stack()  # (as the first ASGI call does)
        return await prime_routes(app)

    app, sent = create_app(load_host()), len(upstream.requests)
    assert asyncio.run(prime(app)) == 400
    chat_project.write(".secrets.toml", '[default.server.api_keys]\nci = "key-4242-abcd"\n')
    assert asyncio.run(prime(create_app(load_host()))) == 401
    assert asyncio.run(prime_routes(create_app(load_host()))) is None  # (no stack built yet)
    assert upstream.requests[sent:] == []


@pytest.mark.parametrize("command", [["models", "list"], ["chat", "-m", "echo", "hi"]])
def test_the_cli_never_warms_up(project, monkeypatch, command):
    def refuse(*args, **kwargs):
        raise AssertionError("the CLI warmed up its models")

    monkeypatch.setattr(Host, "warm_up", refuse)
    result = project.run(*command)
    assert result.exit_code == 0, result.output
