"""The gateway against hostile input and careless operators (issue 7): malformed requests get a
4xx naming the field and leave no traceback; the prompt limit counts what is sent upstream; a
client that leaves before the first token cancels the upstream call; `serve` refuses bad ports
and worker counts and says so in one line; loopback is an address, not a prefix.

Most tests drive the real app in-process through ASGI (httpx's transport, or a bare ASGI call
where a client disconnect must be staged); the rest run `ai-assistant serve` as a process."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import textwrap

import httpx
import pytest
from conftest import SECRET_KEY
from test_gateway import EXE, _free_port

KEY = "sec-test-key-0123456789"

SETTINGS = """
[default.storage]
path = "history.db"

[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
timeout = 60
models = [
  {{ model_name = "ok", id = "good" }},
  {{ model_name = "held", id = "held" }},
]
"""


class Gateway:
    """The real app in-process, driven on the module's one event loop (as in a server: LangChain
    shares its HTTP clients between models, bound to the loop that first used them)."""

    def __init__(self, app, runner: asyncio.Runner) -> None:
        self.app = app
        self.runner = runner

    def run(self, coro):
        return self.runner.run(coro)

    def request(self, method: str, path: str, body=None, key: str | None = KEY) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        content = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)  # raises what the app lets escape
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return await client.request(method, path, content=content, headers=headers)

        return self.run(call())


@pytest.fixture(scope="module")
def runner():
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture
def gateways(runner):
    return lambda app: Gateway(app, runner)


@pytest.fixture
def gateway(project, upstream, gateways):
    """``gateway(extra_settings, keys=True)``: the app for ``project``, its models behind the
    fake upstream."""

    def make(extra: str = "", keys: bool = True) -> Gateway:
        from ai_assistant import load_host
        from ai_assistant.server import create_app

        project.base_settings = SETTINGS.format(url=upstream.url) + textwrap.dedent(extra)
        project.settings()
        secrets = f'[default.models.openai_compatible]\napi_key = "{SECRET_KEY}"\n'
        if keys:
            secrets += f'[default.server.api_keys]\ntester = "{KEY}"\n'
        project.write(".secrets.toml", secrets)
        upstream.reset()
        return gateways(create_app(load_host()))

    return make


def _replies(project) -> list[sqlite3.Row]:
    db = sqlite3.connect(project.root / "history.db")
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM messages WHERE role = 'assistant' ORDER BY id").fetchall()


USER_X = [{"role": "user", "content": "x"}]

# -- item 10: loopback is an address --------------------------------------------------------


def test_a_name_that_starts_with_127_is_not_loopback(project):
    refused = subprocess.run(
        [EXE, "serve", "--host", "127.attacker.example", "--port", str(_free_port())],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,  # (a bound: before the fix this tried to serve)
    )
    assert refused.returncode == 1
    assert "refusing to listen on 127.attacker.example with no API keys" in refused.stderr


def test_an_endpoint_named_like_loopback_still_needs_its_key(project, gateways):
    from ai_assistant import load_host
    from ai_assistant.server import create_app

    project.settings(
        """
        [default.models.openai_compatible]
        models = [
          { model_name = "m", id = "local", endpoint = "http://127.0.0.1:9/v1" },
          { model_name = "m", id = "v6", endpoint = "http://[::1]:9/v1" },
          { model_name = "m", id = "named", endpoint = "http://localhost:9/v1" },
          { model_name = "m", id = "fake", endpoint = "http://127.attacker.example/v1" },
        ]
        """
    )
    models = (
        gateways(create_app(load_host())).request("GET", "/api/models", key=None).json()["models"]
    )
    status = {m["id"]: m["status"] for m in models}
    assert status["local"] == status["v6"] == status["named"] == "ready"
    assert status["fake"] == "missing secret"
