"""Whole-process wall time of the CLI: median, min and max over repeated runs, and CPU time.

    python benchmarks/bench_startup.py            # 21 runs of each case
    python benchmarks/bench_startup.py --runs 51 --scale 100,200,400

Cases: the floor (a bare interpreter importing the libraries every command needs);
`ai-assistant --help`; `models list` with the committed settings.toml; `models list`
with N directory plugins registering 50 models each (N=200 is the 10,000-model case), to see
that the cost grows linearly. Each run is a fresh process, as a user starts it, with bytecode
caching on. Cases run round-robin so noise from other tenants of a shared machine falls on all of
them alike; the CPU column (user + system time of the process) is the steadier figure there.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODELS_PER_PLUGIN = 50

PLUGIN = """\
from ai_assistant import hookimpl


def build(name):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=name)


@hookimpl
def register_models(config, registry):
    for i in range({count}):
        name = f"{plugin}-model-{{i}}"
        registry.register(name, factory=lambda name=name: build(name), model_name=name,
                          endpoint="http://127.0.0.1:9/v1")
"""


def cli() -> list[str]:
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent)) or shutil.which(
        "ai-assistant"
    )
    if exe is None:
        sys.exit("ai-assistant is not installed in this environment: pip install -e .")
    return [exe]


def time_interleaved(cases: list[tuple[str, list[str], Path]], runs: int) -> dict:
    """Wall and CPU milliseconds of every case, run round-robin ``runs`` times: noise from other
    tenants of a shared machine then falls on all cases alike."""
    env = dict(os.environ, AI_ASSISTANT_ENV="development")
    # Measure what a user gets: Python caching bytecode (some sandboxes turn that off).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _, argv, cwd in cases:  # warm the file cache and write bytecode
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
    times = {label: ([], []) for label, _, _ in cases}
    for _ in range(runs):
        for label, argv, cwd in cases:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
            times[label][0].append((time.perf_counter() - start) * 1000)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            times[label][1].append(cpu * 1000)
    return times


def make_plugin_tree(root: Path, plugins: int) -> Path:
    plugin_dir = root / "plugins"
    plugin_dir.mkdir(parents=True)
    for n in range(plugins):
        name = f"bench_plugin_{n:04d}"
        (plugin_dir / f"{name}.py").write_text(PLUGIN.format(count=MODELS_PER_PLUGIN, plugin=name))
    (root / "settings.toml").write_text(
        '[default.plugins]\ndirs = ["plugins"]\n[default.models.echo]\nmodels = [{ id = "echo" }]\n'
    )
    return root


def report(label: str, times: tuple[list[float], list[float]]) -> str:
    wall, cpu = times
    return (
        f"| {label} | {statistics.median(wall):.0f} | {min(wall):.0f} | {max(wall):.0f} "
        f"| {statistics.median(cpu):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument(
        "--scale",
        default="50,100,200",
        help="plugin counts for the many-models case (50 models each)",
    )
    args = parser.parse_args()
    exe = cli()
    floor = [sys.executable, "-c", "import click, pluggy, dynaconf, importlib.metadata"]
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("floor: python importing click, pluggy, dynaconf only", floor, REPO),
            ("`ai-assistant --help`", [*exe, "--help"], REPO),
            ("`models list`, committed settings.toml", [*exe, "models", "list"], REPO),
        ]
        for plugins in (int(n) for n in args.scale.split(",")):
            root = make_plugin_tree(Path(tmp) / str(plugins), plugins)
            label = (
                f"`models list`, {plugins} plugins x {MODELS_PER_PLUGIN} = "
                f"{plugins * MODELS_PER_PLUGIN:,} models"
            )
            cases.append((label, [*exe, "models", "list"], root))
        results = time_interleaved(cases, args.runs)
    rows = [report(label, times) for label, times in results.items()]
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| case | median ms | min ms | max ms | median CPU ms |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
