"""`models list` / `models show` and the Python API, as a user sees them."""

from __future__ import annotations

import json

from conftest import GOOD_PLUGIN, MY_PROVIDER_SETTINGS, REPO, imports_of, run

from ai_assistant import load_host


def test_committed_settings_list_models_offline_without_keys(monkeypatch):
    monkeypatch.chdir(REPO)
    result = run("models", "list")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert lines["echo"].split()[1] == "echo"
    assert lines["echo"].endswith("ready")
    assert "openai_compatible" in lines["gpt-4o-mini"]
    assert lines["gpt-4o-mini"].endswith("missing secret")
    assert "AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY" in result.stderr


def test_dropped_in_plugin_file_registers_models_attributed_to_it(project):
    project.settings(MY_PROVIDER_SETTINGS)
    project.plugin("my_provider", GOOD_PLUGIN)
    result = project.run("models", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    models = {m["id"]: m for m in json.loads(result.stdout)}
    assert models["mine-small"]["plugin"] == "my_provider"
    assert models["mine-large"]["endpoint"] == "http://127.0.0.1:8001/v1"
    assert models["echo"]["plugin"] == "echo"


def test_plugins_dir_option_adds_a_directory(project, tmp_path_factory):
    extra = tmp_path_factory.mktemp("extra")
    (extra / "my_provider.py").write_text(GOOD_PLUGIN)
    project.settings(MY_PROVIDER_SETTINGS)
    # the option works before and after the subcommand
    for args in (
        ["--plugins-dir", str(extra), "models", "list", "--format", "ids"],
        ["models", "--plugins-dir", str(extra), "list", "--format", "ids"],
        ["models", "list", "--format", "ids", "--plugins-dir", str(extra)],
    ):
        result = project.run(*args)
        assert result.stdout.split() == ["echo", "mine-small", "mine-large"]


def test_models_show_prints_details(project):
    result = project.run("models", "show", "echo")
    assert result.exit_code == 0
    assert "plugin  echo" in result.stdout
    assert "status  ready" in result.stdout


def test_unknown_model_id_suggests_close_matches_without_traceback(project):
    result = project.run("models", "show", "ecco")
    assert result.exit_code == 1
    assert "unknown model 'ecco'" in result.stderr
    assert "did you mean 'echo'?" in result.stderr
    assert "Traceback" not in result.output


def test_models_list_filters_by_plugin_and_says_when_empty(project):
    result = project.run("models", "list", "--plugin", "ollama")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "plugin 'ollama' registered no models" in result.stderr


def test_python_api_builds_a_model_lazily_and_caches_it(project):
    host = load_host()
    model = host.registry.get("echo")
    assert model._instance is None  # nothing built by listing
    chat = host.get_model("echo")
    assert host.get_model("echo") is chat
    assert chat.invoke("hello there").content == "echo: hello there"
    tokens = [chunk.content for chunk in chat.stream("one two three")]
    assert "".join(tokens) == "echo: one two three"
    assert len([t for t in tokens if t]) == 4  # streamed token by token


def test_using_a_model_with_a_missing_secret_says_where_to_set_it(project):
    project.settings("""
        [default.models.openai_compatible]
        models = [{ model_name = "gpt-4o-mini", endpoint = "https://api.openai.com/v1" }]
    """)
    host = load_host()
    try:
        host.get_model("gpt-4o-mini")
    except Exception as exc:  # noqa: BLE001
        assert "models.openai_compatible.api_key" in str(exc)
        assert "AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY" in exc.hint
    else:
        raise AssertionError("a model without its key must not build")


def test_openai_protocol_providers_build_their_models_with_settings(project):
    project.settings("""
        [default.models.openai_compatible]
        api_key = "sk-test-key-0001"
        timeout = 12
        models = [
          { model_name = "gpt-4o-mini", endpoint = "https://example.invalid/v1" },
          { model_name = "local", endpoint = "http://[::1]:8/v1", id = "llama", max_retries = 0 },
        ]
        [default.models.ollama]
        models = [{ model_name = "llama3.2" }]
        [default.models.azure_openai]
        endpoint = "https://res.openai.azure.com/"
        api_key = "az-test-key-0001"
        models = [{ deployment = "gpt-4o" }]
    """)
    host = load_host()
    remote = host.get_model("gpt-4o-mini")
    assert type(remote).__name__ == "OpenAIChatModel"
    assert remote.base_url == "https://example.invalid/v1"
    assert remote.timeout == 12
    assert remote.api_key.get_secret_value() == "sk-test-key-0001"
    local = host.get_model("llama")  # renamed with id; loopback needs no key
    assert local.model_name == "local" and local.max_retries == 0
    assert host.registry.get("llama").status == "ready"
    assert host.get_model("llama3.2").base_url == "http://localhost:11434/v1"
    azure = host.get_model("gpt-4o")
    assert type(azure).__name__ == "AzureChatOpenAI"
    assert azure.deployment_name == "gpt-4o"


def test_listing_models_never_imports_a_provider_sdk():
    heavy = ("langchain_openai", "openai", "langchain_core", "httpx", "httpx2")
    out, imported = imports_of(REPO, "models", "list", watched=heavy)
    assert "echo" in out and imported == []
