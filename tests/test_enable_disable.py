"""Plugins turned on and off by name; a disabled plugin is never imported."""

from __future__ import annotations

import json

import pytest

MARKING_PLUGIN = """\
from pathlib import Path

from ai_assistant import hookimpl

Path(__file__).with_suffix(".imported").touch()


@hookimpl
def register_models(config, registry):
    registry.register("{id}", factory=lambda: None)
"""


@pytest.fixture
def marked(project):
    project.plugin("noisy", MARKING_PLUGIN.format(id="noisy-model"))
    project.plugin("quiet", MARKING_PLUGIN.format(id="quiet-model"))
    return project


def _plugins(project, *args, env=None):
    result = project.run("plugins", "list", "--format", "json", *args, env=env)
    return {p["name"]: p for p in json.loads(result.stdout)}, result


def test_disabled_in_settings_is_never_imported(marked):
    marked.settings('[development.plugins]\ndisabled = ["noisy"]\n')
    plugins, _ = _plugins(marked)
    assert plugins["noisy"]["status"] == "disabled"
    assert plugins["noisy"]["reason"] == "listed in plugins.disabled"
    assert not (marked.plugins / "noisy.imported").exists()
    assert (marked.plugins / "quiet.imported").exists()
    ids = marked.run("models", "list", "--format", "ids").stdout.split()
    assert "noisy-model" not in ids and "quiet-model" in ids


@pytest.mark.parametrize("value", ["noisy", "noisy,ollama", '["noisy"]'])
def test_disabled_by_environment_variable(marked, value):
    plugins, _ = _plugins(marked, env={"AI_ASSISTANT_PLUGINS__DISABLED": value})
    assert plugins["noisy"]["status"] == "disabled"
    assert not (marked.plugins / "noisy.imported").exists()
    assert plugins["echo"]["status"] == "loaded"


def test_enabled_list_loads_only_those(marked):
    marked.settings('[development.plugins]\nenabled = ["quiet", "echo"]\n')
    plugins, _ = _plugins(marked)
    assert {n for n, p in plugins.items() if p["status"] == "loaded"} == {"quiet", "echo"}
    assert plugins["ollama"]["reason"] == "not listed in plugins.enabled"
    assert not (marked.plugins / "noisy.imported").exists()


def test_unknown_plugin_name_in_settings_is_a_warning(marked):
    marked.settings('[development.plugins]\ndisabled = ["olama"]\n')
    _, result = _plugins(marked)
    assert result.exit_code == 0
    assert (
        "warning: plugins.disabled: unknown plugin 'olama' (did you mean 'ollama'?)"
        in result.stderr
    )
    listing = marked.run("models", "list")
    assert "unknown plugin 'olama'" in listing.stderr
