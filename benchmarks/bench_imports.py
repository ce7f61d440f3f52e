"""Where a one-shot `ai-assistant chat` spends its start-up: `python -X importtime`, repeated,
as medians per module; and what one upstream fix in langsmith would save, measured.

    python benchmarks/bench_imports.py                  # 7 runs of each case
    python benchmarks/bench_imports.py --runs 11 --what-if-runs 21

Cases: `ai-assistant chat -m echo hi --no-log`; `ai-assistant chat -m fast hi --no-log` against
the fake upstream (tests/fake_openai.py, on 127.0.0.1); and `llm -m echo hi -n` when
bench_vs_llm.py has made benchmarks/.venv-llm. Figures are importtime's cumulative microseconds
(a module with everything it imported first), as milliseconds; importtime's own bookkeeping
inflates them somewhat, so compare them with each other, not with wall clocks.

The what-if: langsmith's ``_internal/_v2_migration_utils.py`` imports ``RunSelectField`` from the
generated ``langsmith.types`` package only for two annotations (the module has ``from __future__
import annotations``), and that package's ``__init__`` imports some 150 generated modules. The
script copies the installed langsmith to a temporary folder, moves that import under
``TYPE_CHECKING`` there, and times whole `chat` processes with the copy first on PYTHONPATH, as
installed, and with a local workaround that needs no change to langsmith (the one leaf module,
``langsmith/types/run_select_field.py``, loaded by itself before anything imports langsmith, so
the package's ``__init__`` never runs), interleaved. Nothing installed is changed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LLM = REPO / "benchmarks" / ".venv-llm" / "bin" / "llm"
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")
WATCH = [
    "ai_assistant",
    "ai_assistant.cli",
    "ai_assistant.chat",
    "click",
    "pluggy",
    "dynaconf",
    "pydantic",
    "langchain_core.messages",
    "langchain_core.language_models.chat_models",
    "langchain_core.tracers.event_stream",
    "langsmith.run_trees",
    "langsmith.client",
    "langsmith.schemas",
    "langsmith._internal._v2_migration_utils",
    "langsmith.types",
    "opentelemetry.sdk.trace",
    "requests",
    "langchain_core.tracers.context",
    "langsmith.run_helpers",
    "openai",
    "openai.types",
    "langchain_openai",
    "llm.cli",
    "sqlite_utils",
]
FIX_FROM = "from langsmith.types.run_select_field import RunSelectField\n"


def importtime(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """{module: (depth, cumulative us)} of one run, plus '(all imports)': the sum of self times."""
    done = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr[-800:]}")
    found, total = {}, 0
    for match in LINE.finditer(done.stderr):
        self_us, cumulative, indent, name = match.groups()
        total += int(self_us)
        found.setdefault(name, ((len(indent) - 1) // 2, int(cumulative)))
    found["(all imports)"] = (0, total)
    return found


def profile(label: str, argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> None:
    python = _python_of(argv[0])
    command = [python, argv[0], *argv[1:]]
    importtime(command, cwd, env)  # bytecode written, files cached
    samples = [importtime(command, cwd, env) for _ in range(runs)]
    print(f"\n{label} ({runs} runs, importtime cumulative, medians):\n")
    print("| module | ms | imported at depth |\n|---|---|---|")
    for name in ["(all imports)", *WATCH]:
        values = [s[name][1] for s in samples if name in s]
        if len(values) == len(samples) and statistics.median(values) >= 500:
            depth = samples[0][name][0]
            print(f"| {name} | {statistics.median(values) / 1000:.0f} | {depth} |")
    tops = {}
    for sample in samples:
        for name, (depth, cumulative) in sample.items():
            if depth == 0 and name != "(all imports)":
                tops.setdefault(name, []).append(cumulative)
    ranked = sorted(tops.items(), key=lambda item: -statistics.median(item[1]))[:6]
    print(
        "\nTop-level imports (depth 0): "
        + ", ".join(f"{n} {statistics.median(v) / 1000:.0f}" for n, v in ranked)
    )


def _python_of(script: str) -> str:
    """The interpreter in a console script's shebang (importtime needs it on the command line)."""
    first = Path(script).read_text().splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def patched_langsmith(dest: Path) -> Path | None:
    """A copy of the installed langsmith with the one import moved under TYPE_CHECKING."""
    import langsmith

    source = Path(langsmith.__file__).parent
    shutil.copytree(source, dest / "langsmith", ignore=shutil.ignore_patterns("__pycache__"))
    module = dest / "langsmith" / "_internal" / "_v2_migration_utils.py"
    text = module.read_text()
    if FIX_FROM not in text or "if TYPE_CHECKING:\n" not in text:
        return None
    text = text.replace(FIX_FROM, "", 1)
    text = text.replace("if TYPE_CHECKING:\n", "if TYPE_CHECKING:\n    " + FIX_FROM, 1)
    module.write_text(text)
    return dest


PRELOAD = """
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("langsmith")
leaf = pathlib.Path(spec.origin).parent / "types" / "run_select_field.py"
if leaf.exists() and "langsmith.types" not in sys.modules:
    spec = importlib.util.spec_from_file_location("langsmith.types.run_select_field", leaf)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
"""
RUN_CLI = "import sys; from ai_assistant.cli import main; sys.argv[0] = 'ai-assistant'; main()"


def what_if(commands: dict[str, list[str]], cwd: Path, env: dict[str, str], runs: int) -> None:
    """Whole-process time of each command (its ai-assistant arguments) three ways, interleaved:
    as installed, with the langsmith copy that has the one-line fix first on PYTHONPATH, and with
    the local workaround (the leaf module ``langsmith.types.run_select_field`` loaded by itself
    before the CLI starts, so that the generated package's ``__init__`` never runs). All three
    start the CLI the same way (``python -c``), so only the langsmith import differs."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = patched_langsmith(Path(tmp))
        if copy is None:
            print("\nwhat-if skipped: this langsmith has no such import")
            return
        fixed = dict(env, PYTHONPATH=str(copy))
        cases = {}
        for name, args in commands.items():
            plain = [sys.executable, "-c", RUN_CLI, *args]
            cases[(name, "as installed")] = (plain, env)
            cases[(name, "langsmith with the one-line fix")] = (plain, fixed)
            preload = [sys.executable, "-c", PRELOAD + RUN_CLI, *args]
            cases[(name, "installed, leaf module pre-loaded")] = (preload, env)
        for argv, case_env in cases.values():
            subprocess.run(argv, cwd=cwd, env=case_env, capture_output=True, check=True)
        times = {key: ([], []) for key in cases}
        for i in range(runs):
            for key, (argv, case_env) in list(cases.items())[:: 1 if i % 2 == 0 else -1]:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                subprocess.run(argv, cwd=cwd, env=case_env, capture_output=True, check=True)
                times[key][0].append((time.perf_counter() - start) * 1000)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                times[key][1].append(cpu * 1000)
        count = (
            "import sys, langchain_core.language_models.chat_models as m; print(sum("
            "n.startswith('langsmith') for n in sys.modules))"
        )
        modules = {
            label: subprocess.run(
                [sys.executable, "-c", code + count],
                env=case_env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for label, code, case_env in (
                ("as installed", "", env),
                ("langsmith with the one-line fix", "", fixed),
                ("installed, leaf module pre-loaded", PRELOAD, env),
            )
        }
    print(f"\nWhat-if, whole process, {runs} runs each, interleaved:\n")
    print("| command | langsmith | langsmith modules loaded | median ms | min ms | median CPU ms |")
    print("|---|---|---|---|---|---|")
    for (name, label), (wall, cpu) in times.items():
        print(
            f"| {name} | {label} | {modules[label]} | {statistics.median(wall):.0f} "
            f"| {min(wall):.0f} | {statistics.median(cpu):.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--what-if-runs", type=int, default=15, help="0 skips the what-if")
    args = parser.parse_args()
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("ai-assistant is not installed in this environment: pip install -e .")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_ASSISTANT_", "LLM_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    upstream = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = upstream.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "settings.toml").write_text(f"""
[default.plugins]
dirs = []
[default.models.echo]
models = [{{ id = "echo" }}]
[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
models = [{{ model_name = "ok", id = "fast" }}]
""")
            (root / "llm-user").mkdir()
            env["LLM_USER_PATH"] = str(root / "llm-user")
            echo = [exe, "chat", "-m", "echo", "hi", "--no-log"]
            print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores")
            profile("`ai-assistant chat -m echo hi --no-log`", echo, root, env, args.runs)
            fast = [exe, "chat", "-m", "fast", "hi", "--no-log"]
            profile("`ai-assistant chat -m fast hi --no-log`", fast, root, env, args.runs)
            if LLM.exists():
                llm = [str(LLM), "-m", "echo", "hi", "-n"]
                profile("`llm -m echo hi -n`", llm, root, env, args.runs)
            if args.what_if_runs:
                commands = {"`chat -m echo hi --no-log`": echo[1:]}
                commands["`chat -m fast hi --no-log`"] = fast[1:]
                what_if(commands, root, env, args.what_if_runs)
    finally:
        upstream.terminate()
        upstream.wait(timeout=20)


if __name__ == "__main__":
    main()
