"""A separate distribution with an `ai_assistant` entry point, built and pip-installed for real,
then used through the installed `ai-assistant` command in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-provider"
version = "2.3.1"

[project.entry-points.ai_assistant]
acme = "acme_provider"
ghost = "acme_missing_module"
"""

MODULE = """\
import os
import pathlib

from ai_assistant import hookimpl

if os.environ.get("ACME_IMPORT_MARKER"):  # lets a test see whether it was imported at all
    pathlib.Path(os.environ["ACME_IMPORT_MARKER"]).write_text("imported")


@hookimpl
def register_models(config, registry):
    registry.register("acme-chat", factory=lambda: None, model_name="acme-chat-v2")
"""


@pytest.fixture(scope="module")
def installed_dist(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("acme-src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "acme_provider.py").write_text(MODULE)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    return target


def _ai_assistant() -> str:
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
    assert exe, "the ai-assistant console script is installed with the package"
    return exe


def _run(
    target: Path, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")},
        **(env or {}),
    }
    env["PYTHONPATH"] = str(target)
    return subprocess.run(
        [_ai_assistant(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_entry_point_plugin_is_listed_with_distribution_and_version(installed_dist, project):
    result = _run(installed_dist, project.root, "plugins", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    acme = plugins["acme"]
    assert acme["source"] == "entry point"
    assert (acme["distribution"], acme["version"]) == ("acme-provider", "2.3.1")
    assert acme["status"] == "loaded" and acme["hooks"] == ["register_models"]
    ghost = plugins["ghost"]
    assert ghost["status"] == "failed"
    assert ghost["reason"] == (
        "cannot load entry point: ModuleNotFoundError: No module named 'acme_missing_module'"
    )


def test_entry_point_models_appear_and_a_broken_one_is_one_warning(installed_dist, project):
    result = _run(installed_dist, project.root, "models", "list")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert rows["acme-chat"][:3] == ["acme-chat", "acme", "acme-chat-v2"]
    assert "echo" in rows
    assert result.stderr.splitlines() == [
        "warning: plugin 'ghost' failed: cannot load entry point: ModuleNotFoundError: "
        "No module named 'acme_missing_module'"
    ]
    table = _run(installed_dist, project.root, "plugins", "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("acme "))
    assert "entry point acme_provider (acme-provider)" in row
    assert row.split()[5:9] == ["2.3.1", "models:", "1", "loaded"]  # what it registered


def test_entry_point_can_be_disabled_without_import(installed_dist, project):
    project.write(
        "settings.toml",
        textwrap.dedent("""\
        [default.plugins]
        disabled = ["acme", "ghost"]
    """),
    )
    marker = project.root / "acme-imported"
    result = _run(
        installed_dist,
        project.root,
        "plugins",
        "list",
        "--format",
        "json",
        env={"ACME_IMPORT_MARKER": str(marker)},
    )
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["acme"]["status"] == plugins["ghost"]["status"] == "disabled"
    assert plugins["acme"]["version"] == "2.3.1"
    assert result.stderr == ""
    assert not marker.exists()  # disabled means never imported
    enabled = project.root / "settings.local.toml"
    enabled.write_text("[default.plugins]\ndisabled = []\n")
    project.write("settings.toml", "[default.plugins]\n")
    _run(installed_dist, project.root, "models", "list", env={"ACME_IMPORT_MARKER": str(marker)})
    assert marker.read_text() == "imported"  # (the marker works)
