"""The bundled OpenAI-protocol models (``openai_compatible``, ``ollama``: ``OpenAIChatModel``)
against the fake upstream, through the CLI and the Python API: what the openai SDK gave
(retries, errors a person can act on, any event loop or thread) without importing it."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

import pytest
from conftest import imports_of

from ai_assistant import load_host
from ai_assistant.chat import Chat, Done, Turn


@pytest.fixture
def endpoint(project, upstream):
    """A project whose openai_compatible models are the fake upstream's, retried twice."""
    project.settings(
        f"""
        [default.models.openai_compatible]
        endpoint = "{upstream.url}"
        max_retries = 2
        timeout = 5
        models = [
          {{ model_name = "ok", id = "good" }},
          {{ model_name = "e429", id = "limited" }},
          {{ model_name = "e400", id = "picky" }},
          {{ model_name = "html", id = "proxied" }},
          {{ model_name = "midstream-error", id = "oom" }},
        ]
        [default.chat.fallbacks]
        limited = ["good"]
        picky = ["good"]
        """
    )
    upstream.reset()
    return project


def _asked(upstream, since: int) -> list[str]:
    return [r["body"]["model"] for r in upstream.requests[since:]]


def test_a_one_shot_chat_imports_no_openai_sdk(endpoint):
    args = ("chat", "-m", "good", "hi", "--no-log")
    out, imported = imports_of(endpoint.root, *args, watched=("langchain_openai", "openai"))
    assert out == "upstream: hi\n" and imported == []


def test_rate_limited_requests_are_retried_as_max_retries_says_then_fall_back(endpoint, upstream):
    sent = len(upstream.requests)
    result = endpoint.run("chat", "-m", "limited", "hi", "--no-log")
    assert result.exit_code == 0, result.output
    assert result.stdout == "upstream: hi\n"
    assert "HTTP 429 rate limited: Rate limit reached" in result.stderr
    # the first try and two retries (at once: retry-after-ms), then the fallback
    assert _asked(upstream, sent) == ["e429", "e429", "e429", "ok"]


def test_a_refused_request_is_not_retried(endpoint, upstream):
    sent = len(upstream.requests)
    result = endpoint.run("chat", "-m", "picky", "hi", "--no-log")
    assert result.exit_code != 0
    assert "HTTP 400: Invalid request" in result.stderr
    assert _asked(upstream, sent) == ["e400"]  # a 400 is the request's fault: no retry


def test_a_reply_that_is_not_a_completion_is_a_clear_error(endpoint):
    """A proxy's sign-in page where a completion should be: streamed (the CLI) and not (the
    Python API), the error names the model and shows the start of what came."""
    result = endpoint.run("chat", "-m", "proxied", "hi", "--no-log")
    assert result.exit_code != 0
    assert "model 'proxied' failed" in result.stderr
    assert "no events: <html><body><h1>Sign in to continue" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(Exception, match="not JSON: <html><body><h1>Sign in to continue"):
        load_host().get_model("proxied").invoke("hi")


def test_a_server_that_answers_a_stream_with_one_completion_is_understood(project, upstream):
    """Some servers ignore ``stream``; their whole JSON reply is taken as one chunk."""
    _project(project, upstream, "unstreamed")
    result = project.run("chat", "-m", "unstreamed", "whole", "--no-log")
    assert result.stdout == "upstream: whole\n", result.output
    chunks = list(load_host().get_model("unstreamed").stream("whole"))
    assert sum(chunks[1:], chunks[0]).usage_metadata["total_tokens"] == 9


def test_streamed_replies_keep_their_connection(project, upstream):
    """What follows [DONE] is read, so the connection serves the next request (over TLS,
    a new connection would be a new handshake each time)."""
    _project(project, upstream, "ok")
    model = load_host().get_model("ok")

    async def three() -> list[str]:
        return ["".join([c.content async for c in model.astream(t)]) for t in "abc"]

    before = upstream.connections
    assert asyncio.run(three()) == ["upstream: a", "upstream: b", "upstream: c"]
    assert upstream.connections - before == 1


def test_a_reply_ends_at_done_though_the_server_keeps_its_body_open(project, upstream):
    """[DONE] ends the reply: a server slow to end its body then (``linger``) holds nothing
    up, and the request's timeout (1 s here) is not taken for a failure."""
    sent = _project(project, upstream, "linger")
    project.write("settings.local.toml", "[default.models.openai_compatible]\ntimeout = 1\n")
    try:
        result = project.run("chat", "-m", "linger", "hi")
        again = load_host().get_model("linger").invoke("sync", stream=True)
    finally:
        upstream.gate.set()
    assert result.exit_code == 0 and result.stdout == "upstream: hi\n", result.output
    assert again.content == "upstream: sync"
    assert _asked(upstream, sent) == ["linger", "linger"]


def test_structured_output_asks_the_server_for_the_schema(project, upstream):
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str

    _project(project, upstream, "ok")
    model = load_host().get_model("ok")
    assert model.with_structured_output(Weather).invoke('{"city": "Paris"}') == Weather(
        city="Paris"
    )
    asked = upstream.requests[-1]["body"]["response_format"]
    assert asked["type"] == "json_schema" and asked["json_schema"]["name"] == "Weather"
    raw = model.with_structured_output(Weather, include_raw=True).invoke("not json")
    assert raw["parsed"] is None and raw["parsing_error"] is not None
    as_json = model.with_structured_output(Weather, method="json_mode").invoke('{"city": "Oslo"}')
    assert as_json == Weather(city="Oslo")
    assert upstream.requests[-1]["body"]["response_format"] == {"type": "json_object"}

    class Place(TypedDict):
        """Where."""

        city: str

    assert model.with_structured_output(Place).invoke('{"city": "Rome"}') == {"city": "Rome"}
    named = upstream.requests[-1]["body"]["response_format"]["json_schema"]
    assert named["name"] == "Place" and named["schema"]["properties"]["city"]["type"] == "string"


def test_structured_output_through_a_tool_call(project, upstream):
    _project(project, upstream, "toolcall")
    model = load_host().get_model("toolcall")
    weather = {
        "title": "get_weather",
        "description": "The weather in a city.",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    asked = model.with_structured_output(weather, method="function_calling", strict=True)
    assert asked.invoke("weather?") == {"city": "Paris"}
    body = upstream.requests[-1]["body"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["tools"][0]["function"]["strict"] is True
    assert body["parallel_tool_calls"] is False


def test_settings_by_chatopenai_s_names_and_request_fields(upstream):
    """As ChatOpenAI takes them: its names for settings, and request fields (top_p, seed,
    extra_body's) for every request's body. A name that is neither is refused, never sent."""
    from pydantic import ValidationError

    from ai_assistant.openai_chat import OpenAIChatModel

    model = OpenAIChatModel(
        model="o3-mini",
        openai_api_base=upstream.url,
        openai_api_key="sk-by-another-name",
        request_timeout=5,
        top_p=0.5,
        extra_body={"seed": 7},
    )
    model.invoke([("system", "be brief"), ("user", "hi")])
    sent = upstream.requests[-1]
    assert sent["body"]["top_p"] == 0.5 and sent["body"]["seed"] == 7
    assert sent["headers"]["authorization"] == "Bearer sk-by-another-name"
    assert "sk-by-another-name" not in json.dumps(sent["body"]) and model.timeout == 5
    assert sent["body"]["messages"][0]["role"] == "developer"  # (as OpenAI's o-series take it)
    with pytest.raises(ValidationError, match="unknown setting 'temprature'"):
        OpenAIChatModel(model="m", base_url=upstream.url, temprature=0.2)
    streaming = OpenAIChatModel(
        model="ok", base_url=upstream.url, streaming=True, openai_organization="org-1"
    )
    assert streaming.invoke("hi").content == "upstream: hi"
    sent = upstream.requests[-1]
    assert sent["body"]["stream"] is True and sent["headers"]["openai-organization"] == "org-1"


def test_an_error_sent_mid_stream_ends_the_reply_and_keeps_what_arrived(endpoint):
    result = endpoint.run("chat", "-m", "oom", "a b c")
    assert result.stdout.startswith("upstream:")
    assert "the model server ran out of memory" in result.stderr
    assert result.exit_code != 0 and "Traceback" not in result.stderr


def test_one_model_serves_several_event_loops_and_threads(endpoint):
    """A blocking Chat (its own loop), asyncio.run twice (a new loop each time), LangChain's
    sync calls and threads: one model object, its HTTP clients made per loop and thread."""
    host = load_host()
    assert Chat(host, "good").send("one").text == "upstream: one"

    async def turn(text: str) -> str:
        events = [e async for e in Turn(host, "good", [("user", text)]).events()]
        assert isinstance(events[-1], Done)
        return events[-1].reply.text

    assert asyncio.run(turn("two")) == "upstream: two"
    assert asyncio.run(turn("three")) == "upstream: three"
    model = host.get_model("good")
    # (not streamed, a reply leaves its connection in the pool: each loop needs its own)
    assert asyncio.run(model.ainvoke("a")).content == "upstream: a"
    assert asyncio.run(model.ainvoke("b")).content == "upstream: b"
    assert model.invoke("four").content == "upstream: four"
    assert "".join(c.content for c in model.stream("five")) == "upstream: five"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: model.invoke(t).content, ["a", "b", "c", "d"]))
    assert answers == ["upstream: a", "upstream: b", "upstream: c", "upstream: d"]
    assert Chat(host, "good").send("six").text == "upstream: six"


def _project(project, upstream, *models: str) -> int:
    """Settings with these models on the upstream; how many requests it had seen."""
    entries = ", ".join(f'{{ model_name = "{m}" }}' for m in models)
    project.settings(
        f"""
        [default.models.openai_compatible]
        endpoint = "{upstream.url}"
        max_retries = 1
        timeout = 5
        models = [{entries}]
        [default.storage]
        path = "history.db"
        """
    )
    upstream.reset()
    return len(upstream.requests)


def test_a_key_ending_in_a_line_break_is_sent_without_it_and_never_shown(
    project, upstream, monkeypatch
):
    """A key from a file or a variable often ends in a line break: it is sent without it. A
    key with a control character inside is refused before anything is sent, and the key shows
    nowhere, escaped or not."""
    _project(project, upstream, "ok", "e401")
    key = "sk-line-break-4242"
    variable = "AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY"
    result = project.run("chat", "-m", "ok", "hi", env={variable: key + "\n"})
    assert result.stdout == "upstream: hi\n", result.output
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {key}"
    sent = len(upstream.requests)
    broken = "sk-broken\x07key-4242"
    result = project.run("chat", "-m", "ok", "hi", env={variable: broken})
    assert result.exit_code != 0
    assert "the API key has a control character in it" in result.stderr
    assert "ai-assistant secrets set models.openai_compatible.api_key" in result.stderr
    assert len(upstream.requests) == sent  # nothing was sent
    stored = (project.root / "history.db").read_bytes()
    for shown in (broken, repr(broken)[1:-1], "sk-broken", key):
        assert shown not in result.output and shown.encode() not in stored
    # what an HTTP library says of such a key's header is masked, escaped as it prints it
    monkeypatch.setenv(variable, broken)
    said = load_host().config.redact(f"Illegal header value b'Bearer {repr(broken)[1:-1]}'")
    assert "sk-broken" not in said and "key-4242" not in said


def test_a_connection_hung_up_before_the_answer_is_retried(project, upstream):
    sent = _project(project, upstream, "hangup-once")
    result = project.run("chat", "-m", "hangup-once", "hi", "--no-log")
    assert result.stdout == "upstream: hi\n", result.output
    assert _asked(upstream, sent) == ["hangup-once", "hangup-once"]


def test_line_separators_in_a_reply_and_events_over_several_lines(project, upstream):
    """U+2028, U+2029 and U+0085 may come unescaped in JSON: they do not end a streamed
    line; an event's data over two ``data:`` lines is one event."""
    _project(project, upstream, "separators")
    result = project.run("chat", "-m", "separators", "hi", "--no-log")
    assert result.stdout == "lines\u2028para\u2029next\x85end\n", result.output
    model = load_host().get_model("separators")
    assert model.invoke("hi").content == "lines\u2028para\u2029next\x85end"


def test_a_redirect_is_an_error_saying_where_it_points(project, upstream):
    """Not followed (a POST's body and key stay where they were set), not retried, and not
    the client's fault: the gateway answers 502."""
    from gateway_client import InProcessGateway

    from ai_assistant.server import create_app

    sent = _project(project, upstream, "moved")
    result = project.run("chat", "-m", "moved", "hi", "--no-log")
    assert result.exit_code != 0
    assert "redirects to https://elsewhere.invalid/v1/chat/completions" in result.stderr
    assert _asked(upstream, sent) == ["moved"]
    with InProcessGateway(create_app(load_host())) as gateway:
        answer = gateway.client.post(
            "/v1/chat/completions",
            json={"model": "moved", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 502
    assert "redirects to https://elsewhere.invalid" in answer.json()["error"]["message"]


def test_what_is_sent_is_what_openai_takes(project, upstream):
    """max_tokens goes as max_completion_tokens (reasoning models refuse the old name); an
    assistant message replayed from another model keeps only its text, not its reasoning or
    LangChain's extras."""
    from langchain_core.messages import AIMessage, HumanMessage

    _project(project, upstream, "ok")
    model = load_host().get_model("ok")
    replayed = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "thinking..."},
            {"type": "text", "text": "earlier answer", "id": "lc_1", "annotations": []},
        ]
    )
    model.invoke([HumanMessage("q"), replayed, HumanMessage("again")], max_tokens=5)
    body = upstream.requests[-1]["body"]
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "earlier answer"}],
    }
