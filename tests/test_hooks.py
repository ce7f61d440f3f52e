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
