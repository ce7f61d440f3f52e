"""First run from any folder: `init`, `secrets set|list|unset`, `plugins new`, through the CLI."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import run

from ai_assistant.plugins import bundled_plugins_dir
from ai_assistant.scaffold import SETTINGS_TEMPLATE

KEY = "models.openai_compatible.api_key"
VALUE = "sk-first-run-7f3a9c"

REMOTE_MODEL = """
[default.models.openai_compatible]
models = [{ model_name = "gpt-4o-mini", endpoint = "https://api.example.com/v1" }]
"""


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test here has HOME and XDG_CONFIG_HOME in temporary folders of its own: nothing
    of the developer's (~/.config/ai-assistant, git's settings) is read or written."""
    base = tmp_path_factory.mktemp("user")
    (base / "home").mkdir()
    monkeypatch.setenv("HOME", str(base / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    return base


@pytest.fixture
def home(private_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's folders, and an empty current folder ``work`` beside them."""
    work = private_home / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return private_home


def models(*args: str) -> dict[str, dict]:
    result = run(*args, "models", "list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    return {m["id"]: m for m in json.loads(result.stdout)}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init --------------------------------------------------------------------------------


def test_init_in_an_empty_folder_gives_a_ready_echo_model(home):
    result = run("init")
    assert result.exit_code == 0, result.stderr
    work = home / "work"
    assert (work / "settings.toml").read_text() == SETTINGS_TEMPLATE
    assert (work / "plugins").is_dir() and not any((work / "plugins").iterdir())
    assert "wrote settings.toml" in result.stdout
    assert "ai-assistant models list" in result.stdout  # the next commands
    assert f"ai-assistant secrets set {KEY}" in result.stdout
    assert not (work / ".gitignore").exists()  # not a git work tree

    assert models()["echo"]["status"] == "ready"
    validate = run("config", "validate")
    assert validate.exit_code == 0, validate.stdout + validate.stderr
    assert "ok: no problems found" in validate.stdout
    chat = run("chat", "--no-log", "hello")
    assert chat.exit_code == 0 and "echo: hello" in chat.stdout


def test_the_starter_file_explains_providers_and_where_keys_go(home):
    run("init")
    text = (home / "work" / "settings.toml").read_text()
    for section in ("openai_compatible", "azure_openai", "ollama"):
        assert f"# [default.models.{section}]" in text
    assert "Azure AI Foundry" in text
    assert "ai-assistant secrets set models.openai_compatible.api_key" in text
    assert ".secrets.toml" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def uncomment_providers(text: str) -> str:
    """The template with every commented-out provider section switched on."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("# [default.models."):
            inside = True
        elif not line.startswith("#"):
            inside = False
        out.append(re.sub(r"^# ?", "", line) if inside else line)
    return "\n".join(out) + "\n"


def test_each_commented_provider_section_is_valid_once_uncommented(home):
    run("init")
    settings = home / "work" / "settings.toml"
    settings.write_text(uncomment_providers(settings.read_text()))
    validate = run("config", "validate")
    assert validate.exit_code == 0, validate.stdout + validate.stderr
    assert "error" not in validate.stdout.replace("0 errors", "")
    found = models()
    assert {m["plugin"] for m in found.values()} == {
        "echo",
        "openai_compatible",
        "azure_openai",
        "ollama",
    }
    assert found["gpt-4o-mini"]["status"] == "missing secret"  # Azure AI Foundry, no key yet
    assert found["local-qwen"]["status"] == "ready"  # loopback: no key needed
    assert found["llama3.2"]["status"] == "ready"  # ollama: no key


def test_init_user_writes_the_user_level_settings_used_from_any_folder(home):
    result = run("init", "--user")
    assert result.exit_code == 0, result.stderr
    user_dir = home / "config" / "ai-assistant"
    assert (user_dir / "settings.toml").read_text() == SETTINGS_TEMPLATE
    assert (user_dir / "plugins").is_dir()
    assert str(user_dir / "settings.toml") in result.stdout
    assert not (home / "work" / "settings.toml").exists()

    assert models()["echo"]["status"] == "ready"  # from a folder with no settings of its own
    assert run("config", "validate").exit_code == 0
    assert run("init", "--user").exit_code == 1  # never overwritten


def test_init_in_a_git_work_tree_ignores_secrets_and_local_settings(home, monkeypatch):
    repo = home / "work"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("__pycache__/\nsettings.local.toml")  # no final newline
    sub = repo / "ops"
    sub.mkdir()
    monkeypatch.chdir(sub)
    result = run("init")
    assert result.exit_code == 0, result.stderr
    assert (repo / ".gitignore").read_text() == (
        "__pycache__/\nsettings.local.toml\n.secrets.toml\n"
    )
    assert "added .secrets.toml to" in result.stdout
    assert not (sub / ".gitignore").exists()
    ignored = subprocess.run(
        ["git", "check-ignore", "ops/.secrets.toml", "ops/settings.local.toml"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["ops/.secrets.toml", "ops/settings.local.toml"]

    (sub / "settings.toml").unlink()
    again = run("init")
    assert again.exit_code == 0
    assert (repo / ".gitignore").read_text().count(".secrets.toml") == 1
    assert "already lists" in again.stdout


def test_init_never_overwrites(home):
    settings = home / "work" / "settings.toml"
    settings.write_text("# mine\n")
    result = run("init")
    assert result.exit_code == 1
    assert str(settings) in result.stderr and "already exists" in result.stderr
    assert "edit it" in result.stderr
    assert settings.read_text() == "# mine\n"
    assert not (home / "work" / "plugins").exists()


def test_init_keeps_an_existing_plugins_folder(home):
    plugins = home / "work" / "plugins"
    plugins.mkdir()
    (plugins / "mine.py").write_text("# mine\n")
    result = run("init")
    assert result.exit_code == 0
    assert (plugins / "mine.py").read_text() == "# mine\n"
    assert "already there" in result.stdout


# --- secrets -----------------------------------------------------------------------------


@pytest.fixture
def remote(project):
    """A project with a model that needs a key."""
    project.base_settings = REMOTE_MODEL
    project.settings()
    return project


def test_secrets_set_from_stdin_makes_a_missing_secret_model_ready(remote):
    assert models()["gpt-4o-mini"]["status"] == "missing secret"
    result = run("secrets", "set", KEY, input=VALUE + "\n")
    assert result.exit_code == 0, result.stderr
    assert VALUE not in result.stdout + result.stderr
    assert f"set {KEY} in .secrets.toml" in result.stdout

    path = remote.root / ".secrets.toml"
    assert tomllib.loads(path.read_text()) == {
        "default": {"models": {"openai_compatible": {"api_key": VALUE}}}  # one newline stripped
    }
    assert "[default.models.openai_compatible]" in path.read_text()
    assert mode(path) == 0o600
    assert models()["gpt-4o-mini"]["status"] == "ready"
    assert VALUE not in run("config", "show").stdout


def test_secrets_set_keeps_other_keys_and_comments_and_makes_the_file_private(remote):
    path = remote.root / ".secrets.toml"
    path.write_text(
        "# gateway keys: rotate monthly\n"
        "[default.server.api_keys]\n"
        'alice = "alice-key-1234"  # alice\'s laptop\n'
        "\n"
        "[production.models.openai_compatible]\n"
        'api_key = "prod-key-5678"\n'
    )
    path.chmod(0o644)
    result = run("secrets", "set", KEY, input=VALUE)
    assert result.exit_code == 0, result.stderr
    text = path.read_text()
    assert "# gateway keys: rotate monthly" in text and "# alice's laptop" in text
    assert tomllib.loads(text) == {
        "default": {
            "server": {"api_keys": {"alice": "alice-key-1234"}},
            "models": {"openai_compatible": {"api_key": VALUE}},
        },
        "production": {"models": {"openai_compatible": {"api_key": "prod-key-5678"}}},
    }
    assert mode(path) == 0o600
    assert not list(remote.root.glob(".secrets.toml.*"))  # no temporary file left

    replaced = run("secrets", "set", KEY, input="sk-second-value\n")
    assert replaced.exit_code == 0 and f"replaced {KEY}" in replaced.stdout
    assert tomllib.loads(path.read_text())["default"]["models"]["openai_compatible"] == {
        "api_key": "sk-second-value"
    }


def test_secrets_set_with_env_writes_that_environment(remote):
    result = run("--env", "production", "secrets", "set", KEY, input=VALUE)
    assert result.exit_code == 0, result.stderr
    data = tomllib.loads((remote.root / ".secrets.toml").read_text())
    assert data == {"production": {"models": {"openai_compatible": {"api_key": VALUE}}}}
    assert models("--env", "production")["gpt-4o-mini"]["status"] == "ready"
    assert models()["gpt-4o-mini"]["status"] == "missing secret"


def test_secrets_set_can_fix_a_key_that_breaks_the_settings(remote):
    path = remote.write(".secrets.toml", "[default.models.openai_compatible]\napi_key = 1234\n")
    assert run("models", "list").exit_code == 1  # an unquoted key is refused
    result = run("secrets", "set", KEY, input=VALUE)
    assert result.exit_code == 0, result.stderr
    assert "1234" not in path.read_text()
    assert models()["gpt-4o-mini"]["status"] == "ready"


def test_secrets_list_shows_keys_and_where_never_values(remote, monkeypatch):
    run("secrets", "set", KEY, input=VALUE)
    run("secrets", "set", "server.api_keys.ci-bot", input="ci-bot-key-9999")
    monkeypatch.setenv("AI_ASSISTANT_MODELS__AZURE_OPENAI__API_KEY", "azure-key-4321")
    monkeypatch.setenv("AI_ASSISTANT_CHAT__DEFAULT_MODEL", "echo")  # not a secret

    table = run("secrets", "list")
    assert table.exit_code == 0, table.stderr
    for secret in (VALUE, "ci-bot-key-9999", "azure-key-4321"):
        assert secret not in table.stdout + table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["KEY", "SET", "IN"]
    assert any(KEY in line and ".secrets.toml" in line for line in lines)
    assert any("server.api_keys.ci-bot" in line for line in lines)
    assert any(
        "models.azure_openai.api_key" in line
        and "AI_ASSISTANT_MODELS__AZURE_OPENAI__API_KEY" in line
        for line in lines
    )
    assert "default_model" not in table.stdout

    for args in (["--format", "json"], ["--json"]):
        listed = json.loads(run("secrets", "list", *args).stdout)
        assert {(item["key"], item["file"], item["variable"]) for item in listed} == {
            (KEY, str(remote.root / ".secrets.toml"), None),
            ("server.api_keys.ci-bot", str(remote.root / ".secrets.toml"), None),
            ("models.azure_openai.api_key", None, "AI_ASSISTANT_MODELS__AZURE_OPENAI__API_KEY"),
        }


def test_secrets_list_with_nothing_set_says_how_to_set_one(remote):
    result = run("secrets", "list")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert f"ai-assistant secrets set {KEY}" in result.stderr
    assert json.loads(run("secrets", "list", "--json").stdout) == []


def test_secrets_unset_removes_the_key_and_the_tables_it_leaves_empty(remote):
    path = remote.write(".secrets.toml", "# keep me\n[default.server.api_keys]\nbob = 'b-key'\n")
    run("secrets", "set", KEY, input=VALUE)
    assert models()["gpt-4o-mini"]["status"] == "ready"

    result = run("secrets", "unset", KEY)
    assert result.exit_code == 0, result.stderr
    assert f"removed {KEY}" in result.stdout
    text = path.read_text()
    assert "openai_compatible" not in text and "models" not in text
    assert "# keep me" in text
    assert tomllib.loads(text) == {"default": {"server": {"api_keys": {"bob": "b-key"}}}}
    assert mode(path) == 0o600
    assert models()["gpt-4o-mini"]["status"] == "missing secret"

    again = run("secrets", "unset", KEY)
    assert again.exit_code == 1
    assert KEY in again.stderr and "not set" in again.stderr


def test_secrets_unset_names_where_else_the_key_is_set(remote, monkeypatch):
    monkeypatch.setenv("AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY", "env-key-1234")
    result = run("secrets", "unset", KEY)
    assert result.exit_code == 1
    assert "AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY" in result.stderr
    assert "env-key-1234" not in result.stderr


@pytest.mark.parametrize(
    "key_path", ["models..api_key", ".api_key", "models.openai compatible.api_key", "a.b[0]", ""]
)
def test_a_bad_key_path_is_refused_with_the_form(remote, key_path):
    for command in ("set", "unset"):
        result = run("secrets", command, key_path, input=VALUE)
        assert result.exit_code != 0
        assert "models.openai_compatible.api_key" in result.stderr  # the form, by example
    assert not (remote.root / ".secrets.toml").exists()


@pytest.mark.parametrize("value", ["", "\n", "   \n"])
def test_an_empty_value_is_refused(remote, value):
    result = run("secrets", "set", KEY, input=value)
    assert result.exit_code == 1
    assert "empty value" in result.stderr and KEY in result.stderr
    assert not (remote.root / ".secrets.toml").exists()


def test_secrets_set_warns_about_a_misspelled_section(remote):
    result = run("secrets", "set", "models.openai_compatable.api_key", input=VALUE)
    assert result.exit_code == 0
    assert "did you mean 'openai_compatible'?" in result.stderr


def test_secrets_set_with_no_settings_file_says_to_run_init(home):
    result = run("secrets", "set", KEY, input=VALUE)
    assert result.exit_code == 1
    assert "ai-assistant init" in result.stderr
    assert not (home / "work" / ".secrets.toml").exists()


def test_secrets_go_beside_the_user_level_settings(home):
    run("init", "--user")
    result = run("secrets", "set", KEY, input=VALUE)
    assert result.exit_code == 0, result.stderr
    path = home / "config" / "ai-assistant" / ".secrets.toml"
    assert tomllib.loads(path.read_text())["default"]["models"]["openai_compatible"]["api_key"]
    assert mode(path) == 0o600
    assert not (home / "work" / ".secrets.toml").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_secrets_set_on_a_terminal_prompts_without_echoing(remote):
    pexpect = pytest.importorskip("pexpect")
    exe = Path(sys.executable).parent / "ai-assistant"
    child = pexpect.spawn(
        str(exe), ["secrets", "set", KEY], cwd=str(remote.root), encoding="utf-8", timeout=20
    )
    child.expect("value for models.openai_compatible.api_key")
    child.sendline(VALUE)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert VALUE not in child.before  # the prompt hid what was typed
    data = tomllib.loads((remote.root / ".secrets.toml").read_text())
    assert data["default"]["models"]["openai_compatible"]["api_key"] == VALUE


# --- plugins new -------------------------------------------------------------------------


def test_plugins_new_writes_a_provider_kit_plugin_that_loads_unedited(home):
    run("init")
    result = run("plugins", "new", "acme_ai")
    assert result.exit_code == 0, result.stderr
    path = home / "work" / "plugins" / "acme_ai.py"
    source = path.read_text()
    assert "from ai_assistant.provider_kit import" in source
    assert "ProviderSection(" in source and "secret=True" in source
    assert "ai-assistant secrets set models.acme_ai.api_key" in result.stdout

    plugins = {p["name"]: p for p in json.loads(run("plugins", "list", "--json").stdout)}
    assert plugins["acme_ai"]["status"] == "loaded"
    assert sorted(plugins["acme_ai"]["hooks"]) == ["register_models", "validate_config"]
    assert run("config", "validate").exit_code == 0


def test_the_new_plugin_reads_section_defaults_model_overrides_and_secrets(home):
    run("init")
    run("plugins", "new", "acme_ai")
    settings = home / "work" / "settings.toml"
    settings.write_text(
        settings.read_text()
        + """
[default.models.acme_ai]
endpoint = "https://api.acme.example/v1"
timeout = 30
models = [
  { model_name = "acme-1" },
  { model_name = "acme-2", timeout = 5, id = "fast" },
  { model_name = "acme-3", endpoint = "http://127.0.0.1:8000/v1", id = "local" },
]
"""
    )
    found = models()
    assert found["acme-1"]["plugin"] == "acme_ai"
    assert found["acme-1"]["status"] == "missing secret"
    assert found["fast"]["status"] == "missing secret"
    assert found["local"]["status"] == "ready"  # loopback: no key needed

    assert run("secrets", "set", "models.acme_ai.api_key", input=VALUE).exit_code == 0
    found = models()
    assert all(found[i]["status"] == "ready" for i in ("acme-1", "fast", "local"))

    from ai_assistant import load_host

    host = load_host()
    fast = host.get_model("fast")
    assert fast.model_name == "acme-2" and fast.timeout == 5  # the model's own
    assert fast.base_url == "https://api.acme.example/v1"  # the section's
    assert host.get_model("acme-1").timeout == 30
    assert host.get_model("local").base_url == "http://127.0.0.1:8000/v1"


def test_the_new_plugins_validate_config_hook_reports_mistakes(home):
    run("init")
    run("plugins", "new", "acme_ai")
    settings = home / "work" / "settings.toml"
    settings.write_text(
        settings.read_text()
        + """
[default.models.acme_ai]
endpoint = "ftp://api.acme.example"
timout = 30
models = [{ model_name = "acme-1" }, { id = "no-name" }]
"""
    )
    result = run("config", "validate")
    assert result.exit_code == 1
    assert "models.acme_ai.timout: unknown key (did you mean 'timeout'?)" in result.stdout
    assert "models.acme_ai.models[1].model_name: is required" in result.stdout
    assert "endpoint must be an http(s) URL" in result.stdout


def test_plugins_new_refuses_the_installed_package(project):
    for target in (bundled_plugins_dir(), bundled_plugins_dir() / "sub"):
        result = project.run("plugins", "new", "acme_ai", "--dir", str(target))
        assert result.exit_code == 1
        assert "installed package" in result.stderr
        assert "--dir" in result.stderr and "plugins directory" in result.stderr
        assert not (target / "acme_ai.py").exists()

    import ai_assistant

    package = Path(ai_assistant.__file__).parent
    result = project.run("plugins", "new", "acme_ai", "--dir", str(package))
    assert result.exit_code == 1 and "installed package" in result.stderr
    assert not (package / "acme_ai.py").exists()


def test_plugins_new_skips_a_bundled_directory_named_in_settings(project):
    bundled = bundled_plugins_dir()
    project.write("settings.toml", f'[default.plugins]\ndirs = ["{bundled}"]\n')
    result = project.run("plugins", "new", "acme_ai")
    assert result.exit_code == 1
    assert "installed package" in result.stderr and "--dir" in result.stderr
    assert not (bundled / "acme_ai.py").exists()

    project.write("settings.toml", f'[default.plugins]\ndirs = ["{bundled}", "plugins"]\n')
    result = project.run("plugins", "new", "acme_ai")
    assert result.exit_code == 0, result.stderr
    assert (project.plugins / "acme_ai.py").exists()
    assert not (bundled / "acme_ai.py").exists()


def test_secrets_set_user_writes_the_user_level_file_from_a_project(home):
    assert run("secrets", "set", "--user", KEY, input=VALUE).exit_code == 1  # no init --user yet
    run("init", "--user")
    run("init")  # a project in the current folder
    user_secrets = home / "config" / "ai-assistant" / ".secrets.toml"

    result = run("secrets", "set", "--user", KEY, input=VALUE)
    assert result.exit_code == 0, result.stderr
    assert str(user_secrets) in result.stdout
    assert mode(user_secrets) == 0o600
    assert not (home / "work" / ".secrets.toml").exists()
    listed = json.loads(run("secrets", "--json").stdout)  # the group alone lists
    assert [(item["key"], item["file"]) for item in listed] == [(KEY, str(user_secrets))]

    assert run("secrets", "unset", KEY).exit_code == 1  # not in the project's file
    assert run("secrets", "unset", "--user", KEY).exit_code == 0
    assert json.loads(run("secrets", "list", "--json").stdout) == []


def test_plugins_new_prefers_the_project_folder_to_the_user_level_one(home):
    run("init", "--user")
    run("init")
    result = run("plugins", "new", "acme_ai")
    assert result.exit_code == 0, result.stderr
    assert (home / "work" / "plugins" / "acme_ai.py").exists()
    assert not (home / "config" / "ai-assistant" / "plugins" / "acme_ai.py").exists()


def test_a_symlinked_secrets_file_stays_a_link(remote, tmp_path_factory):
    dotfiles = tmp_path_factory.mktemp("dotfiles")
    real = dotfiles / "ai-secrets.toml"
    real.write_text("# from my dotfiles\n")
    real.chmod(0o600)
    link = remote.root / ".secrets.toml"
    link.symlink_to(real)
    assert run("secrets", "set", KEY, input=VALUE).exit_code == 0
    assert link.is_symlink()
    assert "# from my dotfiles" in real.read_text() and VALUE in real.read_text()
    assert mode(real) == 0o600
    assert models()["gpt-4o-mini"]["status"] == "ready"


def test_secrets_list_names_the_variable_a_format_value_comes_from(remote, monkeypatch):
    remote.write(
        "settings.local.toml",
        '[default.models.openai_compatible]\napi_key = "@format {env[ACME_OPENAI_KEY]}"\n',
    )
    monkeypatch.delenv("ACME_OPENAI_KEY", raising=False)
    unset = run("secrets", "list")
    assert "settings.local.toml from $ACME_OPENAI_KEY (not set)" in unset.stdout
    assert models()["gpt-4o-mini"]["status"] == "missing secret"

    monkeypatch.setenv("ACME_OPENAI_KEY", "acme-env-key-2468")
    listed = run("secrets", "list")
    assert listed.stdout.splitlines()[-1].endswith("settings.local.toml from $ACME_OPENAI_KEY")
    assert "acme-env-key-2468" not in listed.stdout + listed.stderr
    (item,) = json.loads(run("secrets", "list", "--json").stdout)
    assert item["from_variables"] == ["ACME_OPENAI_KEY"] and item["unset_variables"] == []
    assert models()["gpt-4o-mini"]["status"] == "ready"


def test_secrets_set_refuses_a_path_that_starts_with_the_environment_table(remote):
    result = remote.run("secrets", "set", "default.models.openai_compatible.api_key", input="sk-1")
    assert result.exit_code == 1
    assert "starts with the environment table 'default'" in result.stderr
    assert "secrets set models.openai_compatible.api_key" in result.stderr
    secrets = remote.root / ".secrets.toml"
    assert not secrets.exists() or "default.default" not in secrets.read_text()
