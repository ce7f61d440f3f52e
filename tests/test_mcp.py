"""MCP servers from settings: real FastMCP servers (tests/mcp_servers/calc.py) over stdio and
streamable HTTP, their tools listed and run through the CLI and the Python API, sessions held
and reconnected, failures reported while other tools keep working, secrets masked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SECRET_KEY

pytest.importorskip("langchain_mcp_adapters")

CALC = Path(__file__).parent / "mcp_servers" / "calc.py"
ARGS = '{"a": 2, "b": 40}'

MODELS = """
[default.models.openai_compatible]
endpoint = "{url}"
api_key = "unused"
max_retries = 0
timeout = 10
models = [
  {{ model_name = "use-calc_add", id = "adder" }},
  {{ model_name = "use-calc_whoami", id = "who" }},
  {{ model_name = "use-calc_fail", id = "failer" }},
  {{ model_name = "use-web_header", id = "header" }},
]
[default.chat]
default_model = "adder"
tools = ["calc_*", "web_*"]
"""

STDIO = f"""
[default.mcp.servers.calc]
transport = "stdio"
command = "{sys.executable}"
args = ["{CALC}"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def http_server():
    """calc.py over streamable HTTP on a free 127.0.0.1 port: its /mcp URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(CALC), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the MCP HTTP server did not start")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def mcp_project(project, upstream):
    project.base_settings = MODELS.format(url=upstream.url) + STDIO
    project.settings()
    upstream.reset()
    return project


def test_stdio_server_tools_are_listed_under_its_prefix(mcp_project):
    result = mcp_project.run("tools", "list", "--json")
    assert result.exit_code == 0, result.stderr
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert {"calc_add", "calc_whoami", "calc_fail", "calc_die"} <= set(tools)
    assert tools["calc_add"]["source"] == "mcp:calc"
    assert tools["calc_add"]["description"] == "Add two integers."
    shown = json.loads(mcp_project.run("tools", "show", "calc_add", "--json").stdout)
    assert shown["args_schema"]["properties"]["a"]["type"] == "integer"


def test_chat_runs_an_mcp_tool_over_stdio(mcp_project):
    result = mcp_project.run("chat", ARGS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "upstream: tools said: 42"
    assert "tool: calc_add -> 42" in result.stderr


def test_an_mcp_tool_error_is_the_tool_result(mcp_project):
    result = mcp_project.run("chat", "-m", "failer", "{}")
    assert result.exit_code == 0, result.stderr
    assert "error: the tool 'calc_fail' failed: " in result.stdout
    assert "calc cannot do that" in result.stdout
    assert "tool: calc_fail failed" in result.stderr


def test_a_failing_server_is_reported_and_other_tools_keep_working(mcp_project):
    mcp_project.settings(
        """
        [default.mcp.servers.broken]
        transport = "stdio"
        command = "/nonexistent/mcp-server"
        [default.mcp.servers.nourl]
        transport = "streamable_http"
        """
    )
    listed = mcp_project.run("tools", "list", "--json")
    assert listed.exit_code == 0
    names = {t["name"] for t in json.loads(listed.stdout)}
    assert "calc_add" in names
    assert "plugin 'mcp:broken' failed: could not start" in listed.stderr
    assert "plugin 'mcp:nourl' failed: mcp.servers.nourl.url is required" in listed.stderr
    chat = mcp_project.run("chat", ARGS)
    assert chat.exit_code == 0, chat.stderr
    assert chat.stdout.strip() == "upstream: tools said: 42"
    assert "mcp:broken" in chat.stderr


def test_sessions_are_held_and_reconnected_after_a_failure(mcp_project):
    from ai_assistant import load_host
    from ai_assistant.chat import Chat

    host = load_host()
    try:
        chat = Chat(host, "who")
        first = chat.send("{}").text
        second = chat.send("{}").text
        assert first.startswith("upstream: tools said: pid ")
        assert first == second  # one server process: the session was held, not reopened
        pid = int(first.split("pid ")[1].split()[0])
        os.kill(pid, 9)
        third = chat.send("{}").text
        assert third.startswith("upstream: tools said: pid ")
        assert third != first  # a new process, reached by reconnecting
    finally:
        host.stop_blocking()


def test_env_values_from_secrets_reach_the_server_masked(mcp_project):
    mcp_project.write(
        ".secrets.toml", f'[default.mcp.servers.calc.env]\nCALC_TOKEN = "{SECRET_KEY}"\n'
    )
    from ai_assistant import load_host
    from ai_assistant.chat import Chat

    host = load_host()
    try:
        reply = Chat(host, "who").send("{}").text
    finally:
        host.stop_blocking()
    assert "token " in reply
    assert SECRET_KEY not in reply  # the server got it; what comes back is masked
    assert "token -" not in reply
    shown = mcp_project.run("config", "show")
    assert SECRET_KEY not in shown.stdout + shown.stderr


def test_streamable_http_server_with_a_secret_header(project, upstream, http_server):
    project.base_settings = MODELS.format(url=upstream.url) + (
        f'\n[default.mcp.servers.web]\ntransport = "streamable_http"\nurl = "{http_server}"\n'
    )
    project.settings()
    project.write(
        ".secrets.toml",
        f'[default.mcp.servers.web.headers]\nX-Calc-Key = "{SECRET_KEY}"\n',
    )
    listed = project.run("tools", "--json")
    assert listed.exit_code == 0, listed.stderr
    tools = {t["name"]: t for t in json.loads(listed.stdout)}
    assert tools["web_add"]["source"] == "mcp:web"
    result = project.run("chat", "-m", "header", '{"name": "x-calc-key"}')
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "upstream: tools said: ********"  # sent, and masked back
    assert SECRET_KEY not in result.stderr


def test_a_chat_without_tools_and_models_list_import_no_mcp(mcp_project):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    for args in (["models", "list"], ["chat", "-m", "echo", "--no-tools", "hi"]):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "ai_assistant", *args],
            cwd=mcp_project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        modules = {line.split("|")[-1].strip() for line in done.stderr.splitlines()}
        assert not {m for m in modules if m.split(".")[0] in ("mcp", "langchain_mcp_adapters")}


def test_the_gateway_holds_mcp_sessions_from_start_up_and_runs_their_tools(mcp_project):
    import httpx
    from test_gateway import _start, _stop

    mcp_project.settings('\n[default.server.tools]\ndefault = ["calc_*"]\n')
    proc, base, log = _start(mcp_project.root)
    try:
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not get ready"
            time.sleep(0.1)
        answers = []
        for _ in range(2):
            response = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "who", "messages": [{"role": "user", "content": "{}"}]},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            answers.append(body["choices"][0]["message"]["content"])
            assert [s["type"] for s in body["tool_steps"]] == ["tool_call", "tool_result"]
        assert answers[0].startswith("upstream: tools said: pid ")
        assert answers[0] == answers[1]  # one server process for both requests
    finally:
        _stop(proc)
    assert "Traceback" not in log.read_text()
