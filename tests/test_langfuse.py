"""The bundled `langfuse` callback plugin, against a stand-in for Langfuse's ingestion endpoint on
127.0.0.1: what arrives (one generation per model call, with the turn's user and conversation as
the Langfuse user and session), that a one-shot chat delivers it before it exits, and that a
missing key or a missing extra is one clear line while the chat goes on."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import time
import uuid

import pytest

pytest.importorskip("langfuse")

from fake_langfuse import FakeLangfuse  # noqa: E402

SECRET = "sk-lf-test-secret-7c1e"
INSTALL = "install the extra: pip install 'ai-assistant[langfuse]'"


@pytest.fixture(scope="module")
def langfuse_server():
    with FakeLangfuse() as server:
        yield server


@pytest.fixture
def langfuse(project, langfuse_server, monkeypatch):
    """The project traced to the stand-in. Each test gets a public key of its own (the langfuse
    SDK keeps one client per public key for the whole process), and the SDK's own timer never
    sends within a test: what arrives was sent at exit (a real process) or by ``_flush``."""
    monkeypatch.setenv("LANGFUSE_FLUSH_INTERVAL", "600")
    langfuse_server.reset()
    langfuse_server.public_key = f"pk-lf-test-{uuid.uuid4().hex[:12]}"
    project.base_settings = (
        '\n[default.storage]\npath = "history.db"\n'
        f'\n[default.callbacks.langfuse]\nhost = "{langfuse_server.url}"\n'
        f'public_key = "{langfuse_server.public_key}"\n'
    )
    project.settings()
    project.write(".secrets.toml", f'[default.callbacks.langfuse]\nsecret_key = "{SECRET}"\n')
    return langfuse_server


def _flush():
    """Send what the in-process clients hold, as langfuse does when a process exits."""
    sys.modules["ai_assistant_plugin_langfuse"].flush()


def _cli(project, *args, timeout=60):
    """The real `ai-assistant` in a process of its own, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ai_assistant", *args],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _generations(spans):
    return [s for s in spans if s["attributes"].get("langfuse.observation.type") == "generation"]


def _conversation_ids(project):
    result = project.run("conversations", "list", "--json")
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.stdout)]


def test_a_one_shot_chat_delivers_its_trace_with_user_session_and_model(project, langfuse):
    result = _cli(project, "chat", "-m", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: hello\n"
    assert result.stderr == ""

    # already there when the process has exited: sent on the way out, not by a timer
    (generation,) = _generations(langfuse.spans())
    attributes = generation["attributes"]
    (conversation_id,) = _conversation_ids(project)
    assert attributes["user.id"] == getpass.getuser()
    assert attributes["session.id"] == conversation_id
    assert attributes["langfuse.trace.name"] == "ai-assistant cli"
    assert attributes["langfuse.trace.tags"] == ["surface:cli"]
    assert attributes["langfuse.observation.model.name"] == "echo"
    assert "hello" in attributes["langfuse.observation.input"]
    assert json.loads(attributes["langfuse.observation.output"])["content"] == "echo: hello"
    assert json.loads(attributes["langfuse.observation.usage_details"])["output"] > 0
    metadata = {
        key.removeprefix("langfuse.observation.metadata."): json.loads(value)
        for key, value in attributes.items()
        if key.startswith("langfuse.observation.metadata.")
    }
    assert metadata["model_id"] == "echo" and metadata["surface"] == "cli"
    assert metadata["langfuse_user_id"] == getpass.getuser()
    assert metadata["langfuse_session_id"] == conversation_id

    # the keys travel only as Langfuse's basic auth, to the OTLP route
    (post,) = langfuse.trace_posts()
    assert langfuse.basic_auth(post) == (langfuse.public_key, SECRET)
    assert SECRET not in result.stdout + result.stderr


def test_each_turn_of_a_conversation_is_in_its_session(project, langfuse):
    assert project.run("chat", "-m", "echo", "first").exit_code == 0
    (conversation_id,) = _conversation_ids(project)
    result = project.run("chat", "-m", "echo", "--cid", conversation_id, "second")
    assert result.exit_code == 0, result.output
    _flush()
    generations = _generations(langfuse.spans())
    assert len(generations) == 2
    assert {g["attributes"]["session.id"] for g in generations} == {conversation_id}
    assert len({g["trace_id"] for g in generations}) == 2  # one trace per model call


def test_the_secret_key_may_come_from_the_environment(project, langfuse):
    (project.root / ".secrets.toml").unlink()
    env = {"AI_ASSISTANT_CALLBACKS__LANGFUSE__SECRET_KEY": "sk-lf-from-env-5150"}
    result = project.run("chat", "-m", "echo", "hello", env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    _flush()
    (post,) = langfuse.trace_posts()
    assert langfuse.basic_auth(post) == (langfuse.public_key, "sk-lf-from-env-5150")
    shown = project.run("config", "show", env=env).output
    assert "[default.callbacks.langfuse]" in shown and "sk-lf-from-env-5150" not in shown


def test_fallbacks_are_traced_in_the_same_session_with_their_errors(
    chat_project, langfuse_server, monkeypatch
):
    monkeypatch.setenv("LANGFUSE_FLUSH_INTERVAL", "600")
    langfuse_server.reset()
    langfuse_server.public_key = f"pk-lf-test-{uuid.uuid4().hex[:12]}"
    chat_project.write(
        "settings.local.toml",
        f'[default.callbacks.langfuse]\nhost = "{langfuse_server.url}"\n'
        f'public_key = "{langfuse_server.public_key}"\nsecret_key = "{SECRET}"\n',
    )
    result = chat_project.run("chat", "-m", "broken", "hello")
    assert result.exit_code == 0, result.output
    _flush()
    generations = _generations(langfuse_server.spans())
    called = [
        json.loads(g["attributes"]["langfuse.observation.metadata.called_model_id"])
        for g in generations
    ]
    assert sorted(called) == ["broken", "down", "echo"]
    assert len({g["attributes"]["session.id"] for g in generations}) == 1
    by_model = dict(zip(called, generations, strict=True))
    assert by_model["broken"]["attributes"]["langfuse.observation.level"] == "ERROR"
    assert (
        "echo"
        in json.loads(by_model["echo"]["attributes"]["langfuse.observation.output"])["content"]
    )
    assert SECRET not in result.output + result.stderr


def test_without_keys_the_problem_is_reported_and_the_chat_works(project, langfuse_server):
    langfuse_server.reset()
    project.settings(f'\n[default.callbacks.langfuse]\nhost = "{langfuse_server.url}"\n')
    result = project.run("chat", "-m", "echo", "hello")
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hello\n"
    problems = [line for line in result.stderr.splitlines() if "langfuse" in line]
    assert problems == [
        "warning: plugin 'langfuse': callbacks.langfuse.public_key is not set, so nothing is "
        "sent to Langfuse: set public_key under [default.callbacks.langfuse] in settings.toml, "
        "or export AI_ASSISTANT_CALLBACKS__LANGFUSE__PUBLIC_KEY",
        "warning: plugin 'langfuse': callbacks.langfuse.secret_key is not set, so nothing is "
        "sent to Langfuse: set secret_key under [default.callbacks.langfuse] in .secrets.toml "
        "(`ai-assistant secrets set callbacks.langfuse.secret_key`), or export "
        "AI_ASSISTANT_CALLBACKS__LANGFUSE__SECRET_KEY",
    ]
    assert langfuse_server.requests == []

    validate = project.run("config", "validate")
    assert validate.exit_code != 0
    assert "callbacks.langfuse.secret_key" in validate.output + validate.stderr


def test_without_the_extra_installed_one_line_says_which_to_install(project, langfuse, monkeypatch):
    monkeypatch.setitem(sys.modules, "langfuse", None)  # `import langfuse` fails, as uninstalled
    result = project.run("chat", "-m", "echo", "hello")
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hello\n"
    assert result.stderr.splitlines() == [
        "warning: plugin 'langfuse': callbacks.langfuse is configured but langfuse is not "
        f"installed: {INSTALL}"
    ]
    assert langfuse.requests == []
    listed = project.run("plugins", "list")
    assert INSTALL in listed.output + listed.stderr


def test_an_unconfigured_plugin_registers_and_reports_nothing(project):
    result = project.run("chat", "-m", "echo", "hello")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    from ai_assistant import load_host

    assert [c.id for c in load_host().callbacks] == []


def test_an_unreachable_langfuse_costs_the_chat_nothing_but_its_timeout(project, langfuse):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    project.write(
        "settings.local.toml",
        f'[default.callbacks.langfuse]\nhost = "http://127.0.0.1:{port}"\ntimeout = 1\n',
    )
    started = time.monotonic()
    result = _cli(project, "chat", "-m", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "echo: hello\n"
    assert time.monotonic() - started < 15
    assert SECRET not in result.stdout + result.stderr


def test_listing_models_never_imports_langfuse(project, langfuse):
    found = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ai_assistant", "models", "list"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.returncode == 0, found.stderr
    assert "echo" in found.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in found.stderr.splitlines()]
    assert not [name for name in imported if name.split(".")[0] in ("langfuse", "opentelemetry")]
    assert langfuse.requests == []


def test_the_gateway_traces_each_request_as_its_caller_and_sends_scores(project, langfuse):
    import os
    import signal
    import socket

    import httpx

    alice = "alice-key-0123456789"
    project.write(
        ".secrets.toml",
        f'[default.callbacks.langfuse]\nsecret_key = "{SECRET}"\n'
        f'[default.server.api_keys]\nalice = "{alice}"\n',
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = project.root / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ai_assistant", "serve", "--port", str(port)],
            cwd=project.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def post(path, body):
        response = httpx.post(
            base + path, json=body, headers={"Authorization": f"Bearer {alice}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.1)
        for stream in (False, True):
            post(
                "/v1/chat/completions",
                {
                    "model": "echo",
                    "messages": [{"role": "user", "content": f"via /v1 {stream}"}],
                    "stream": stream,
                },
            )
        sent = post(
            "/api/chat/message",
            {"modelId": "echo", "messages": [{"role": "user", "content": "rate me"}]},
        ).json()
        message_id = sent["message"]["id"]
        post(f"/api/chat/message/{message_id}/score", {"score": 0.5, "comment": "first"})
        post(f"/api/chat/message/{message_id}/score", {"score": 1, "comment": "spot on"})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)

    # the gateway's exit sent the batch
    generations = _generations(langfuse.spans())
    assert len(generations) == 3
    surfaces = sorted(g["attributes"]["langfuse.trace.tags"][0] for g in generations)
    assert surfaces == ["surface:api", "surface:openai", "surface:openai"]
    for generation in generations:
        attributes = generation["attributes"]
        assert attributes["user.id"] == "alice"
        assert attributes["langfuse.observation.model.name"] == "echo"
    (api,) = [g for g in generations if "rate me" in g["attributes"]["langfuse.observation.input"]]
    assert api["attributes"]["session.id"] == sent["conversationId"]

    scores = [
        score
        for request in langfuse.requests
        if request["path"] == "/api/public/scores"
        for score in json.loads(request["body"])
    ]
    assert [(s["value"], s["comment"]) for s in scores] == [(0.5, "first"), (1.0, "spot on")]
    assert {s["sessionId"] for s in scores} == {sent["conversationId"]}
    assert {s["name"] for s in scores} == {"feedback"}
    assert len({s["id"] for s in scores}) == 1  # scoring again replaces the score
    assert scores[-1]["metadata"] == {"message_id": message_id, "model_id": "echo", "user": "alice"}
    assert SECRET not in log.read_text()
