"""The bundled OpenAI-protocol models (``openai_compatible``, ``ollama``: ``OpenAIChatModel``)
against the fake upstream, through the CLI and the Python API: what the openai SDK gave
(retries, errors a person can act on, any event loop or thread) without importing it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

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
    code = (
        "import sys; from ai_assistant.cli import main\n"
        "sys.argv = ['ai-assistant', 'chat', '-m', 'good', 'hi', '--no-log']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(sorted(m for m in ('langchain_openai', 'openai') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=endpoint.root, capture_output=True, text=True
    )
    assert done.stdout.splitlines() == ["upstream: hi", "[]"], done.stderr


def test_rate_limited_requests_are_retried_as_max_retries_says_then_fall_back(endpoint, upstream):
    sent = len(upstream.requests)
    result = endpoint.run("chat", "-m", "limited", "hi", "--no-log")
    assert result.exit_code == 0, result.output
    assert result.stdout == "upstream: hi\n"
    assert "HTTP 429 rate limited: Rate limit reached" in result.stderr
    # the first try and two retries (Retry-After: 0), then the fallback
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


def test_a_server_that_answers_a_stream_with_one_completion_is_understood(endpoint, upstream):
    """Some servers ignore ``stream``; their whole JSON reply is taken as one chunk."""
    from ai_assistant.openai_chat import OpenAIChatModel

    class Unstreamed(OpenAIChatModel):
        def _payload(self, messages, stop, stream, kwargs):
            return super()._payload(messages, stop, False, kwargs)  # (never asks for a stream)

    model = Unstreamed(model="ok", base_url=upstream.url, max_retries=0)
    chunks = list(model.stream("whole"))
    assert "".join(c.content for c in chunks) == "upstream: whole"
    assert sum(chunks[1:], chunks[0]).usage_metadata["total_tokens"] == 9


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
    assert model.invoke("four").content == "upstream: four"
    assert "".join(c.content for c in model.stream("five")) == "upstream: five"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: model.invoke(t).content, ["a", "b", "c", "d"]))
    assert answers == ["upstream: a", "upstream: b", "upstream: c", "upstream: d"]
    assert Chat(host, "good").send("six").text == "upstream: six"
