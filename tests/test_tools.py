"""Tools: registered by plugins, listed and shown by the CLI, and run by the chat core's tool loop
(through the CLI, the Python API and the gateway) against the fake upstream, whose ``use-*``
models ask for tools and then answer with what the tools said."""

from __future__ import annotations

import json

import pytest
from conftest import SECRET_KEY

TOOLS_PLUGIN = """\
import asyncio
import time
from pathlib import Path

from ai_assistant import hookimpl


def add(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    Path("ran.txt").open("a").write(f"add {a} {b}\\n")
    return a + b


async def boom(a: int = 0, b: int = 0) -> str:
    \"\"\"Always fails.\"\"\"
    raise RuntimeError("kaboom")


def sleepy(a: int = 0, b: int = 0) -> str:
    \"\"\"Takes too long.\"\"\"
    time.sleep(1)
    return "late"


def leak(a: int = 0, b: int = 0) -> str:
    \"\"\"Returns the secret.\"\"\"
    return "the key is {secret}"


def delete_all(a: int = 0, b: int = 0) -> str:
    \"\"\"Dangerous: needs approval.\"\"\"
    Path("deleted.txt").write_text("yes")
    return "deleted"


@hookimpl
def register_tools(config, registry):
    registry.register(add)
    registry.register(boom)
    registry.register(sleepy, timeout=0.2)
    registry.register(leak)
    registry.register(delete_all)
    registry.register(add, name="bad.name")
"""

TOOL_SETTINGS = """
[default.storage]
path = "history.db"

[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
timeout = 5
models = [
  {{ model_name = "use-add", id = "adder" }},
  {{ model_name = "use-add+boom", id = "two" }},
  {{ model_name = "use-sleepy", id = "sleeper" }},
  {{ model_name = "use-leak", id = "leaker" }},
  {{ model_name = "use-delete_all", id = "deleter" }},
  {{ model_name = "always-add", id = "looper" }},
  {{ model_name = "toolcall", id = "tooly" }},
]

[default.chat]
default_model = "adder"
tools = ["add", "boom", "sleepy", "leak", "delete_all"]
max_tool_steps = 3

[default.tools]
require_approval = ["delete_*"]
"""

ARGS = '{"a": 2, "b": 40}'


@pytest.fixture
def tool_project(project, upstream):
    project.base_settings = TOOL_SETTINGS.format(url=upstream.url)
    project.settings()
    project.write(
        ".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{SECRET_KEY}"\n'
    )
    project.plugin("mytools", TOOLS_PLUGIN.replace("{secret}", SECRET_KEY))
    upstream.reset()
    return project


# -- registration ---------------------------------------------------------------------------


def test_tools_are_attributed_and_bad_names_are_refused(tool_project):
    result = tool_project.run("tools", "list", "--json")
    assert result.exit_code == 0, result.stderr
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert set(tools) == {"add", "boom", "sleepy", "leak", "delete_all"}
    assert tools["add"]["source"] == "mytools"
    assert tools["add"]["description"] == "Add two integers."
    assert tools["add"]["status"] == "ready"
    assert tools["delete_all"]["needs_approval"] is True
    assert tools["add"]["needs_approval"] is False
    assert "'bad.name' is refused" in result.stderr
    assert "^" not in result.stderr or "letter, digit" in result.stderr


def test_a_duplicate_tool_name_is_refused_naming_both_plugins(tool_project):
    tool_project.plugin(
        "zother",
        """\
        from ai_assistant import hookimpl

        def add(x: str) -> str:
            \"\"\"Another add.\"\"\"
            return x

        @hookimpl
        def register_tools(config, registry):
            registry.register(add)
        """,
    )
    result = tool_project.run("tools", "--json")
    assert result.exit_code == 0
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert tools["add"]["source"] == "mytools"
    assert "'add' is already registered by plugin 'mytools'" in result.stderr
    assert "zother" in result.stderr


def test_tools_list_table_and_show_schema(tool_project):
    result = tool_project.run("tools")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "STATUS", "APPROVAL", "DESCRIPTION"]
    assert any(line.split()[:4] == ["delete_all", "mytools", "ready", "yes"] for line in lines)
    shown = tool_project.run("tools", "show", "add", "--json")
    assert shown.exit_code == 0
    details = json.loads(shown.stdout)
    assert details["args_schema"]["properties"]["a"]["type"] == "integer"
    assert details["args_schema"]["required"] == ["a", "b"]
    unknown = tool_project.run("tools", "show", "ad")
    assert unknown.exit_code == 1
    assert "did you mean 'add'" in unknown.stderr


def test_tools_list_without_tools_says_how_to_add_some(project):
    result = project.run("tools", "list")
    assert result.exit_code == 0
    assert "no tools registered" in result.stderr


# -- the tool loop through the CLI -------------------------------------------------------------


def test_chat_runs_a_tool_and_answers_with_its_result(tool_project, upstream):
    result = tool_project.run("chat", ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "upstream: tools said: 42"
    assert 'tool: add({"a": 2, "b": 40})' in result.stderr
    assert "tool: add -> 42" in result.stderr
    assert (tool_project.root / "ran.txt").read_text() == "add 2 40\n"
    # the model was offered the tool, and got its result back with the call's id
    first, second = upstream.requests[-2:]
    assert [t["function"]["name"] for t in first["body"]["tools"]][:1] == ["add"]
    tool_message = second["body"]["messages"][-1]
    assert tool_message == {"role": "tool", "content": "42", "tool_call_id": "call_add_0_0"}


def test_history_holds_the_tool_call_and_result_and_continues_with_them(tool_project, upstream):
    assert tool_project.run("chat", ARGS).exit_code == 0
    listing = json.loads(tool_project.run("conversations", "--json").stdout)
    conv = json.loads(tool_project.run("conversations", "show", listing[0]["id"], "--json").stdout)
    roles = [m["role"] for m in conv["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert conv["messages"][1]["tool_calls"][0]["name"] == "add"
    assert conv["messages"][2]["content"] == "42"
    assert conv["messages"][2]["tool_call_id"] == "call_add_0_0"
    assert conv["messages"][3]["content"] == "upstream: tools said: 42"
    assert all(m["status"] == "complete" for m in conv["messages"])
    # -c sends the whole exchange, tool messages included, upstream
    result = tool_project.run("chat", "-c", "--no-tools", "-m", "tooly", "again")
    assert result.exit_code == 0, result.stderr
    sent = upstream.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "add"


def test_several_calls_run_and_a_failing_tool_is_its_result(tool_project):
    result = tool_project.run("chat", "-m", "two", ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        "upstream: tools said: 42 | error: the tool 'boom' failed: RuntimeError: kaboom"
    )
    assert "tool: boom failed error: the tool 'boom' failed" in result.stderr


def test_a_tool_that_times_out_is_told_to_the_model(tool_project):
    result = tool_project.run("chat", "-m", "sleeper", ARGS)
    assert result.exit_code == 0, result.stderr
    assert "timed out after 0.2 s" in result.stdout


def test_the_step_limit_ends_the_reply_saying_so(tool_project, upstream):
    result = tool_project.run("chat", "-m", "looper", ARGS)
    assert result.exit_code == 0, result.stderr
    assert "after 3 tool steps" in result.stdout
    assert "chat.max_tool_steps" in result.stdout
    assert (tool_project.root / "ran.txt").read_text().count("add") == 3


def test_tool_results_are_masked(tool_project, upstream):
    result = tool_project.run("chat", "-m", "leaker", ARGS)
    assert result.exit_code == 0, result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr
    assert SECRET_KEY not in json.dumps(upstream.requests[-1]["body"])
    assert SECRET_KEY.encode() not in (tool_project.root / "history.db").read_bytes()


def test_a_tool_needing_approval_is_refused_without_a_terminal(tool_project):
    result = tool_project.run("chat", "-m", "deleter", ARGS)
    assert result.exit_code == 0, result.stderr
    assert "needs the user's approval" in result.stdout
    assert not (tool_project.root / "deleted.txt").exists()
    approved = tool_project.run("chat", "-m", "deleter", "--approve", ARGS)
    assert approved.exit_code == 0, approved.stderr
    assert approved.stdout.strip() == "upstream: tools said: deleted"
    assert (tool_project.root / "deleted.txt").exists()


def test_no_tools_offers_none_and_tool_flag_adds_patterns(tool_project, upstream):
    result = tool_project.run("chat", "--no-tools", ARGS)
    assert result.exit_code == 0, result.stderr
    assert "tools" not in upstream.requests[-1]["body"]
    assert result.stdout.strip() == f"upstream: {ARGS}"
    tool_project.settings("")  # (same settings)
    result = tool_project.run("chat", "-T", "nothing_*", ARGS)
    assert "-T nothing_*: no registered tool matches" in result.stderr


def test_chat_tools_unset_offers_no_tools(project, upstream):
    project.base_settings = TOOL_SETTINGS.format(url=upstream.url).replace(
        'tools = ["add", "boom", "sleepy", "leak", "delete_all"]', ""
    )
    project.settings()
    project.plugin("mytools", TOOLS_PLUGIN.replace("{secret}", "x"))
    upstream.reset()
    result = project.run("chat", ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"upstream: {ARGS}"
    assert "tools" not in upstream.requests[-1]["body"]
    result = project.run("chat", "-T", "add", ARGS)
    assert result.stdout.strip() == "upstream: tools said: 42"


# -- the Python API ------------------------------------------------------------------------------


def test_python_api_events_carry_tool_calls_and_results(tool_project):
    from ai_assistant import load_host
    from ai_assistant.chat import Chat, Done, ToolCall, ToolResult

    host = load_host()
    chat = Chat(host, "adder", tools=["add"])
    events = list(chat.events(ARGS))
    assert events[0] == ToolCall("call_add_0_0", "add", {"a": 2, "b": 40})
    assert events[1] == ToolResult("call_add_0_0", "add", "42")
    assert isinstance(events[-1], Done)
    assert chat.last_reply.text == "upstream: tools said: 42"
    assert [m.role for m in chat.history] == ["user", "assistant", "tool", "assistant"]
    asked = []
    chat = Chat(host, "deleter", tools=["*"], approve=lambda call: asked.append(call) or False)
    assert "needs the user's approval" in chat.send(ARGS).text
    assert [c.name for c in asked] == ["delete_all"]


# -- the gateway ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tool_gateway(tmp_path_factory, upstream):
    """A real `ai-assistant serve` with the tools plugin; alice may have the gateway run `add`,
    `boom` and `delete_all` (which needs approval, so never runs here); bob may run none."""
    from test_gateway import ALICE, BOB, _start, _stop

    root = tmp_path_factory.mktemp("toolgw")
    settings = TOOL_SETTINGS.format(url=upstream.url).replace(
        'tools = ["add", "boom", "sleepy", "leak", "delete_all"]', ""
    )
    (root / "settings.toml").write_text(
        '[default.plugins]\ndirs = ["plugins"]\n'
        + settings
        + '\n[default.server.tools]\nalice = ["add", "boom", "delete_*"]\n'
    )
    (root / ".secrets.toml").write_text(
        f'[default.models.openai_compatible]\napi_key = "{SECRET_KEY}"\n'
        f'[default.server.api_keys]\nalice = "{ALICE}"\nbob = "{BOB}"\n'
    )
    (root / ".secrets.toml").chmod(0o600)
    (root / "plugins").mkdir()
    (root / "plugins" / "mytools.py").write_text(TOOLS_PLUGIN.replace("{secret}", SECRET_KEY))
    proc, base, log = _start(root)
    yield {"url": base, "root": root, "alice": ALICE, "bob": BOB}
    _stop(proc)
    assert "Traceback" not in log.read_text()


def _openai(gateway, key: str):
    import openai

    return openai.OpenAI(base_url=f"{gateway['url']}/v1", api_key=key, max_retries=0)


def test_gateway_runs_server_tools_for_a_caller_allowed_them(tool_gateway, upstream):
    client = _openai(tool_gateway, tool_gateway["alice"])
    done = client.chat.completions.create(
        model="adder", messages=[{"role": "user", "content": ARGS}]
    )
    assert done.choices[0].message.content == "upstream: tools said: 42"
    assert done.choices[0].finish_reason == "stop"
    assert done.choices[0].message.tool_calls is None
    steps = done.model_extra["tool_steps"]
    assert [s["type"] for s in steps] == ["tool_call", "tool_result"]
    assert steps[0]["name"] == "add" and steps[1]["content"] == "42"
    # streaming: the official client reads the text; the steps are chunks it skips
    stream = client.chat.completions.create(
        model="adder", messages=[{"role": "user", "content": ARGS}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "upstream: tools said: 42"
    extra = [c.model_extra["tool_step"] for c in chunks if not c.choices]
    assert [s["type"] for s in extra] == ["tool_call", "tool_result"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_gateway_runs_no_tools_for_a_caller_without_patterns(tool_gateway, upstream):
    client = _openai(tool_gateway, tool_gateway["bob"])
    done = client.chat.completions.create(
        model="adder", messages=[{"role": "user", "content": ARGS}]
    )
    assert done.choices[0].message.content == f"upstream: {ARGS}"
    assert "tools" not in upstream.requests[-1]["body"]


def test_gateway_never_runs_a_tool_that_needs_approval(tool_gateway, upstream):
    client = _openai(tool_gateway, tool_gateway["alice"])
    done = client.chat.completions.create(
        model="deleter", messages=[{"role": "user", "content": ARGS}]
    )
    offered = [t["function"]["name"] for t in upstream.requests[-1]["body"]["tools"]]
    assert offered == ["add", "boom"]  # alice's delete_* matches, but it needs approval
    assert done.choices[0].message.content == f"upstream: {ARGS}"
    assert not (tool_gateway["root"] / "deleted.txt").exists()


CLIENT_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "the client's own add",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
    },
}


def test_client_tools_pass_through_to_the_client(tool_gateway, upstream):
    client = _openai(tool_gateway, tool_gateway["alice"])
    ran = tool_gateway["root"] / "ran.txt"
    before = ran.read_text() if ran.exists() else ""
    done = client.chat.completions.create(
        model="adder", messages=[{"role": "user", "content": ARGS}], tools=[CLIENT_TOOL]
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "add"
    assert json.loads(choice.message.tool_calls[0].function.arguments) == {"a": 2, "b": 40}
    assert upstream.requests[-1]["body"]["tools"][0]["function"]["description"] == (
        "the client's own add"
    )
    stream = client.chat.completions.create(
        model="adder",
        messages=[{"role": "user", "content": ARGS}],
        tools=[CLIENT_TOOL],
        stream=True,
    )
    chunks = [c for c in stream if c.choices]
    calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "add"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert (ran.read_text() if ran.exists() else "") == before  # the gateway ran nothing
    # the client runs it and sends the result back, as with OpenAI
    answer = client.chat.completions.create(
        model="adder",
        messages=[
            {"role": "user", "content": ARGS},
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "7"},
        ],
        tools=[CLIENT_TOOL],
    )
    assert answer.choices[0].message.content == "upstream: tools said: 7"


def test_tool_choice_reaches_the_model_and_is_checked(tool_gateway, upstream):
    client = _openai(tool_gateway, tool_gateway["alice"])
    choice = {"type": "function", "function": {"name": "add"}}
    done = client.chat.completions.create(
        model="adder",
        messages=[{"role": "user", "content": ARGS}],
        tools=[CLIENT_TOOL],
        tool_choice=choice,
    )
    assert done.choices[0].finish_reason == "tool_calls"
    assert upstream.requests[-1]["body"]["tool_choice"] == choice
    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="adder",
            messages=[{"role": "user", "content": ARGS}],
            tools=[CLIENT_TOOL],
            tool_choice={"type": "function", "function": {"name": "other"}},
        )
    assert refused.value.body["param"] == "tool_choice"


def test_bad_client_tools_are_refused(tool_gateway):
    import httpx

    response = httpx.post(
        tool_gateway["url"] + "/v1/chat/completions",
        json={
            "model": "adder",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "has.dot"}}],
        },
        headers={"Authorization": f"Bearer {tool_gateway['alice']}"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools[0].function.name"


def test_conversation_api_streams_tool_calls_and_results(tool_gateway):
    import httpx

    with httpx.stream(
        "POST",
        tool_gateway["url"] + "/api/chat/message",
        json={"modelId": "two", "messages": [{"role": "user", "content": ARGS}], "stream": True},
        headers={"Authorization": f"Bearer {tool_gateway['alice']}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    types = [e["type"] for e in events]
    assert types[:5] == ["start", "tool_call", "tool_call", "tool_result", "tool_result"]
    results = [e for e in events if e["type"] == "tool_result"]
    assert results[0]["content"] == "42" and results[0]["error"] is False
    assert results[1]["name"] == "boom" and results[1]["error"] is True
    text = "".join(e["content"] for e in events if e["type"] == "token")
    assert text.startswith("upstream: tools said: 42 | error:")
    conversation = httpx.get(
        tool_gateway["url"] + f"/api/chat/{events[0]['conversationId']}",
        headers={"Authorization": f"Bearer {tool_gateway['alice']}"},
        timeout=30,
    ).json()
    roles = [m["role"] for m in conversation["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]


# -- approval on a terminal ----------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "ran"), [("y", True), ("n", False)])
def test_approval_is_asked_on_a_terminal(tool_project, answer, ran):
    from test_chat_terminal import _finish, _spawn

    child = _spawn(tool_project, "chat", "-m", "deleter", ARGS)
    child.expect(r"run tool delete_all\(.*\)\? \[y/N\]")
    child.sendline(answer)
    out = _finish(child)
    assert (tool_project.root / "deleted.txt").exists() is ran
    if ran:
        assert "upstream: tools said: deleted" in out
    else:
        assert "needs the user's approval" in out


PLAIN_MODEL = """\
from ai_assistant import hookimpl


def build():
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    return FakeListChatModel(responses=["a plain answer"])  # no bind_tools


@hookimpl
def register_models(config, registry):
    registry.register("plain", factory=build)
"""


def test_a_model_that_cannot_call_tools_answers_without_them(tool_project):
    tool_project.plugin("plainmodel", PLAIN_MODEL)
    result = tool_project.run("chat", "-m", "plain", "hi")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "a plain answer"
    assert "model 'plain' cannot call tools: it answers without them" in result.stderr


BLOCKING_TOOLS = """\
import threading

from ai_assistant import hookimpl

NEVER = threading.Event()


def interrupt(text: str) -> str:
    \"\"\"Raises KeyboardInterrupt from inside the tool.\"\"\"
    raise KeyboardInterrupt


def stuck(text: str) -> str:
    \"\"\"Blocks for ever.\"\"\"
    NEVER.wait()
    return "never"


@hookimpl
def register_tools(config, registry):
    registry.register(interrupt)
    registry.register(stuck, timeout=0.5)
"""


def test_a_blocking_tool_raising_keyboardinterrupt_is_its_own_failure(project):
    project.plugin("blocking", BLOCKING_TOOLS)
    result = project.run("chat", "-m", "echo", "-T", "interrupt", '/tool interrupt {"text": "x"}')
    assert result.exit_code == 0, result.output
    assert "the tool 'interrupt' failed: it raised KeyboardInterrupt" in result.stdout
    # the loop survived: the same process answers again
    from ai_assistant import Chat, load_host

    chat = Chat(load_host(), "echo", tools=["interrupt"])
    assert "failed" in chat.send('/tool interrupt {"text": "y"}').text
    assert chat.send("still here").text == "echo: still here"


def test_a_blocking_tool_past_its_timeout_never_keeps_the_cli_from_exiting(project):
    import subprocess
    import sys

    project.plugin("blocking", BLOCKING_TOOLS)
    done = subprocess.run(
        [sys.executable, "-m", "ai_assistant", "chat", "--no-log", "-m", "echo", "-T", "stuck"],
        input='/tool stuck {"text": "x"}',
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,  # the tool never returns: without the fix the process never exits
    )
    assert done.returncode == 0, done.stderr
    assert "the tool 'stuck' timed out after 0.5 s" in done.stdout
