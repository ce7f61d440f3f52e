"""One output convention: --format and --json on every command that lists or shows things, the
group alone lists, and every error in one style (issue: first run)."""

from __future__ import annotations

import json
import re

import pytest


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--json"],
        ["models", "list", "--json"],
        ["models", "list", "--format", "json"],
        ["models", "show", "echo", "--json"],
        ["config", "show", "--json"],
        ["plugins", "--json"],
        ["plugins", "list", "--format", "json"],
        ["secrets", "list", "--json"],
        ["conversations", "--json"],
        ["conversations", "list", "--json"],
        ["conversations", "list", "--format", "json"],
    ],
)
def test_json_is_spelled_the_same_everywhere(project, args):
    result = project.run(*args)
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout), (list, dict))


def test_conversation_show_takes_both_spellings(project):
    project.run("chat", "-m", "echo", "hello")
    conv_id = json.loads(project.run("conversations", "--json").stdout)[0]["id"]
    shown = project.run("conversations", "show", conv_id, "--json")
    assert json.loads(shown.stdout) == json.loads(
        project.run("conversations", "show", conv_id, "--format", "json").stdout
    )
    assert "echo: hello" in project.run("conversations", "show", conv_id).stdout


@pytest.mark.parametrize("group", ["models", "plugins", "conversations", "secrets"])
def test_a_group_alone_lists(project, group):
    project.run("chat", "-m", "echo", "hello")

    def shown(*args: str) -> str:  # (plugins list shows import times, which vary)
        text = re.sub(r"\d+ ms", "N ms", project.run(*args).output)
        return re.sub(r" +", " ", re.sub(r"-{2,}", "--", text))

    assert shown(group) == shown(group, "list")


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
