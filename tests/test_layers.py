"""Where settings come from (any folder, user-level under project), layers that do what they say,
and config mistakes that are caught instead of silently ignored (issue: first run)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from conftest import run

USER_SETTINGS = """\
[default.plugins]
dirs = ["my-plugins"]

[default.models.echo]
models = [{ id = "user-echo" }]

[default.chat]
default_model = "user-echo"
"""

MARKER_MODEL_PLUGIN = """\
from ai_assistant import hookimpl

@hookimpl
def register_models(config, registry):
    registry.register("from-user-plugin", model=object())
"""


@pytest.fixture
def user_dir() -> Path:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "ai-assistant"
    folder.mkdir(parents=True)
    return folder


def _ids(*args: str) -> list[str]:
    result = run("models", "list", "--format", "ids", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_an_empty_folder_says_where_it_looked_and_suggests_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("models", "list")
    assert result.exit_code == 0
    assert f"no settings file: looked for settings.toml in {tmp_path} and its parents" in (
        result.stderr
    )
    assert "ai-assistant init" in result.stderr


def test_user_level_settings_work_from_any_folder(tmp_path, monkeypatch, user_dir):
    (user_dir / "settings.toml").write_text(USER_SETTINGS)
    (user_dir / "my-plugins").mkdir()
    (user_dir / "my-plugins" / "mine.py").write_text(MARKER_MODEL_PLUGIN)
    elsewhere = tmp_path / "anywhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _ids() == ["user-echo", "from-user-plugin"]
    result = run("chat", "hello there", "--no-log")
    assert result.exit_code == 0, result.output
    assert "echo: hello there" in result.stdout
    assert "no settings file" not in result.stderr


def test_user_level_settings_are_a_base_layer_under_a_project(project, user_dir):
    (user_dir / "settings.toml").write_text(USER_SETTINGS)
    (user_dir / ".secrets.toml").write_text(
        '[default.models.openai_compatible]\napi_key = "sk-user-level-1234"\n'
    )
    (user_dir / ".secrets.toml").chmod(0o600)
    project.settings("""
        [default.models.openai_compatible]
        models = [{ model_name = "remote", endpoint = "https://api.example/v1" }]
    """)
    listed = json.loads(run("models", "list", "--format", "json").stdout)
    assert {m["id"]: m["status"] for m in listed} == {
        "user-echo": "ready",
        "echo": "ready",
        "remote": "ready",  # its key comes from the user-level .secrets.toml
    }
    shown = run("config", "show").stdout
    order = [line.strip("# ").strip() for line in shown.splitlines() if line.startswith("#   ")]
    assert order == [
        str(user_dir / "settings.toml"),
        str(user_dir / ".secrets.toml"),
        str(project.root / "settings.toml"),
    ]
    assert "sk-user-level-1234" not in shown


def test_a_model_in_settings_local_is_registered_once(project):
    project.write("settings.local.toml", '[default.models.echo]\nmodels = [{ id = "mine" }]\n')
    result = run("models", "list", "--format", "ids")
    assert result.stdout.split() == ["echo", "mine"]
    assert "registered twice" not in result.stderr


def test_a_later_layer_points_a_model_at_another_endpoint(project):
    project.settings("""
        [default.models.openai_compatible]
        api_key = "sk-test-0000"
        models = [{ model_name = "m", endpoint = "https://one.example/v1", timeout = 5 }]
    """)
    project.write(
        "settings.local.toml",
        '[default.models.openai_compatible]\nmodels = [{ model_name = "m", endpoint = '
        '"http://127.0.0.1:8000/v1" }]\n',
    )
    result = run("models", "list", "--format", "json")
    models = json.loads(result.stdout)
    assert [(m["id"], m.get("endpoint")) for m in models] == [
        ("echo", None),
        ("m", "http://127.0.0.1:8000/v1"),
    ]
    assert "registered twice" not in result.stderr


def test_a_table_with_dynaconf_merge_false_replaces_the_earlier_one(project):
    project.write(
        "settings.local.toml",
        '[default.models.echo]\ndynaconf_merge = false\nmodels = [{ id = "only-this" }]\n',
    )
    assert _ids() == ["only-this"]


def test_a_table_outside_an_environment_is_warned_about_on_every_command(project):
    project.write("settings.local.toml", '[models.echo]\nmodels = [{ id = "lost" }]\n')
    expected = (
        f"{project.root / 'settings.local.toml'}: [models.echo] is outside an environment, so "
        "it is ignored: write [default.models.echo]"
    )
    assert expected in run("models", "list").stderr
    assert expected in run("config", "show").stderr
    validate = run("config", "validate")
    assert f"warning  {expected}" in validate.stdout


@pytest.mark.parametrize(
    "text, env, finding",
    [
        ('[default.chat]\ndefault_modle = "echo"\n', {}, "chat.default_modle: not a setting"),
        ("[default.plugin]\nstrict = true\n", {}, "plugin: not a setting"),
        ("[default.server]\nprot = 8080\n", {}, "server.prot: not a setting"),
        (
            "[default.models.openai_compatable]\nx = 1\n",
            {},
            "models.openai_compatable: no plugin of this name",
        ),
        ("", {"AI_ASSISTANT_MODEL__ECHO__PREFIX": "x"}, "model: not a setting"),
    ],
)
def test_misspelled_keys_get_a_did_you_mean(project, text, env, finding):
    project.write("settings.local.toml", text)
    result = run("config", "validate", env=env)
    line = next((x for x in result.stdout.splitlines() if finding in x), None)
    assert line is not None, result.stdout
    assert line.startswith("warning") and "(did you mean '" in line


def test_a_boolean_port_from_the_environment_is_an_error(project):
    result = run("config", "validate", env={"AI_ASSISTANT_SERVER__PORT": "true"})
    assert result.exit_code == 1
    assert "error    server.port: must be a port number, like 8080, not a boolean" in (
        result.stdout
    )
    assert "environment variable AI_ASSISTANT_SERVER__PORT" in result.stdout


def test_config_show_prints_toml_that_pastes_back_as_is(project, tmp_path_factory):
    project.settings("""
        [default.prompt]
        system = "be brief"
        [default.chat.fallbacks]
        echo = ["echo"]
    """)
    shown = run("config", "show")
    assert shown.exit_code == 0
    other = tmp_path_factory.mktemp("pasted")
    (other / "settings.toml").write_text(shown.stdout)
    again = run("--settings", str(other / "settings.toml"), "config", "show", "--json")
    assert json.loads(again.stdout) == json.loads(run("config", "show", "--json").stdout)


@pytest.mark.parametrize(
    "key, expected",
    [
        ("prompt.system", '[default.prompt]\nsystem = "be brief"'),
        ("models.echo", '[default.models.echo]\nmodels = [\n    { id = "echo" },\n]'),
    ],
)
def test_config_show_key_prints_toml_never_a_python_repr(project, key, expected):
    project.settings('[default.prompt]\nsystem = "be brief"\n')
    result = run("config", "show", key)
    body = "\n".join(x for x in result.stdout.splitlines() if not x.startswith("#"))
    assert body == expected
    assert json.loads(run("config", "show", key, "--json").stdout) is not None


def test_plugin_dirs_are_relative_to_the_file_that_names_them(project, user_dir):
    (user_dir / "settings.toml").write_text(textwrap.dedent(USER_SETTINGS))
    (user_dir / "my-plugins").mkdir()
    (user_dir / "my-plugins" / "mine.py").write_text(MARKER_MODEL_PLUGIN)
    assert "from-user-plugin" in _ids()
    # the project names "plugins": its own folder, not the user folder's
    assert not (user_dir / "plugins").exists()
