"""A start-up shortcut for the chat core: LangChain's tracers import langsmith, whose
``_internal/_v2_migration_utils`` imports the generated ``langsmith.types`` package (about 165
modules, 150 to 215 ms of every chat) for one type alias it uses only in annotations. Loading
that one module first makes the package import unnecessary. Measured in
``benchmarks/README.md`` (``bench_imports.py``): a one-shot ``chat -m echo`` 827 -> 610 ms.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_LEAF = "langsmith.types.run_select_field"


def preload_langsmith_leaf() -> None:
    """Load ``langsmith.types.run_select_field`` alone, before anything imports langsmith.
    A no-op without langsmith, once langsmith is imported, or if its files are laid out
    differently; it never changes what langsmith or LangChain do."""
    if _LEAF in sys.modules or "langsmith" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("langsmith")  # finds the package, imports nothing
        if spec is None or spec.origin is None:
            return
        leaf = Path(spec.origin).parent / "types" / "run_select_field.py"
        if not leaf.is_file():
            return
        leaf_spec = importlib.util.spec_from_file_location(_LEAF, leaf)
        if leaf_spec is None or leaf_spec.loader is None:
            return
        module = importlib.util.module_from_spec(leaf_spec)
        sys.modules[_LEAF] = module
        leaf_spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 - a start-up shortcut never breaks a command
        sys.modules.pop(_LEAF, None)
