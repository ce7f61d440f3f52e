"""Hooks are called through pluggy, one plugin at a time: ordering marks are honoured, wrappers
are refused with a reason, and pluggy's hook monitoring sees every call."""

from __future__ import annotations

import json

from ai_assistant import load_host

FIRST = """\
from ai_assistant import hookimpl

@hookimpl(tryfirst=True)
def register_models(config, registry):
    registry.register("shared", model=object(), origin="zz_first")
"""

PLAIN = """\
from ai_assistant import hookimpl

@hookimpl
def register_models(config, registry):
    registry.register("shared", model=object(), origin="aa_plain")
"""

WRAPPER = """\
from ai_assistant import hookimpl

@hookimpl(wrapper=True)
def register_models(config, registry):
    registry.register("wrapped", model=object())
    return (yield)
"""


def test_tryfirst_runs_before_a_plugin_found_earlier(project):
    project.plugin("aa_plain", PLAIN)
    project.plugin("zz_first", FIRST)
    result = project.run("models", "show", "shared", "--json")
    assert json.loads(result.stdout)["plugin"] == "zz_first"
    assert "already registered by plugin 'zz_first'" in result.stderr


def test_a_hook_wrapper_is_refused_with_a_reason_not_shown_loaded(project):
    project.plugin("wrapping", WRAPPER)
    listed = json.loads(project.run("plugins", "list", "--json").stdout)
    info = next(p for p in listed if p["name"] == "wrapping")
    assert info["status"] == "failed"
    assert "hook wrapper, which is not supported" in info["reason"]
    assert "wrapped" not in project.run("models", "list", "--format", "ids").stdout


def test_pluggy_hook_monitoring_sees_each_plugins_call(project):
    project.plugin("aa_plain", PLAIN)
    seen = []
    host = load_host()
    undo = host.plugins.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: seen.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kwargs: None,
    )
    try:
        host.plugins.register("register_models", type(host.registry)())
    finally:
        undo()
    assert ("register_models", ["aa_plain"]) in seen
    assert ("register_models", ["echo"]) in seen


def test_plugins_list_shows_what_each_plugin_provides_by_kind(project):
    project.plugin(
        "many",
        "from ai_assistant import hookimpl\n\n"
        "def shout(text: str) -> str:\n"
        "    '''Upper-case a text.'''\n"
        "    return text.upper()\n\n"
        "@hookimpl\n"
        "def register_models(config, registry):\n"
        "    registry.register('m1', factory=lambda: None)\n"
        "    registry.register('m2', factory=lambda: None)\n\n"
        "@hookimpl\n"
        "def register_tools(config, registry):\n"
        "    registry.register(shout)\n\n"
        "@hookimpl\n"
        "def register_ingestors(config, registry):\n"
        "    registry.register('notes', lambda source: [])\n",
    )
    table = project.run("plugins", "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("many "))
    assert "models: 2, tools: 1, ingestors: 1" in row
    listed = {p["name"]: p for p in json.loads(project.run("plugins", "list", "--json").stdout)}
    assert listed["many"]["provides"] == {
        "models": ["m1", "m2"],
        "tools": ["shout"],
        "ingestors": ["notes"],
    }
    assert listed["echo"]["provides"] == {"models": ["echo"]}


def test_a_plugin_failing_in_a_later_hook_is_withdrawn_from_every_registry(project):
    project.plugin(
        "halfway",
        "from ai_assistant import hookimpl\n\n"
        "@hookimpl\n"
        "def register_models(config, registry):\n"
        "    registry.register('halfway-model', factory=lambda: None)\n\n"
        "@hookimpl\n"
        "def register_tools(config, registry):\n"
        "    raise RuntimeError('tools broke')\n",
    )
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0
    assert result.stdout.split() == ["echo"]  # its model went with it; the others remain
    assert "plugin 'halfway' failed" in result.stderr and "tools broke" in result.stderr
