"""Layered settings, secrets that never show, and `config show` / `config validate`."""

from __future__ import annotations

import json

import pytest

from ai_assistant import load_host

SECRET = "sk-live-7f3a9c1e5b"

OPENAI_MODELS = """
[default.models.openai_compatible]
timeout = 30
models = [
  { model_name = "gpt-4o-mini", endpoint = "https://api.openai.com/v1" },
  { model_name = "gpt-5-mini", endpoint = "https://api.openai.com/v1" },
]
"""


def _ids_and_status(project, *args, env=None):
    result = project.run("models", "list", "--format", "json", *args, env=env)
    assert result.exit_code == 0, result.output
    return {m["id"]: m["status"] for m in json.loads(result.stdout)}


def test_key_in_secrets_file_does_not_wipe_model_list_in_settings(project):
    project.settings(OPENAI_MODELS)
    project.write(".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{SECRET}"\n')
    assert _ids_and_status(project) == {
        "echo": "ready",
        "gpt-4o-mini": "ready",
        "gpt-5-mini": "ready",
    }
    host = load_host()
    assert host.config.get("models.openai_compatible.timeout") == 30
    assert SECRET not in repr(host.get_model("gpt-4o-mini"))  # LangChain keeps it a SecretStr


def test_key_in_environment_variable_does_not_wipe_model_list(project):
    project.settings(OPENAI_MODELS)
    env = {"AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY": SECRET}
    assert _ids_and_status(project, env=env) == {
        "echo": "ready",
        "gpt-4o-mini": "ready",
        "gpt-5-mini": "ready",
    }
    assert _ids_and_status(project)["gpt-4o-mini"] == "missing secret"


def test_per_model_key_overrides_the_section_key(project):
    project.settings("""
        [default.models.openai_compatible]
        models = [
          { model_name = "a", endpoint = "https://one.example/v1", api_key = "sk-model-key-1" },
          { model_name = "b", endpoint = "https://two.example/v1" },
        ]
    """)
    assert _ids_and_status(project) == {"echo": "ready", "a": "ready", "b": "missing secret"}


def test_secrets_never_appear_in_any_output(project):
    project.settings(
        OPENAI_MODELS + "\n[default.models.openai_compatible.default_headers]\n"
        f'X-Trace = "team-a"\nX-Forward = "Bearer {SECRET}"\n'
    )
    project.write(
        ".secrets.toml",
        f"""
        [default.models.openai_compatible]
        api_key = "{SECRET}"
        [default.server.api_keys]
        alice = "alice-key-123456"
        [default.custom]
        webhook = "https://hooks.example/T000/very-private"
    """,
    )
    project.plugin(
        "leaky",
        """\
        from ai_assistant import hookimpl

        @hookimpl
        def register_models(config, registry):
            key = config.get("models.openai_compatible.api_key")
            registry.register("leaky", factory=lambda: None, api_key=key, token=key)
            raise ValueError("rejected key " + key)
    """,
    )
    outputs = []
    for args in (
        ["config", "show"],
        ["config", "show", "--format", "json"],
        ["config", "show", "models.openai_compatible"],
        ["config", "validate"],
        ["models", "list"],
        ["models", "list", "--format", "json"],
        ["models", "show", "gpt-4o-mini"],
        ["models", "show", "gpt-4o-mini", "--format", "json"],
        ["plugins", "list"],
        ["plugins", "list", "--format", "json"],
    ):
        result = project.run(*args)
        outputs.append(result.output)
    text = "\n".join(outputs)
    for secret in (SECRET, "alice-key-123456", "very-private"):
        assert secret not in text
    assert "team-a" in text  # ordinary values still show
    assert "rejected key ********" in text  # the plugin's error is shown, masked
    host = load_host()
    assert SECRET not in repr(host) + repr(host.registry) + repr(host.config)
    assert SECRET not in repr(host.registry.get("gpt-4o-mini"))


def test_config_show_prints_merged_settings_with_secrets_masked(project):
    project.settings(OPENAI_MODELS)
    project.write(".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{SECRET}"\n')
    result = project.run("config", "show", "--format", "json")
    data = json.loads(result.stdout)
    section = data["models"]["openai_compatible"]
    assert section["api_key"] == "********"
    assert len(section["models"]) == 2
    assert project.run("config", "show", "models.openai_compatible.timeout").stdout.endswith("30\n")
    toml = project.run("config", "show").stdout
    assert 'api_key = "********"' in toml
    assert "# environment: development" in toml


def test_environments_switch_with_env_option_and_variable(project):
    project.settings("""
        [production.models.echo]
        models = [{ id = "echo-prod" }]
    """)
    assert set(_ids_and_status(project)) == {"echo"}
    assert set(_ids_and_status(project, "--env", "production")) == {"echo", "echo-prod"}
    assert set(_ids_and_status(project, env={"AI_ASSISTANT_ENV": "production"})) == {
        "echo",
        "echo-prod",
    }


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[default.plugins\n", "settings.toml: invalid TOML: Expected ']'"),
        ("[default.plugins]\ndirs = 5\n", "plugins.dirs: must be a list of directories"),
        (
            '[default.plugins]\nstrict = "yes"\n',
            "plugins.strict: must be true or false, not a string",
        ),
        ('[default]\nmodels = "echo"\n', "models: must be a table of provider sections"),
    ],
)
def test_bad_settings_give_one_clear_error_naming_file_or_key(project, content, expected):
    project.write("settings.toml", content)
    result = project.run("models", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    verbose = project.run("-v", "models", "list")
    assert "Traceback" in verbose.stderr


def test_wrong_type_names_the_file_that_set_it(project):
    project.write("settings.local.toml", '[default.plugins]\nstrict = "yes"\n')
    result = project.run("models", "list")
    assert "plugins.strict: must be true or false, not a string (set in " in result.stderr
    assert "settings.local.toml" in result.stderr
    env = project.run("models", "list", env={"AI_ASSISTANT_PLUGINS__STRICT": "5"})
    assert "(set in environment variable AI_ASSISTANT_PLUGINS__STRICT)" in env.stderr


def test_missing_settings_file_is_named(project):
    result = project.run("--settings", "nowhere.toml", "models", "list")
    assert result.exit_code == 1
    assert "error: settings file not found: nowhere.toml" in result.stderr


def test_settings_option_reads_a_file_elsewhere_with_secrets_beside_it(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("conf")
    (other / "prod.toml").write_text(OPENAI_MODELS)
    (other / ".secrets.toml").write_text(
        f'[default.models.openai_compatible]\napi_key = "{SECRET}"\n'
    )
    statuses = _ids_and_status(project, "--settings", str(other / "prod.toml"))
    assert statuses == {"gpt-4o-mini": "ready", "gpt-5-mini": "ready"}


def test_config_validate_reports_every_problem_at_once_without_values(project):
    project.settings("""
        [default.models.openai_compatible]
        api_key = 123456789
        timeout = "soon"
        models = [
          { model_name = "ok", endpoint = "https://api.example/v1" },
          { modle_name = "typo", endpoint = "https://api.example/v1" },
          "not-a-table",
        ]
        [default.models.nobody]
        x = 1
    """)
    project.write("settings.local.toml", "[default.plugins]\ndisabled = 7\n")
    result = project.run("config", "validate")
    assert result.exit_code == 1
    out = result.stdout
    for expected in (
        "error    plugins.disabled: must be a list of plugin names",
        "error    models.openai_compatible.api_key: must be a string",
        "error    models.openai_compatible.timeout: must be an integer or a number",
        "error    models.openai_compatible.models[1].modle_name: unknown key (did you mean "
        "'model_name'?)",
        "error    models.openai_compatible.models[1].model_name: is required",
        "error    models.openai_compatible.models[2]: must be a table",
        "warning  models.nobody: no plugin of this name is loaded",
    ):
        assert expected in out, out
    assert "123456789" not in out
    assert "6 errors" in out


def test_config_validate_passes_committed_style_settings_with_a_warning(project):
    project.settings(OPENAI_MODELS)
    result = project.run("config", "validate")
    assert result.exit_code == 0, result.output
    assert "warning  models.openai_compatible.api_key: not set" in result.stdout
    assert project.run("--strict", "config", "validate").exit_code == 1
    project.write(".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{SECRET}"\n')
    ok = project.run("config", "validate")
    assert "ok: no problems found" in ok.stdout


def test_nested_keys_from_environment_variables_are_known_keys(project, monkeypatch):
    monkeypatch.setenv("AI_ASSISTANT_SERVER__PORT", "9000")
    monkeypatch.setenv("AI_ASSISTANT_CHAT__DEFAULT_MODEL", "echo")
    result = project.run("config", "validate")
    assert result.exit_code == 0, result.output
    assert "not a setting" not in result.output and "PORT" not in result.output


def test_a_bad_gateway_key_stops_serve_only(project, monkeypatch):
    monkeypatch.setenv("AI_ASSISTANT_SERVER__PORT", "99999")
    listed = project.run("models", "list", "--format", "ids")
    assert listed.exit_code == 0 and listed.stdout.split() == ["echo"]
    assert "server.port: must be between 1 and 65535" in listed.stderr
    assert "`serve` will not start until it is fixed" in listed.stderr
    served = project.run("serve")
    assert served.exit_code == 1
    assert "server.port: must be between 1 and 65535" in served.stderr
    assert "AI_ASSISTANT_SERVER__PORT" in served.stderr
