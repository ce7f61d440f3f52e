"""`plugins new` writes a provider plugin that loads unedited."""

from __future__ import annotations

import json

from ai_assistant import load_host


def test_new_plugin_loads_unedited_and_registers_its_configured_models(project):
    result = project.run("plugins", "new", "acme_ai")
    assert result.exit_code == 0, result.output
    path = project.plugins / "acme_ai.py"
    assert path.exists()
    assert "wrote plugins/acme_ai.py" in result.stdout

    plugins = json.loads(project.run("plugins", "list", "--format", "json").stdout)
    acme = next(p for p in plugins if p["name"] == "acme_ai")
    assert acme["status"] == "loaded"
    assert sorted(acme["hooks"]) == ["register_models", "validate_config"]

    project.settings("""
        [default.models.acme_ai]
        endpoint = "https://api.acme.example/v1"
        models = [
          { model_name = "acme-1" },
          { model_name = "acme-2", endpoint = "http://127.0.0.1:8000/v1", api_key = "k-123456" },
          { model_name = "acme-3", endpoint = "http://127.0.0.1:8000/v1" },
        ]
    """)
    models = {
        m["id"]: m for m in json.loads(project.run("models", "list", "--format", "json").stdout)
    }
    assert models["acme-1"]["plugin"] == "acme_ai"
    assert models["acme-1"]["status"] == "missing secret"
    assert models["acme-2"]["status"] == "ready"
    assert models["acme-3"]["status"] == "ready"  # a loopback endpoint needs no key
    chat = load_host().get_model("acme-2")
    assert chat.model_name == "acme-2"
    assert chat.base_url == "http://127.0.0.1:8000/v1"


def test_new_plugin_refuses_bad_or_taken_names(project):
    bad = project.run("plugins", "new", "Acme-AI")
    assert bad.exit_code == 1
    assert "invalid plugin name 'Acme-AI'" in bad.stderr
    assert "try `ai-assistant plugins new acme_ai`" in bad.stderr
    assert project.run("plugins", "new", "echo").exit_code == 1
    assert project.run("plugins", "new", "acme").exit_code == 0
    again = project.run("plugins", "new", "acme")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert project.run("plugins", "new", "acme", "--force").exit_code == 0


def test_new_plugin_goes_to_plugins_dir_option_first(project, tmp_path_factory):
    target = tmp_path_factory.mktemp("mine")
    result = project.run("--plugins-dir", str(target), "plugins", "new", "mine")
    assert result.exit_code == 0
    assert (target / "mine.py").exists()
