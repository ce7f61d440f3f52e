"""One broken plugin is reported by name and never hides the others."""

from __future__ import annotations

import json

import pytest

GOOD = """\
from ai_assistant import hookimpl

@hookimpl
def register_models(config, registry):
    registry.register("good-model", factory=lambda: None, endpoint="http://127.0.0.1:1/v1")
"""

BROKEN = {
    "syntax_error": (
        "def register_models(config, registry)\n    pass\n",
        "import failed: SyntaxError: expected ':' (syntax_error.py line 1)",
    ),
    "raises_on_import": (
        "raise RuntimeError('cannot reach the vault')\n",
        "import failed: RuntimeError: cannot reach the vault (raises_on_import.py line 1)",
    ),
    "hook_raises": (
        "from ai_assistant import hookimpl\n\n@hookimpl\n"
        "def register_models(config, registry):\n"
        "    registry.register('lost', factory=lambda: None)\n"
        "    raise KeyError('endpoint')\n",
        "register_models raised KeyError: 'endpoint' (hook_raises.py line 6)",
    ),
    "extra_argument": (
        "from ai_assistant import hookimpl\n\n@hookimpl\n"
        "def register_models(config, registry, logger):\n    pass\n",
        "register_models() takes 'logger', which the hook does not provide "
        "(it provides: config, registry)",
    ),
    "misspelled_hook": (
        "from ai_assistant import hookimpl\n\n@hookimpl\n"
        "def register_model(config, registry):\n    pass\n",
        "implements unknown hook 'register_model' (did you mean 'register_models'?)",
    ),
    "unmarked_hook": (
        "import pluggy\nhookimpl = pluggy.HookimplMarker('other_project')\n\n"
        "@hookimpl\ndef register_models(config, registry):\n    pass\n",
        "register_models() is not marked as a hook: decorate it with @hookimpl "
        "(from ai_assistant import hookimpl)",
    ),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_plugin_is_reported_and_other_models_still_listed(project, name):
    source, reason = BROKEN[name]
    project.plugin("good", GOOD)
    project.plugin(name, source)

    listing = project.run("models", "list", "--format", "ids")
    assert listing.exit_code == 0
    assert listing.stdout.split() == ["echo", "good-model"]
    assert listing.stderr.splitlines() == [f"warning: plugin {name!r} failed: {reason}"]

    plugins = {
        p["name"]: p for p in json.loads(project.run("plugins", "list", "--format", "json").stdout)
    }
    assert plugins[name]["status"] == "failed"
    assert plugins[name]["reason"] == reason
    assert plugins["good"]["status"] == "loaded"
    assert plugins["good"]["hooks"] == ["register_models"]

    table = project.run("plugins", "list")
    row = next(line for line in table.stdout.splitlines() if line.startswith(name + " "))
    assert "failed" in row and reason in row
    assert "Traceback" not in table.output + listing.output


@pytest.mark.parametrize("how", ["flag", "setting"])
def test_strict_mode_makes_a_plugin_failure_an_error(project, how):
    project.plugin("raises_on_import", BROKEN["raises_on_import"][0])
    if how == "flag":
        result = project.run("--strict", "models", "list")
    else:
        project.settings("[development.plugins]\nstrict = true\n")
        result = project.run("models", "list")
    assert result.exit_code == 1
    assert "strict mode" in result.stderr
    assert "raises_on_import" in result.stderr
    assert project.run("--strict", "plugins", "list").exit_code == 1


def test_duplicate_model_id_is_refused_naming_both_plugins_and_first_stays(project):
    project.plugin("a_first", GOOD)
    project.plugin("b_second", GOOD + '    registry.register("other", factory=lambda: None)\n')
    result = project.run("models", "list", "--format", "json")
    models = {m["id"]: m["plugin"] for m in json.loads(result.stdout)}
    assert models["good-model"] == "a_first"
    assert models["other"] == "b_second"  # its other models still register
    assert (
        "warning: plugin 'b_second': model id 'good-model' is already registered by plugin "
        "'a_first'"
    ) in result.stderr
    plugins = {
        p["name"]: p for p in json.loads(project.run("plugins", "list", "--format", "json").stdout)
    }
    assert plugins["b_second"]["status"] == "loaded"
    assert "already registered by plugin 'a_first'" in plugins["b_second"]["problems"][0]
    assert project.run("--strict", "models", "list").exit_code == 1


def test_a_failing_hook_withdraws_what_it_registered(project):
    project.plugin("hook_raises", BROKEN["hook_raises"][0])
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["echo"]  # the others are still there; 'lost' is not
    assert "plugin 'hook_raises' failed: register_models raised KeyError" in result.stderr


def test_plugin_that_exits_on_import_does_not_take_the_host_down(project):
    project.plugin("exits", "import sys\nsys.exit(3)\n")
    project.plugin("good", GOOD)
    result = project.run("models", "list", "--format", "ids")
    assert result.exit_code == 0
    assert "good-model" in result.stdout
    assert "plugin 'exits' failed: import failed: SystemExit: 3" in result.stderr


def test_two_plugins_with_one_name_load_once(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    (other / "good.py").write_text(GOOD.replace("good-model", "impostor"))
    project.plugin("good", GOOD)
    result = project.run("--plugins-dir", str(other), "plugins", "list", "--format", "json")
    rows = [p for p in json.loads(result.stdout) if p["name"] == "good"]
    assert [r["status"] for r in rows] == ["loaded", "failed"]
    assert "name already used" in rows[1]["reason"]
    # the same directory given twice loads once
    again = project.run(
        "--plugins-dir", str(project.plugins), "plugins", "list", "--format", "json"
    )
    assert [p["name"] for p in json.loads(again.stdout)].count("good") == 1


def test_plugin_commands_are_added_and_cannot_take_a_builtin_name(project):
    project.plugin(
        "greeter",
        """\
        import click
        from ai_assistant import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command()
            @click.argument("who")
            def hello(who):
                click.echo(f"hello {who}")

            @cli.command()
            def models():
                click.echo("hijacked")
    """,
    )
    hello = project.run("hello", "world")
    assert hello.stdout == "hello world\n"
    assert "plugin 'greeter': command 'models' is already taken; not added" in hello.stderr
    assert "hello" in project.run("--help").stdout
    assert "hijacked" not in project.run("models", "list", "--format", "ids").stdout
    plugins = project.run("plugins", "list", "--format", "json")
    greeter = next(p for p in json.loads(plugins.stdout) if p["name"] == "greeter")
    assert greeter["hooks"] == ["register_commands"]
    assert greeter["problems"] == ["command 'models' is already taken; not added"]
