"""Hostile and careless input to settings and plugins: secrets of any type never shown, code only
from folders somebody named, and every mistake one clear finding (issue: security audit)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from ai_assistant import load_host

NUMBER_KEY = "918273645501"
CREDS_URL = "http://deploy:pw-hunter-4242@127.0.0.1:9/v1"

MARKER_PLUGIN = """\
import pathlib
pathlib.Path(__file__).with_suffix(".imported").write_text("ran")
"""


# -- 1. secrets that are not strings -------------------------------------------------------------


@pytest.mark.parametrize("value", [NUMBER_KEY, "3.14159265", "true", "1e400"])
def test_a_secret_from_the_environment_is_text_whatever_it_looks_like(
    chat_project, monkeypatch, value
):
    monkeypatch.setenv("AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY", value)
    result = chat_project.run("chat", "-m", "good", "hello")
    assert result.exit_code == 0, result.output
    assert value not in result.stderr
    assert load_host().config.get("models.openai_compatible.api_key") == value


def test_a_numeric_key_from_the_environment_never_reaches_output_or_the_history(chat_project):
    env = {"AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY": NUMBER_KEY}
    result = chat_project.run("chat", "-m", "locked", "hello", env=env)
    assert NUMBER_KEY not in result.output + result.stderr
    rows = sqlite3.connect(chat_project.root / "history.db").execute("SELECT * FROM messages")
    assert NUMBER_KEY not in repr(rows.fetchall())


@pytest.mark.parametrize("where", ["settings.toml", ".secrets.toml"])
@pytest.mark.parametrize("literal", [NUMBER_KEY, "3.14159265", "true"])
def test_a_secret_written_as_a_number_or_boolean_is_refused_naming_key_and_file(
    project, where, literal
):
    text = f"[default.models.openai_compatible]\napi_key = {literal}\n"
    if where == "settings.toml":
        project.settings(text)
    else:
        project.write(".secrets.toml", text)
    result = project.run("models", "list")
    assert result.exit_code == 1
    assert "models.openai_compatible.api_key: must be a string: quote it" in result.stderr
    assert where in result.stderr
    assert literal not in result.output + result.stderr
    assert "unexpected" not in result.stderr


def test_the_text_of_a_numeric_secret_is_masked_everywhere(project):
    project.write(".secrets.toml", "[default.storage]\npin_code = 55667788\n")
    shown = project.run("config", "show", "--format", "json")
    assert "55667788" not in shown.stdout
    assert load_host().config.redact("failed with pin 55667788") == "failed with pin ********"


# -- 2. code only from folders somebody named ---------------------------------------------------


def _folder_with_stray_plugin(tmp_path, monkeypatch):
    stray = tmp_path / "contrib_providers"
    stray.mkdir()
    (stray / "p.py").write_text(MARKER_PLUGIN)
    monkeypatch.chdir(tmp_path)
    return stray / "p.imported"


@pytest.mark.parametrize("command", [["models", "list"], ["conversations", "list"]])
def test_no_plugin_runs_from_a_folder_nobody_named(tmp_path, monkeypatch, command):
    from conftest import run

    marker = _folder_with_stray_plugin(tmp_path, monkeypatch)
    result = run(*command)
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_a_parent_settings_file_of_another_project_is_not_adopted(tmp_path, monkeypatch):
    from conftest import run

    (tmp_path / "settings.toml").write_text('[default]\ndebug = true\nname = "other app"\n')
    (tmp_path / "contrib_providers").mkdir()
    (tmp_path / "contrib_providers" / "p.py").write_text(MARKER_PLUGIN)
    child = tmp_path / "work"
    child.mkdir()
    monkeypatch.chdir(child)
    assert run("models", "list").exit_code == 0
    assert not (tmp_path / "contrib_providers" / "p.imported").exists()
    shown = run("config", "show")
    assert f"# skipped {tmp_path / 'settings.toml'}: not an ai-assistant settings file" in (
        shown.stdout
    )
    assert "# files read: none" in shown.stdout
    verbose = run("-v", "models", "list")
    assert f"skipped {tmp_path / 'settings.toml'}" in verbose.stderr


def test_plugins_load_from_the_directories_the_settings_name(project):
    project.plugin("named", MARKER_PLUGIN)
    assert project.run("plugins", "list").exit_code == 0
    assert (project.plugins / "named.imported").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["config", "show"],
        ["conversations", "list"],
        ["conversations", "--help"],
        ["models", "--help"],
        ["chat", "--help"],
        ["serve", "--help"],
    ],
)
def test_commands_that_need_no_model_import_no_plugin(project, command):
    project.plugin("named", MARKER_PLUGIN)
    result = project.run(*command)
    assert result.exit_code == 0, result.output
    assert not (project.plugins / "named.imported").exists()


# -- 3. config validate isolated from bad plugins and bad tables -------------------------------

GOOD_FINDING = """\
from ai_assistant import hookimpl

@hookimpl
def validate_config(config):
    return [("models.good.key", "the good plugin's finding")]
"""


@pytest.mark.parametrize(
    "body, expected",
    [
        ("return 5", "validate_config returned int"),
        ('return [("a", "b", "c")]', "validate_config returned an item tuple"),
        (
            'yield ("models.bad.first", "found before failing")\n    raise RuntimeError("midway")',
            "validate_config raised RuntimeError: midway",
        ),
    ],
)
def test_a_plugins_bad_validate_answer_is_one_finding(project, body, expected):
    project.plugin("good", GOOD_FINDING)
    project.plugin(
        "bad",
        f"from ai_assistant import hookimpl\n\n@hookimpl\ndef validate_config(config):\n"
        f"    {body}\n",
    )
    result = project.run("config", "validate")
    assert result.exit_code == 1
    assert "unexpected" not in result.output + result.stderr
    assert f"error    plugin bad: {expected}" in result.stdout
    assert "error    models.good.key: the good plugin's finding" in result.stdout
    if "midway" in expected:
        assert "models.bad.first: found before failing" in result.stdout


@pytest.mark.parametrize(
    "text, key",
    [
        ("[default]\nserver = 5\n", "server"),
        ('[default]\nprompt = "x"\n', "prompt"),
        ('[default]\nplugins = "x"\n', "plugins"),
        ("[default.server]\nlimits = 5\n", "server.limits"),
        ("[default]\nchat = [1]\n", "chat"),
    ],
)
def test_a_host_table_that_is_not_a_table_is_one_finding(project, text, key):
    project.write("settings.local.toml", text)
    validate = project.run("config", "validate")
    assert validate.exit_code == 1
    assert f"error    {key}: must be a table" in validate.stdout
    listed = project.run("models", "list")
    # (a gateway key stops only `serve`: other commands warn)
    assert listed.exit_code == (0 if key.startswith("server.") else 1)
    assert f"{key}: must be a table" in listed.stderr
    assert "unexpected" not in validate.output + listed.stderr


# -- 4. credentials in URLs and in nested fields -------------------------------------------------


def test_url_credentials_are_masked_in_every_listing(project):
    project.settings(f"""
        [default.models.openai_compatible]
        endpoint = "{CREDS_URL}"
        models = [{{ model_name = "m" }}]
    """)
    outputs = [
        project.run("models", "list").stdout,
        project.run("models", "list", "--format", "json").stdout,
        project.run("models", "show", "m").stdout,
        project.run("models", "show", "m", "--format", "json").stdout,
        project.run("config", "show").stdout,
        project.run("config", "show", "--format", "json").stdout,
    ]
    for out in outputs:
        assert "pw-hunter-4242" not in out
        assert "deploy:********@127.0.0.1:9" in out


def test_credentials_in_a_url_query_are_masked(project):
    project.settings("""
        [default.storage]
        url = "postgresql://db.example/history?user=app&password=pw-in-query-77&sslmode=require"
    """)
    shown = project.run("config", "show").stdout
    assert "pw-in-query-77" not in shown
    assert "password=********&sslmode=require" in shown


@pytest.mark.parametrize(
    "url",
    [
        "https://blob.example/f?sv=2024&X-Amz-Signature=deadbeef01&x=1",
        "https://idp.example/cb#access_token=deadbeef01&state=1",
        "https://api.example/v1?client_secret=deadbeef01",
        "postgresql://db/x?sslpassword=deadbeef01",
        "https://api.example/v1?key=deadbeef01",
        "https://api.example/v1?pass=deadbeef01",
        "https://api.example/v1?apiKey=deadbeef01;other=2",
    ],
)
def test_every_credential_shaped_query_or_fragment_parameter_is_masked(project, url):
    project.settings(f'[default.storage]\nurl = "{url}"\n')
    shown = project.run("config", "show").stdout
    assert "deadbeef01" not in shown
    assert "********" in shown


LEAKY_PLUGIN = """\
from ai_assistant import hookimpl

@hookimpl
def register_models(config, registry):
    section = config.get("models.leaky")
    registry.register(
        "leaky",
        model=object(),
        note=f"uses {section['token_value']}",
        headers={"Authorization": "Bearer " + section["token_value"], "X-Trace": "on"},
        nested={"deeper": {"password": 12345678}},
    )
"""


def test_a_configured_secret_in_plugin_info_is_masked_nested_too(project):
    project.plugin("leaky", LEAKY_PLUGIN)
    project.settings("[default.models.leaky]\n")
    project.write(".secrets.toml", '[default.models.leaky]\ntoken_value = "tok-abcdef-9876"\n')
    for args in (["models", "show", "leaky", "--format", "json"], ["models", "show", "leaky"]):
        result = project.run(*args)
        assert result.exit_code == 0, result.output
        assert "tok-abcdef-9876" not in result.stdout
        assert "12345678" not in result.stdout
    info = json.loads(project.run("models", "show", "leaky", "--format", "json").stdout)
    assert info["note"] == "uses ********"
    assert info["headers"] == {"Authorization": "********", "X-Trace": "on"}
    assert info["nested"] == {"deeper": {"password": "********"}}


def test_api_models_masks_url_credentials_and_configured_secrets(project):
    import httpx

    from ai_assistant.server import create_app

    project.plugin("leaky", LEAKY_PLUGIN)
    project.settings(f"""
        [default.models.leaky]
        [default.models.openai_compatible]
        endpoint = "{CREDS_URL}"
        models = [{{ model_name = "m" }}]
    """)
    project.write(".secrets.toml", '[default.models.leaky]\ntoken_value = "tok-abcdef-9876"\n')
    app = create_app(load_host())

    async def fetch():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/api/models")).text

    import asyncio

    body = asyncio.run(fetch())
    assert "pw-hunter-4242" not in body and "tok-abcdef-9876" not in body
    assert "deploy:********@" in body


# -- 5. secrets at rest --------------------------------------------------------------------------


def test_a_secrets_file_others_can_read_is_warned_about_with_the_fix(project):
    secrets = project.write(".secrets.toml", '[default.models.echo]\napi_key = "sk-x-1234"\n')
    assert "chmod" not in project.run("models", "list").stderr
    secrets.chmod(0o644)
    listed = project.run("models", "list")
    assert listed.exit_code == 0
    assert f"{secrets}: holds secrets but is readable by others (mode 644)" in listed.stderr
    assert f"run chmod 600 {secrets}" in listed.stderr
    validate = project.run("config", "validate")
    assert f"warning  {secrets}: holds secrets but is readable by others" in validate.stdout


# -- 9. out-of-range settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, message",
    [
        ("[default.server]\nport = -1\n", "server.port", "must be between 1 and 65535"),
        ("[default.server]\nport = 70000\n", "server.port", "must be between 1 and 65535"),
        ("[default.server]\nport = true\n", "server.port", "must be a port number"),
        ("[default.server]\nworkers = 0\n", "server.workers", "must be at least 1"),
        (
            "[default.server.limits]\nmax_body_bytes = -5\n",
            "server.limits.max_body_bytes",
            "must be at least 1",
        ),
        (
            "[default.server.limits]\nrequest_timeout = 0\n",
            "server.limits.request_timeout",
            "must be more than 0",
        ),
    ],
)
def test_out_of_range_host_settings_are_refused_naming_the_key(project, text, key, message):
    project.write("settings.local.toml", text)
    result = project.run("config", "validate")
    assert result.exit_code == 1
    assert f"error    {key}: {message}" in result.stdout
    assert "settings.local.toml" in result.stdout


def test_a_negative_echo_delay_is_reported_and_the_model_skipped(project):
    project.write(
        "settings.local.toml", '[default.models.echo]\nmodels = [{ id = "slow", delay = -1 }]\n'
    )
    listed = project.run("models", "list", "--format", "ids")
    assert "slow" not in listed.stdout.split()
    assert "models.echo.models[1].delay: must be at least 0; this model is skipped" in (
        listed.stderr
    )
    validate = project.run("config", "validate")
    assert "error    models.echo.models[1].delay: must be at least 0" in validate.stdout


# -- 12. smaller ones ----------------------------------------------------------------------------


def test_a_plugin_raising_keyboard_interrupt_on_import_is_that_plugins_failure(project):
    project.plugin("grumpy", "raise KeyboardInterrupt\n")
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0, result.output
    assert "echo" in result.stdout
    assert "plugin 'grumpy' failed: import failed: KeyboardInterrupt" in result.stderr


def test_a_slow_plugin_import_is_named_and_timed(project):
    project.plugin("sluggish", "import time\ntime.sleep(0.6)\n")
    result = project.run("models", "list")
    assert "plugin 'sluggish': import took 0.6 s" in result.stderr
    assert "plugin 'echo'" not in result.stderr
    listed = project.run("plugins", "list", "--format", "json")
    times = {p["name"]: p["load_ms"] for p in json.loads(listed.stdout)}
    assert times["sluggish"] >= 600
    assert " ms " in project.run("plugins", "list").stdout


def test_format_naming_an_unset_variable_leaves_the_model_missing_its_secret(project):
    project.settings("""
        [default.models.openai_compatible]
        api_key = "@format {env[NOPE_OPENAI_KEY]}"
        models = [{ model_name = "m", endpoint = "https://api.example/v1" }]
    """)
    listed = project.run("models", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert {m["id"]: m["status"] for m in json.loads(listed.stdout)}["m"] == "missing secret"
    assert "environment variable NOPE_OPENAI_KEY: not set" in listed.stderr
    ready = project.run("models", "list", "--format", "json", env={"NOPE_OPENAI_KEY": "sk-1"})
    assert json.loads(ready.stdout)[1]["status"] == "ready"


def test_a_settings_file_that_is_not_utf8_is_named(project):
    path = project.root / "settings.local.toml"
    path.write_bytes(b'[default.prompt]\nsystem = "caf\xe9"\n')
    result = project.run("models", "list")
    assert result.exit_code == 1
    assert f"error: {path}: not UTF-8 text (byte 0xe9" in result.stderr
    assert "unexpected" not in result.stderr


def test_a_broken_json_environment_variable_is_named_without_its_value(project):
    result = project.run("models", "list", env={"AI_ASSISTANT_CHAT": "@json {broken-4711"})
    assert result.exit_code == 1
    assert "environment variable AI_ASSISTANT_CHAT: cannot parse its value" in result.stderr
    assert "broken-4711" not in result.stderr
    assert "unexpected" not in result.stderr


MANY_MODELS = """\
from ai_assistant import hookimpl

@hookimpl
def register_models(config, registry):
    for i in range(6000):
        registry.register(f"model-with-a-long-enough-id-{i:05d}", model=object())

@hookimpl
def validate_config(config):
    return [(f"models.many.k{i}", "x" * 60) for i in range(6000)]
"""


@pytest.mark.parametrize("command", ["config validate", "models list --format ids"])
def test_a_closed_pipe_ends_quietly(project, command):
    project.plugin("many", MANY_MODELS)
    script = textwrap.dedent(f"""\
        {sys.executable} -m ai_assistant {command} | head -1
    """)
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, cwd=project.root, timeout=60
    )
    assert result.stdout.strip()
    assert "BrokenPipe" not in result.stderr and "Traceback" not in result.stderr


QUOTING_FACTORY = """\
from ai_assistant import hookimpl


def build(section):
    raise ValueError(f"bad settings: {dict(section)}")  # as pydantic quotes its input


@hookimpl
def register_models(config, registry):
    section = config.get("models.quoting")
    registry.register("quoting", factory=lambda: build(section))
"""


def test_a_model_whose_build_error_quotes_its_key_never_shows_it(project):
    import asyncio

    import httpx

    from ai_assistant.server import create_app

    project.plugin("quoting", QUOTING_FACTORY)
    project.write(".secrets.toml", '[default.models.quoting]\napi_key = "sk-quoted-5150"\n')
    project.settings('[default.chat.fallbacks]\necho = ["quoting"]\n')
    cli = project.run("chat", "-m", "quoting", "hi")
    assert cli.exit_code == 1
    assert "could not be built" in cli.stderr and "sk-quoted-5150" not in cli.output + cli.stderr
    app = create_app(load_host())

    async def ask():
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            body = {"model": "quoting", "messages": [{"role": "user", "content": "hi"}]}
            return await client.post("/v1/chat/completions", json=body)

    response = asyncio.run(ask())
    assert response.status_code == 503
    assert "could not be built" in response.text and "sk-quoted-5150" not in response.text


# -- text that is not Unicode ---------------------------------------------------------------


def test_a_prompt_that_is_not_utf8_is_refused_naming_the_byte_and_nothing_is_stored(project):
    """A Latin-1 file piped in (or such an argument): Python hands the undecodable byte on as a
    lone surrogate, which no store and no terminal can write. One clear error, before anything
    is stored or sent."""
    from test_gateway import EXE

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AI_")}
    piped = subprocess.run(
        [EXE, "chat", "-m", "echo"], input=b"caf\xe9 au lait", capture_output=True, env=env
    )
    argument = subprocess.run([EXE, "chat", "-m", "echo", b"caf\xe9"], capture_output=True, env=env)
    for result in (piped, argument):
        stderr = result.stderr.decode()
        assert result.returncode == 1, stderr
        assert "not UTF-8 text: byte 0xE9 at character 4" in stderr, stderr
        assert "iconv" in stderr and "Traceback" not in stderr and "unexpected" not in stderr
    listed = project.run("conversations", "list", "--json")
    assert json.loads(listed.stdout) == []


def test_a_reply_with_half_a_surrogate_pair_is_shown_served_and_stored(chat_project):
    """A broken upstream sends half of an emoji (a lone surrogate, escaped in its JSON): the
    reply goes on with U+FFFD in its place, on the CLI, the gateway and in the history."""
    from starlette.testclient import TestClient
    from test_gateway import EXE

    from ai_assistant.server import create_app

    # (a timeout of its own: langchain_openai shares one HTTP client per endpoint and timeout
    # in a process, bound to the event loop that first used it; the CLI runs apart)
    good = '{ model_name = "ok", id = "good" },'
    models = f'{good}\n  {{ model_name = "surrogate", id = "half", timeout = 4.5 }},'
    chat_project.base_settings = chat_project.base_settings.replace(good, models)
    chat_project.settings()
    shown = subprocess.run(
        [EXE, "chat", "-m", "half", "hi"], cwd=chat_project.root, capture_output=True, text=True
    )
    expected = "half \ufffd of an emoji, a whole one: \U0001f600"
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == expected
    with TestClient(create_app(load_host())) as client:
        body = {"model": "half", "messages": [{"role": "user", "content": "x"}]}
        whole = client.post("/v1/chat/completions", json=body)
        assert whole.status_code == 200, whole.text
        assert whole.json()["choices"][0]["message"]["content"] == expected
        streamed = client.post("/v1/chat/completions", json={**body, "stream": True})
        assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
        lines = streamed.text.splitlines()
        events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
        deltas = [e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]]
        assert "".join(deltas) == expected
        chat = client.post(
            "/api/chat/message",
            json={"modelId": "half", "messages": [{"role": "user", "content": "x"}]},
        )
        assert chat.status_code == 200, chat.text
        stored = client.get(f"/api/chat/{chat.json()['conversationId']}").json()
        assert stored["messages"][-1]["content"] == expected
