"""The gateway over the one chat core: tool messages and tool calls on both APIs, feedback scores
on the caller's own replies only (handed to callback plugins), the lifespan that starts the host,
and the pages that greet a person. The app runs in this process (tests/gateway_client.py); the
lifespan is also seen on a real `ai-assistant serve` process, stopped by SIGINT and SIGTERM."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import textwrap
import time

import httpx
import openai
import pytest
from conftest import SECRET_KEY
from gateway_client import serving
from test_gateway import ALICE, BOB, _start

SETTINGS = """
[default.plugins]
dirs = ["plugins"]

[default.storage]
path = "history.db"

[default.models.echo]
models = [{{ id = "echo" }}]

[default.callbacks.jsonl_log]
path = "calls.jsonl"

[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
timeout = 10
models = [
  {{ model_name = "ok", id = "good" }},
  {{ model_name = "toolcall", id = "tooly" }},
]
"""

# a plugin that takes part in everything the gateway's lifespan and the score route do
RECORDER = """\
import json
import pathlib

from ai_assistant import hookimpl

LOG = pathlib.Path(__file__).with_name("events.log")


def note(line):
    with LOG.open("a") as fh:
        fh.write(line + "\\n")


def build():
    note("built")
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=["fine"])


@hookimpl
def register_models(config, registry):
    registry.register("recorded", factory=build)


@hookimpl
def startup(config):
    note("startup")


@hookimpl
def shutdown(config):
    note("shutdown")


def scores(metadata):
    from langchain_core.callbacks import BaseCallbackHandler

    class Scores(BaseCallbackHandler):
        def on_score(self, message_id, score, comment, meta):
            note("score " + json.dumps([message_id, score, comment, meta["user"]]))

    return Scores()


@hookimpl
def register_callbacks(config, registry):
    registry.register("scores", factory=scores)
"""

WEATHER_CALL = {
    "id": "call_weather_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def _write_project(root, url: str) -> None:
    (root / "settings.toml").write_text(SETTINGS.format(url=url))
    (root / ".secrets.toml").write_text(
        textwrap.dedent(f"""\
        [default.models.openai_compatible]
        api_key = "{SECRET_KEY}"
        [default.server.api_keys]
        alice = "{ALICE}"
        bob = "{BOB}"
    """)
    )
    (root / ".secrets.toml").chmod(0o600)
    (root / "plugins").mkdir(exist_ok=True)
    (root / "plugins" / "recorder.py").write_text(RECORDER)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    """The gateway in this process: ``http`` (an httpx client), ``app`` (its openai clients),
    ``root`` (the project folder)."""
    root = tmp_path_factory.mktemp("core")
    _write_project(root, upstream.url)
    with serving(root, tmp_path_factory.mktemp("core-env")) as (app, log):
        yield {"http": app.client, "app": app, "root": root}
    assert "Traceback" not in log.text


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(gateway, path: str, body, key: str | None = ALICE) -> httpx.Response:
    return gateway["http"].post(path, json=body, headers=_auth(key))


def _get(gateway, path: str, key: str | None = ALICE) -> httpx.Response:
    return gateway["http"].get(path, headers=_auth(key))


def _client(gateway, key: str = ALICE) -> openai.OpenAI:
    return gateway["app"].openai(key)


def _events(gateway, path: str, body: dict) -> list[dict]:
    with gateway["http"].stream("POST", path, json=body, headers=_auth(ALICE)) as response:
        assert response.status_code == 200, response.read()
        return [
            json.loads(line[6:])
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        ]


def _log(gateway) -> list[str]:
    return (gateway["root"] / "plugins" / "events.log").read_text().splitlines()


# -- tools: messages in, tool calls out --------------------------------------------------------


def test_tool_messages_and_assistant_tool_calls_are_passed_upstream(gateway, upstream):
    done = _client(gateway).chat.completions.create(
        model="good",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
            {"role": "tool", "tool_call_id": "call_weather_1", "content": "sunny, 21 C"},
            {"role": "user", "content": "so?"},
        ],
    )
    assert done.choices[0].message.content == "upstream: so?"
    sent = upstream.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    (call,) = sent[1]["tool_calls"]
    assert call["id"] == "call_weather_1" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "tool_call_id": "call_weather_1", "content": "sunny, 21 C"}


@pytest.mark.parametrize(
    "message, param",
    [
        ({"role": "tool", "content": "x"}, "messages[0].tool_call_id"),
        (
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},
            None,  # arguments default to {}: accepted
        ),
        (
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"role": "assistant", "tool_calls": "x"}, "messages[0].tool_calls"),
    ],
)
def test_malformed_tool_messages_are_refused_by_field(gateway, message, param):
    response = _post(
        gateway,
        "/v1/chat/completions",
        {"model": "echo", "messages": [message, {"role": "user", "content": "x"}]},
    )
    if param is None:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_a_tool_call_from_the_model_reaches_openai_clients(gateway):
    client = _client(gateway)
    done = client.chat.completions.create(
        model="tooly", messages=[{"role": "user", "content": "weather?"}]
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.id, call.function.name) == ("call_weather_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(
        client.chat.completions.create(
            model="tooly", messages=[{"role": "user", "content": "weather, streamed?"}], stream=True
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.id, d.function.name) for d in deltas] == [
        (0, "call_weather_1", "get_weather")
    ]
    assert json.loads(deltas[0].function.arguments) == {"city": "Paris"}  # whole, not in pieces
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    db = sqlite3.connect(gateway["root"] / "history.db")
    stored = db.execute(
        "SELECT tool_calls FROM messages WHERE role = 'assistant' AND model_id = 'tooly'"
    ).fetchall()
    assert [json.loads(row[0]) for row in stored] == [
        [{"id": "call_weather_1", "name": "get_weather", "args": {"city": "Paris"}}]
    ] * 2


def test_a_tool_call_is_an_event_of_the_conversation_api_and_is_stored(gateway):
    events = _events(
        gateway,
        "/api/chat/message",
        {"modelId": "tooly", "stream": True, "messages": [{"role": "user", "content": "hm?"}]},
    )
    assert [e["type"] for e in events] == ["start", "tool_call", "done"]
    assert events[1] == {
        "type": "tool_call",
        "id": "call_weather_1",
        "name": "get_weather",
        "args": {"city": "Paris"},
    }
    conversation_id = events[0]["conversationId"]
    # the client answers the call: the tool message is stored, and sent with the history
    answered = _post(
        gateway,
        "/api/chat/message",
        {
            "modelId": "good",
            "conversationId": conversation_id,
            "messages": [
                {"role": "tool", "tool_call_id": "call_weather_1", "content": "sunny"},
                {"role": "user", "content": "and?"},
            ],
        },
    )
    assert answered.status_code == 200, answered.text
    conv = _get(gateway, f"/api/chat/{conversation_id}").json()
    roles = [(m["role"], m.get("toolCallId"), bool(m.get("toolCalls"))) for m in conv["messages"]]
    assert roles == [
        ("user", None, False),
        ("assistant", None, True),
        ("tool", "call_weather_1", False),
        ("user", None, False),
        ("assistant", None, False),
    ]


def test_callbacks_see_each_gateway_surface_and_the_caller(gateway):
    _client(gateway, key=BOB).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "seen on v1"}]
    )
    sent = _post(
        gateway,
        "/api/chat/message",
        {"modelId": "echo", "messages": [{"role": "user", "content": "seen on api"}]},
    )
    calls = [
        json.loads(line) for line in (gateway["root"] / "calls.jsonl").read_text().splitlines()
    ]
    starts = [c for c in calls if c["event"] == "start"]
    seen = {(c["surface"], c["user"]) for c in starts}
    assert {("openai", "bob"), ("api", "alice")} <= seen
    (api,) = [c for c in starts if c["conversation_id"] == sent.json()["conversationId"]]
    assert api["model_id"] == "echo" and api["surface"] == "api"


# -- feedback ----------------------------------------------------------------------------------


def test_a_score_is_stored_for_the_callers_own_reply_only_and_handed_to_callbacks(gateway):
    sent = _post(
        gateway,
        "/api/chat/message",
        {"modelId": "echo", "messages": [{"role": "user", "content": "rate me"}]},
    )
    message_id = sent.json()["message"]["id"]
    path = f"/api/chat/message/{message_id}/score"
    stranger = _post(gateway, path, {"score": 0, "comment": "not mine"}, key=BOB)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "message_not_found"
    assert _post(gateway, path, {"score": 1}, key=None).status_code == 401
    assert _post(gateway, path, {"score": "good"}).json()["error"]["param"] == "score"
    scored = _post(gateway, path, {"score": 1, "comment": "spot on"})
    assert scored.status_code == 200, scored.text
    assert scored.json() == {
        "messageId": message_id,
        "conversationId": sent.json()["conversationId"],
        "score": 1,
        "comment": "spot on",
    }
    user_message = message_id - 1
    assert _post(gateway, f"/api/chat/message/{user_message}/score", {"score": 1}).status_code == (
        404
    )
    assert _post(gateway, "/api/chat/message/abc/score", {"score": 1}).status_code == 404
    db = sqlite3.connect(gateway["root"] / "history.db")
    assert db.execute(
        "SELECT score, score_comment FROM messages WHERE id = ?", (message_id,)
    ).fetchone() == (1.0, "spot on")
    scores = [json.loads(line[6:]) for line in _log(gateway) if line.startswith("score ")]
    assert scores == [[message_id, 1.0, "spot on", "alice"]]  # bob's attempt never got there
    shown = _get(gateway, f"/api/chat/{sent.json()['conversationId']}").json()
    assert shown["messages"][-1]["score"] == {"value": 1.0, "comment": "spot on"}


# -- greeting people ---------------------------------------------------------------------------


def test_the_landing_page_and_docs_need_no_key(gateway):
    page = _get(gateway, "/", key=None)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in (
        "/v1/chat/completions",
        "/api/chat/message/{message_id}/score",
        "Authorization: Bearer &lt;key&gt;",
        'href="/docs"',
    ):
        assert text in page.text
    docs = _get(gateway, "/docs", key=None)
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    assert _get(gateway, "/openapi.json", key=None).status_code == 200


# -- the lifespan ------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_starts_the_host_and_builds_models_before_it_is_ready(tmp_path, upstream, stop):
    _write_project(tmp_path, upstream.url)
    proc, base, log = _start(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while httpx.get(base + "/readyz").json()["status"] != "ready":
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        events = (tmp_path / "plugins" / "events.log").read_text().splitlines()
        assert events == ["startup", "built"]  # before any request asked for a model
        response = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "recorded", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=30,
        )
        assert response.json()["choices"][0]["message"]["content"] == "fine"
    finally:
        proc.send_signal(stop)  # Ctrl-C, or a service manager stopping it
        try:
            proc.wait(timeout=30)  # (a bound)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # stopped cleanly: exit status 0, or the signal uvicorn raises again once it has shut down
    assert proc.returncode in (0, -stop)
    assert (tmp_path / "plugins" / "events.log").read_text().splitlines() == [
        "startup",
        "built",
        "shutdown",
    ]
    assert "Traceback" not in log.read_text()


def test_readiness_waits_for_the_lifespan(project):
    """In-process: until the app's lifespan has started the host, /readyz says so."""
    import asyncio

    from ai_assistant import load_host
    from ai_assistant.server import create_app

    app = create_app(load_host())

    async def readiness() -> list[tuple[int, list[str]]]:
        transport = httpx.ASGITransport(app=app)  # (it runs no lifespan of its own)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

            async def ask() -> tuple[int, list[str]]:
                response = await client.get("/readyz")
                return response.status_code, response.json()["problems"]

            seen = [await ask()]
            async with app.router.lifespan_context(app):
                seen.append(await ask())
            seen.append(await ask())
            return seen

    assert asyncio.run(readiness()) == [
        (503, ["the gateway is starting up or shutting down"]),
        (200, []),
        (503, ["the gateway is starting up or shutting down"]),
    ]
