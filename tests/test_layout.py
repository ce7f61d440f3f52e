"""The package's shape holds: its modules import one another without a cycle, and nothing
imports the outermost layers (``cli``, ``server``) but themselves and the CLI's entry point."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ai_assistant"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> the ai_assistant modules it imports (at any depth of its code: an import inside
    a function still ties the two together)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                # `from . import x` imports the submodule x when there is one
                targets = [f"{stem}.{a.name}" for a in node.names if f"{stem}.{a.name}" in modules]
                targets.append(stem)
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, if there is any (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            # a package's __init__ re-exporting its own modules is not a cycle with them
            if node.startswith(target + ".") or target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_package_has_no_import_cycles():
    cycle = _cycle(_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_nothing_imports_the_cli_or_the_server_but_themselves():
    for layer in ("ai_assistant.cli", "ai_assistant.server"):
        importers = {
            module
            for module, targets in _imports().items()
            if any(t == layer or t.startswith(layer + ".") for t in targets)
            and not (module == layer or module.startswith(layer + "."))
        }
        allowed = {"ai_assistant.__main__"} | (
            {"ai_assistant.cli.serve"} if layer == "ai_assistant.server" else set()
        )
        assert importers <= allowed, f"{layer} is imported by {sorted(importers - allowed)}"


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
