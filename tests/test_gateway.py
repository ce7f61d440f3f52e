"""The gateway end to end. Requests to `good` and friends cross to the fake upstream:
client -> gateway -> openai_compatible -> fake upstream.

Most cases drive the real app in this process (tests/gateway_client.py: its lifespan, then
ASGI). What only a real server shows runs on `ai-assistant serve` as a process on a loopback
port: the official openai client (sync and async) and LangChain's ChatOpenAI over two real HTTP
hops, tokens that arrive while the reply is still streaming, clients that hang up on their
socket, fifty concurrent connections, several workers, and a clean stop on SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import openai
import pytest
from conftest import SECRET_KEY
from gateway_client import serving

EXE = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"

SETTINGS = """
[default.plugins]
dirs = []

[default.storage]
path = "history.db"

[default.models.echo]
models = [{{ id = "echo" }}, {{ id = "echo-slow", delay = 0.01 }}]

[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
timeout = 10
models = [
  {{ model_name = "ok", id = "good" }},
  {{ model_name = "e429", id = "limited" }},
  {{ model_name = "e429", id = "throttled" }},
  {{ model_name = "e503", id = "unavailable" }},
  {{ model_name = "e401", id = "locked" }},
  {{ model_name = "held", id = "stalled", timeout = 0.1 }},  # held until the test lets go
  {{ model_name = "drop", id = "flaky" }},
  {{ model_name = "gated", id = "gated" }},
  {{ model_name = "held", id = "held" }},
]

[default.chat.fallbacks]
limited = ["good"]

[default.server.limits]
max_body_bytes = 20000
max_messages = 5
max_prompt_chars = 2000
request_timeout = 60  # never reached by a busy machine: the timeout is tested in-process
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(root: Path, *args: str) -> tuple[subprocess.Popen, str, Path]:
    port = _free_port()
    log = root / f"serve-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    proc = subprocess.Popen(
        [EXE, "serve", "--port", str(port), *args],
        cwd=root,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _write_project(root: Path, url: str) -> None:
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


def _clean(log_text: str) -> None:
    """Nothing secret and no traceback ever reached the gateway's log."""
    for secret in (SECRET_KEY, ALICE, BOB):
        assert secret not in log_text
    assert "Traceback" not in log_text


class Gateway:
    """A gateway, in this process or a real ``serve``: an httpx client on it (``http``), the
    official client (``openai(key)``), its project folder (``root``) and its log so far
    (``log_text``)."""

    def __init__(self, root: Path, http: httpx.Client, openai_client, log_text) -> None:
        self.root = root
        self.http = http
        self._openai = openai_client
        self._log_text = log_text

    def openai(self, key: str = ALICE) -> openai.OpenAI:
        return self._openai(key)

    @property
    def log_text(self) -> str:
        return self._log_text()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    """The gateway in this process."""
    root = tmp_path_factory.mktemp("gateway")
    _write_project(root, upstream.url)
    with serving(root, tmp_path_factory.mktemp("gateway-env")) as (app, log):
        yield Gateway(root, app.client, app.openai, lambda: log.text)
    _clean(log.text)


@pytest.fixture(scope="module")
def served(tmp_path_factory, upstream):
    """The gateway as a real `ai-assistant serve` process."""
    root = tmp_path_factory.mktemp("served")
    _write_project(root, upstream.url)
    proc, base, log = _start(root)
    http = httpx.Client(base_url=base, timeout=30)

    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)

    yield Gateway(root, http, client, log.read_text)
    http.close()
    _stop(proc)
    _clean(log.read_text())


def _url(gateway: Gateway) -> str:
    return str(gateway.http.base_url).rstrip("/")


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def _post(gateway: Gateway, path: str, body, key: str | None = ALICE) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return gateway.http.post(path, content=content, headers=_auth(key))


def _events(gateway: Gateway, path: str, body: dict, key: str = ALICE) -> list[str]:
    """The data of every server-sent event of a streaming request."""
    with gateway.http.stream("POST", path, json=body, headers=_auth(key)) as response:
        assert response.status_code == 200, response.read()
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def _db(gateway: Gateway) -> sqlite3.Connection:
    db = sqlite3.connect(gateway.root / "history.db")
    db.row_factory = sqlite3.Row
    return db


def _assistant_replies(gateway: Gateway, prompt: str) -> list[sqlite3.Row]:
    return (
        _db(gateway)
        .execute(
            "SELECT a.* FROM messages u JOIN messages a ON a.conversation_id = u.conversation_id "
            "AND a.role = 'assistant' WHERE u.role = 'user' AND u.content = ?",
            (prompt,),
        )
        .fetchall()
    )


# -- the OpenAI protocol, end to end: the official clients on a real serve, over two hops ------


def test_sync_client_non_streaming_and_streaming(served):
    client = served.openai()
    done = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi gateway"}]
    )
    assert done.choices[0].message.content == "echo: hi gateway"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens == 3
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me"
    assert chunks[-1].usage.total_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_async_client_streaming_and_not(served):
    async def main():
        client = openai.AsyncOpenAI(base_url=f"{_url(served)}/v1", api_key=BOB, max_retries=0)
        done = await client.chat.completions.create(
            model="good", messages=[{"role": "user", "content": "async hop"}]
        )
        stream = await client.chat.completions.create(
            model="good", messages=[{"role": "user", "content": "async stream"}], stream=True
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return done.choices[0].message.content, "".join(parts)

    assert asyncio.run(main()) == ("upstream: async hop", "upstream: async stream")


def test_langchain_chat_openai_through_two_hops(served, upstream):
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="good", base_url=f"{_url(served)}/v1", api_key=ALICE, max_retries=0)
    assert model.invoke("two hops").content == "upstream: two hops"
    assert "".join(c.content for c in model.stream("streamed hops")) == "upstream: streamed hops"
    # the gateway called the upstream with its own key, never the client's
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET_KEY}"


# -- the OpenAI protocol, in process ---------------------------------------------------------


def test_models_are_listed_in_openai_shape(gateway):
    models = {m.id: m.owned_by for m in gateway.openai().models.list()}
    assert models["echo"] == "echo" and models["good"] == "openai_compatible"


def test_temperature_max_tokens_and_stop_are_passed_through(gateway, upstream):
    gateway.openai().chat.completions.create(
        model="good",
        messages=[{"role": "user", "content": "params"}],
        temperature=0.3,
        max_tokens=5,
        stop=["zz"],
    )
    sent = upstream.requests[-1]["body"]
    assert sent["temperature"] == 0.3 and sent["stop"] == ["zz"]
    assert 5 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    echoed = gateway.openai().chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello world"}], stop=["world"]
    )
    assert echoed.choices[0].message.content == "echo: hello "


def test_replies_are_stored_per_caller(gateway):
    gateway.openai().chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "store this one"}]
    )
    (reply,) = _assistant_replies(gateway, "store this one")
    assert reply["status"] == "complete" and reply["content"] == "echo: store this one"
    owner = (
        _db(gateway)
        .execute("SELECT owner FROM conversations WHERE id = ?", (reply["conversation_id"],))
        .fetchone()
    )
    assert owner[0] == "alice"


# -- authentication, bad input, limits -------------------------------------------------------


@pytest.mark.parametrize("key, code", [(None, "missing_api_key"), ("wrong-key", "invalid_api_key")])
def test_requests_without_a_valid_key_are_refused(gateway, key, code):
    response = _post(
        gateway,
        "/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        key=key,
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == code
    assert _post(gateway, "/api/chat/conversations", {}, key=key).status_code in (401, 405)
    with pytest.raises(openai.AuthenticationError):
        gateway.openai(key=key or "none").models.list()


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_health_and_readiness_need_no_key_and_tell_strangers_only_the_status(gateway, key):
    assert gateway.http.get("/healthz").json() == {"status": "ok"}
    ready = gateway.http.get("/readyz", headers=_auth(key))
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # no model count, no plugin names


def test_readiness_details_need_a_valid_key(gateway):
    ready = gateway.http.get("/readyz", headers=_auth(BOB))
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["models"] == 11
    assert ready.json()["failed_plugins"] == []


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ("{not json", 400, "request body is not valid JSON"),
        ("[1, 2]", 400, "request body must be a JSON object"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "'model' is required"),
        ({"model": "echo", "messages": "hi"}, 400, "'messages' must be a non-empty array"),
        (
            {"model": "echo", "messages": [{"role": "robot", "content": "x"}]},
            400,
            "messages[0].role must be one of system, user, assistant",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": 5}]},
            400,
            "messages[0].content must be a string or a list of text parts",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            400,
            "temperature must be a number from 0 to 2",
        ),
        (
            {"model": "ecoh", "messages": [{"role": "user", "content": "x"}]},
            404,
            "model 'ecoh' does not exist (did you mean 'echo'?)",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x"}] * 6},
            400,
            "too many messages: 6 (server.limits.max_messages is 5)",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x" * 2001}]},
            400,
            "prompt too long: 2001 characters (server.limits.max_prompt_chars is 2000)",
        ),
        (
            {"model": "echo", "messages": [{"role": "user", "content": "x" * 30000}]},
            413,
            "request body is larger than server.limits.max_body_bytes (20000 bytes)",
        ),
    ],
)
def test_bad_requests_get_a_4xx_in_openai_shape(gateway, body, status, fragment):
    response = _post(gateway, "/v1/chat/completions", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "code", "param"}


@pytest.mark.parametrize(
    "model, status, kind",
    [
        ("throttled", 429, "rate_limit_error"),
        ("unavailable", 502, "upstream_error"),
        ("locked", 502, "upstream_error"),
        ("stalled", 504, "timeout_error"),  # the upstream holds it: only the timeout ends it
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_map_to_status_codes(gateway, upstream, model, status, kind, stream):
    upstream.reset()
    try:
        response = _post(
            gateway,
            "/v1/chat/completions",
            {"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]},
        )
    finally:
        upstream.hold.set()
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert SECRET_KEY not in response.text


def test_fallback_answers_and_says_which_model(gateway):
    done = gateway.openai().chat.completions.create(
        model="limited", messages=[{"role": "user", "content": "fall back please"}]
    )
    assert done.model == "good"
    assert done.choices[0].message.content == "upstream: fall back please"
    assert "model 'limited' failed (HTTP 429 rate limited" in gateway.log_text


def test_reply_broken_mid_stream_ends_with_an_error_event(gateway):
    events = _events(
        gateway,
        "/v1/chat/completions",
        {
            "model": "flaky",
            "stream": True,
            "messages": [{"role": "user", "content": "one two three"}],
        },
    )
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "upstream_error"
    (reply,) = _assistant_replies(gateway, "one two three")
    assert reply["status"] == "failed" and reply["content"] == "upstream: one"


# -- clients that hang up, many at once: a real server's sockets -----------------------------


def test_client_disconnect_cancels_upstream_and_stores_interrupted(served, upstream):
    upstream.reset()
    with served.http.stream(
        "POST",
        "/v1/chat/completions",
        headers=_auth(ALICE),
        json={
            "model": "gated",
            "stream": True,
            "messages": [{"role": "user", "content": "hang up on me"}],
        },
    ) as r:
        for line in r.iter_lines():
            if '"content": "upstream:"' in line:
                break  # got the first token: hang up
    deadline = time.monotonic() + 20
    while True:
        replies = _assistant_replies(served, "hang up on me")
        if replies and replies[0]["status"] != "streaming":
            break
        assert time.monotonic() < deadline, "the reply was never settled"
        time.sleep(0.05)
    assert replies[0]["status"] == "interrupted"
    assert replies[0]["content"] == "upstream:"
    upstream.gate.set()  # the upstream tries to send the rest: its client is gone
    deadline = time.monotonic() + 20
    while upstream.aborted < 1:
        assert time.monotonic() < deadline, "the upstream request was not cancelled"
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_leaving_before_the_first_token_cancels_upstream(served, upstream, stream):
    """Through uvicorn: the client's socket closes while the upstream has sent nothing yet."""
    upstream.reset()
    prompt = f"leave early {stream}"
    body = json.dumps(
        {"model": "held", "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    ).encode()
    port = int(_url(served).rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                + f"Authorization: Bearer {ALICE}\r\nContent-Type: application/json\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert upstream.arrived.wait(30), "the request never reached the upstream"
        # the client is gone; so must the gateway's upstream call be
        assert upstream.hung_up.wait(30), "the upstream call was not cancelled"
    finally:
        upstream.hold.set()
    deadline = time.monotonic() + 20
    while (
        not (replies := _assistant_replies(served, prompt)) or replies[0]["status"] == "streaming"
    ):
        assert time.monotonic() < deadline, "the reply was never settled"
        time.sleep(0.05)  # (another process writes it: polled)
    assert replies[0]["status"] == "interrupted"
    assert replies[0]["error"] == "the client disconnected before the first token"


def test_fifty_concurrent_streaming_clients_all_complete_and_are_stored(served):
    async def one(client, i):
        stream = await client.chat.completions.create(
            model="echo-slow",
            stream=True,
            messages=[{"role": "user", "content": f"client {i} says a b c d e"}],
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main():
        client = openai.AsyncOpenAI(
            base_url=f"{_url(served)}/v1",
            api_key=ALICE,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_connections=60)),
        )
        results = await asyncio.gather(*(one(client, i) for i in range(50)))
        await client.close()
        return results

    results = asyncio.run(main())
    assert results == [f"echo: client {i} says a b c d e" for i in range(50)]
    for i in range(50):
        (reply,) = _assistant_replies(served, f"client {i} says a b c d e")
        assert reply["status"] == "complete" and reply["content"] == results[i]


# -- the conversation API --------------------------------------------------------------------


def test_conversation_api_stores_continues_and_isolates_callers(gateway, upstream):
    first = _post(
        gateway,
        "/api/chat/message",
        {"modelId": "good", "messages": [{"role": "user", "content": "remember me"}]},
    )
    assert first.status_code == 200, first.text
    conversation_id = first.json()["conversationId"]
    assert first.json()["message"]["content"] == "upstream: remember me"
    second = _post(
        gateway,
        "/api/chat/message",
        {
            "modelId": "good",
            "conversationId": conversation_id,
            "messages": [{"role": "user", "content": "and now?"}],
        },
    )
    assert second.json()["conversationId"] == conversation_id
    sent = [m["content"] for m in upstream.requests[-1]["body"]["messages"]]
    assert sent[-3:] == ["remember me", "upstream: remember me", "and now?"]

    http, alice, bob = gateway.http, _auth(ALICE), _auth(BOB)
    mine = http.get("/api/chat/conversations", headers=alice).json()
    assert conversation_id in [c["id"] for c in mine["conversations"]]
    detail = http.get(f"/api/chat/{conversation_id}", headers=alice).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"] * 2
    assert detail["messages"][1]["status"] == "complete"

    theirs = http.get("/api/chat/conversations", headers=bob).json()
    assert conversation_id not in [c["id"] for c in theirs["conversations"]]
    assert http.get(f"/api/chat/{conversation_id}", headers=bob).status_code == 404
    assert http.delete(f"/api/chat/{conversation_id}", headers=bob).status_code == 404
    hijack = _post(
        gateway,
        "/api/chat/message",
        {
            "modelId": "good",
            "conversationId": conversation_id,
            "messages": [{"role": "user", "content": "x"}],
        },
        key=BOB,
    )
    assert hijack.status_code == 404
    deleted = http.delete(f"/api/chat/{conversation_id}", headers=alice)
    assert deleted.json() == {"deleted": conversation_id}
    assert http.get(f"/api/chat/{conversation_id}", headers=alice).status_code == 404


def test_conversation_api_streams_events(gateway):
    events = [
        json.loads(e)
        for e in _events(
            gateway,
            "/api/chat/message",
            {
                "modelId": "echo",
                "stream": True,
                "messages": [{"role": "user", "content": "stream the api"}],
            },
            key=BOB,
        )
    ]
    assert events[0]["type"] == "start"
    assert "".join(e["content"] for e in events if e["type"] == "token") == "echo: stream the api"
    assert events[-1]["type"] == "done" and events[-1]["modelId"] == "echo"
    assert events[-1]["conversationId"] == events[0]["conversationId"]
    models = gateway.http.get("/api/models", headers=_auth(BOB)).json()["models"]
    assert {"id": "echo", "plugin": "echo", "status": "ready"}.items() <= models[0].items()


# -- starting it -----------------------------------------------------------------------------


def test_a_keyless_gateway_is_refused_beyond_loopback(project):
    refused = project.run("serve", "--host", "0.0.0.0")
    assert refused.exit_code == 1
    assert "refusing to listen on 0.0.0.0 with no API keys" in refused.stderr
    assert "--insecure" in refused.stderr


def test_several_workers_really_answer_and_serve_the_same_store(project):
    project.settings('[default.storage]\npath = "history.db"\n')
    proc, base, log = _start(project.root, "--workers", "2")
    pids: set[int] = set()
    try:
        # each request on a fresh connection is accepted by whichever worker wins it: within a
        # bounded number of tries both must have answered (one worker answers all if --workers
        # is ignored)
        for _ in range(400):
            with httpx.Client(timeout=10) as client:  # a new connection each time
                body = client.get(f"{base}/readyz").json()
            pids.add(body["pid"])
            if len(pids) == 2:
                break
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        replies = {
            client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": f"worker {i}"}]
            )
            .choices[0]
            .message.content
            for i in range(6)
        }
        assert replies == {f"echo: worker {i}" for i in range(6)}
    finally:
        _stop(proc)
    assert len(pids) == 2
    assert proc.pid not in pids  # the workers, not the supervising process
    db = sqlite3.connect(project.root / "history.db")
    assert (
        db.execute(
            "SELECT COUNT(*) FROM messages WHERE status = 'complete' AND role = 'assistant'"
        ).fetchone()[0]
        == 6
    )
    assert "2 worker(s)" in log.read_text()
