"""The host starts and stops: plugins' startup and shutdown hooks run once each, in order, on
every surface, and a plugin that fails to start is withdrawn alone."""

from __future__ import annotations

import asyncio

from ai_assistant import load_host

RECORDING = """\
import pathlib
from ai_assistant import hookimpl

LOG = pathlib.Path(__file__).with_name("{name}.log")


@hookimpl
def register_models(config, registry):
    registry.register("{name}-model", model=object())


@hookimpl{mark}
{kind}def startup(config):
    with LOG.open("a") as fh:
        fh.write("start\\n")
    {fail}


@hookimpl
{kind}def shutdown(config):
    with LOG.open("a") as fh:
        fh.write("stop\\n")
"""


def _plugin(project, name, kind="", fail="", mark=""):
    project.plugin(name, RECORDING.format(name=name, kind=kind, fail=fail, mark=mark))
    return project.plugins / f"{name}.log"


def test_a_command_starts_and_stops_the_plugins_once(project):
    log = _plugin(project, "pool")
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0, result.output
    assert "pool-model" in result.stdout
    assert log.read_text() == "start\nstop\n"


def test_async_hooks_are_awaited(project):
    log = _plugin(project, "apool", kind="async ")
    assert project.run("models", "list").exit_code == 0
    assert log.read_text() == "start\nstop\n"


def test_a_plugin_that_fails_to_start_is_withdrawn_alone(project):
    _plugin(project, "good")
    bad_log = _plugin(project, "bad", fail='raise RuntimeError("no pool")')
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0
    assert result.stdout.split() == ["echo", "good-model"]
    assert "plugin 'bad' failed: startup raised RuntimeError: no pool" in result.stderr
    assert bad_log.read_text() == "start\n"  # no shutdown for what never started


def test_shutdown_runs_in_the_reverse_order_of_startup(project):
    order = project.root / "order.log"
    for name, mark in (("a_early", "(tryfirst=True)"), ("b_late", "(trylast=True)")):
        project.plugin(
            name,
            f"""\
from ai_assistant import hookimpl

@hookimpl{mark}
def startup(config):
    open({str(order)!r}, "a").write("start {name}\\n")

@hookimpl
def shutdown(config):
    open({str(order)!r}, "a").write("stop {name}\\n")
""",
        )
    project.run("models", "list")
    assert order.read_text().split("\n")[:4] == [
        "start a_early",
        "start b_late",
        "stop b_late",
        "stop a_early",
    ]


def test_the_python_api_uses_async_with(project):
    log = _plugin(project, "pool")

    async def use():
        async with load_host() as host:
            assert log.read_text() == "start\n"
            assert "pool-model" in host.registry

    asyncio.run(use())
    assert log.read_text() == "start\nstop\n"


def test_a_command_without_lifecycle_plugins_starts_no_event_loop(project, monkeypatch):
    import threading

    before = {t.name for t in threading.enumerate()}
    host = load_host()
    assert not host.has_lifecycle
    host.start_blocking()
    assert {t.name for t in threading.enumerate()} == before
