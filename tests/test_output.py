"""One output convention: --format and --json on every command that lists or shows things, the
group alone lists, and every error in one style (issue: first run)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--json"],
        ["models", "list", "--json"],
        ["models", "list", "--format", "json"],
        ["models", "show", "echo", "--json"],
        ["config", "show", "--json"],
    ],
)
def test_json_is_spelled_the_same_everywhere(project, args):
    result = project.run(*args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)


def test_a_group_alone_lists(project):
    assert project.run("models").stdout == project.run("models", "list").stdout


@pytest.mark.parametrize(
    "args, message, hint",
    [
        (["models", "--jsn"], "error: no such option '--jsn'", "see `ai-assistant models --help`"),
        (
            ["models", "show"],
            "error: missing argument 'MODEL_ID'",
            "see `ai-assistant models show --help`",
        ),
        (["modles"], "error: no such command 'modles'", "see `ai-assistant --help`"),
        (["models", "show", "nope"], "error: unknown model 'nope'", "models list"),
    ],
)
def test_every_error_has_one_style(project, args, message, hint):
    result = project.run(*args)
    assert result.exit_code in (1, 2)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(message), result.stderr
    assert lines[1].startswith("  hint: ") and hint in lines[1]
    assert "Usage:" not in result.stderr and "Error:" not in result.stderr
