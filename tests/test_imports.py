"""What a command imports: a chat pays for no import it does not use (see benchmarks/README.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = """
import sys
from ai_assistant import Chat, load_host
chat = Chat(load_host(), "echo")
assert chat.send("hi").text == "echo: hi"
print("langsmith.types" in sys.modules)
import langsmith.types, langsmith
from langsmith import Client, RunTree
print("still importable")
"""


def _leaf_exists() -> bool:
    spec = importlib.util.find_spec("langsmith")
    return (
        bool(spec and spec.origin)
        and (Path(spec.origin).parent / "types" / "run_select_field.py").is_file()
    )


@pytest.mark.skipif(not _leaf_exists(), reason="langsmith's layout has changed")
def test_a_chat_turn_does_not_import_langsmiths_generated_types(project):
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=project.root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False", "still importable"]
