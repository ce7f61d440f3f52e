"""The offline echo model calls tools, so the whole tool loop runs with no network: with tools
bound, ``/tool NAME {json}`` calls NAME, and the results come back as ``echo: NAME said: ...``."""

from __future__ import annotations

import json

import pytest

from ai_assistant import Chat, load_host

TEXT_TOOLS = """\
from ai_assistant import hookimpl


def upper(text: str) -> str:
    \"\"\"Upper-case a text.\"\"\"
    return text.upper()


def fails(text: str) -> str:
    \"\"\"Always fails.\"\"\"
    raise RuntimeError("no luck")


@hookimpl
def register_tools(config, registry):
    registry.register(upper)
    registry.register(fails)
"""


@pytest.fixture
def tools_project(project):
    project.plugin("texttools", TEXT_TOOLS)
    return project


def test_echo_calls_a_tool_through_the_cli(tools_project):
    result = tools_project.run("chat", "-m", "echo", "-T", "upper", '/tool upper {"text": "hi"}')
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "echo: upper said: HI"
    assert 'tool: upper({"text": "hi"})' in result.stderr
    shown = json.loads(
        tools_project.run("conversations", "show", "--json", _latest(tools_project)).stdout
    )
    roles = [m["role"] for m in shown["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    text = tools_project.run("conversations", "show", _latest(tools_project)).stdout
    assert '→ upper({"text": "hi"})' in text  # the call
    assert "[tool · upper]\nHI" in text  # its result, labelled with the tool


def _latest(project) -> str:
    return json.loads(project.run("conversations", "--json").stdout)[0]["id"]


def test_without_the_tool_offered_echo_just_echoes(tools_project):
    result = tools_project.run("chat", "-m", "echo", '/tool upper {"text": "hi"}')
    assert result.stdout.strip() == 'echo: /tool upper {"text": "hi"}'


def test_a_failing_tool_is_the_tools_result_and_the_chat_goes_on(tools_project):
    result = tools_project.run("chat", "-m", "echo", "-T", "fails", '/tool fails {"text": "x"}')
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("echo: fails said: ")
    assert "no luck" in result.stdout


@pytest.mark.parametrize("stream", [False, True])
def test_echo_tool_calls_through_the_python_api(tools_project, stream):
    chat = Chat(load_host(), "echo", tools=["upper"])
    if stream:
        text = "".join(chat.stream('/tool upper {"text": "streamed"}'))
    else:
        text = chat.send('/tool upper {"text": "sent"}').text
    assert text == f"echo: upper said: {'STREAMED' if stream else 'SENT'}"


SEES_ARGS = """\
from ai_assistant import hookimpl

SEEN = []


def lookup(token: str) -> str:
    \"\"\"Look a token up.\"\"\"
    return "found"


def make(metadata):
    from langchain_core.callbacks import BaseCallbackHandler

    class Seen(BaseCallbackHandler):
        def on_chat_model_start(self, serialized, messages, **kwargs):
            SEEN.append(messages[0])

    return Seen()


@hookimpl
def register_tools(config, registry):
    registry.register(lookup)


@hookimpl
def register_callbacks(config, registry):
    registry.register("seen", factory=make)
"""


def test_the_model_sees_its_own_tool_arguments_while_the_history_masks_them(project):
    import sys

    from ai_assistant.chat import open_store

    project.plugin("seesargs", SEES_ARGS)
    host = load_host()
    chat = Chat(host, "echo", store=open_store(host), tools=["lookup"])
    assert chat.send('/tool lookup {"token": "tok-998877"}').text == "echo: lookup said: found"
    second_call = sys.modules["ai_assistant_plugin_seesargs"].SEEN[-1]
    asked = next(m for m in second_call if getattr(m, "tool_calls", None))
    assert asked.tool_calls[0]["args"] == {"token": "tok-998877"}  # as the model made it
    shown = json.loads(project.run("conversations", "show", "--json", _latest(project)).stdout)
    stored = next(m for m in shown["messages"] if m["tool_calls"])
    assert stored["tool_calls"][0]["args"] == {"token": "********"}  # a secret-named argument
