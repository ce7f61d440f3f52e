"""One-shot chat, whole process, against Simon Willison's `llm` CLI: median, min and max wall
time, CPU time, and the ratios, as a Markdown table.

    python benchmarks/bench_vs_llm.py              # 15 runs of each case
    python benchmarks/bench_vs_llm.py --runs 31 --no-logged

`llm` (0.36, with the `llm-echo` plugin) lives in its own venv, benchmarks/.venv-llm (git-ignored),
made on the first run and reused after. Cases, each a fresh process, run round-robin (the order
reversed every other round) so that the noise of a shared machine falls on all of them alike:

- `ai-assistant chat -m echo hi --no-log` against `llm -m echo hi -n` (neither stores anything;
  `llm` still opens and checks its logs.db, as it always does);
- the same, both storing the exchange (our SQLite history, `llm`'s logs.db), unless --no-logged;
- an OpenAI-compatible one-shot, streamed, against the fake upstream (tests/fake_openai.py, started
  here on 127.0.0.1): ours through a temporary settings.toml with an openai_compatible model,
  `llm` through extra-openai-models.yaml in a temporary LLM_USER_PATH; both --no-log / -n;
- floors: a bare interpreter, the interpreter importing what any LangChain chat model needs
  (`BaseChatModel` and the messages), and importing `langchain_openai.ChatOpenAI`;
- with ``--tree NAME=DIR`` (a tree exported with ``git archive REV | tar -x -C DIR``), both
  `chat` one-shots of that code too (``PYTHONPATH=DIR``), to compare code side by side;
- what-if rows, unless --no-proposed: both `chat` one-shots with the change proposed in
  bench_imports.py (langsmith's `types.run_select_field` loaded alone before the CLI starts, so the
  generated `langsmith.types` package is never imported), started through `python -c`.
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
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_imports import PRELOAD, RUN_CLI  # noqa: E402

LLM_VENV = REPO / "benchmarks" / ".venv-llm"
LLM_REQUIREMENTS = ("llm==0.36", "llm-echo==0.5")
PROPOSED_ECHO = "what-if: `chat -m echo hi --no-log`, langsmith leaf pre-loaded (proposed)"
PROPOSED_FAST = "what-if: `chat -m fast hi --no-log`, langsmith leaf pre-loaded (proposed)"


def ensure_llm(venv: Path, requirements: tuple[str, ...]) -> tuple[Path, str]:
    """``llm`` in its own venv (made on first use, reused after); its path and versions."""
    python = venv / "bin" / "python"
    versions = "import importlib.metadata as m; print(m.version('llm'), m.version('llm-echo'))"
    if python.exists():
        found = subprocess.run([python, "-c", versions], capture_output=True, text=True)
        if found.returncode == 0:
            return venv / "bin" / "llm", found.stdout.strip()
    print(f"making {venv} with {' '.join(requirements)} ...", file=sys.stderr)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if subprocess.run([*pip, *requirements]).returncode != 0:
        # the pinned version may be gone: take the newest there is, and say so in the table
        unpinned = [r.split("==")[0] for r in requirements]
        print(f"pinned install failed; trying {' '.join(unpinned)}", file=sys.stderr)
        subprocess.run([*pip, *unpinned], check=True)
    found = subprocess.run([python, "-c", versions], capture_output=True, text=True, check=True)
    return venv / "bin" / "llm", found.stdout.strip()


def ai_assistant() -> str:
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("ai-assistant is not installed in this environment: pip install -e .")
    return exe


def start_upstream(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fake_openai.py")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    return proc, proc.stdout.readline().strip()


def configure(root: Path, upstream_url: str) -> Path:
    """Our settings.toml in ``root``, and ``llm``'s user folder (returned) beside it."""
    (root / "settings.toml").write_text(f"""
[default.plugins]
dirs = []
[default.storage]
path = "history.db"
[default.models.echo]
models = [{{ id = "echo" }}]
[default.models.openai_compatible]
endpoint = "{upstream_url}"
max_retries = 0
models = [{{ model_name = "ok", id = "fast" }}]
""")
    llm_home = root / "llm-user"
    llm_home.mkdir()
    # api_base set: llm sends no key (as ours, for a loopback endpoint)
    (llm_home / "extra-openai-models.yaml").write_text(
        f'- model_id: fast\n  model_name: ok\n  api_base: "{upstream_url}"\n'
    )
    return llm_home


def run_once(argv: list[str], cwd: Path, env: dict[str, str], expect: str) -> tuple[float, float]:
    """Wall and CPU milliseconds of one fresh process; its stdout must contain ``expect``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or expect not in done.stdout:
        sys.exit(
            f"{' '.join(argv)} exited {done.returncode}, stdout {done.stdout[-300:]!r}, "
            f"stderr {done.stderr[-600:]!r}"
        )
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-logged", action="store_true", help="skip the storing echo pair")
    parser.add_argument("--llm-venv", type=Path, default=LLM_VENV)
    parser.add_argument(
        "--no-proposed",
        action="store_true",
        help="skip the rows with the proposed langsmith pre-load (bench_imports.py)",
    )
    parser.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also the chat one-shots of the code in DIR (PYTHONPATH), labelled NAME",
    )
    args = parser.parse_args()
    ours = ai_assistant()
    llm, llm_versions = ensure_llm(args.llm_venv, LLM_REQUIREMENTS)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AI_ASSISTANT_", "LLM_", "OPENAI_", "LANGCHAIN_", "LANGSMITH_"))
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what a user gets: cached bytecode
    upstream, url = start_upstream(env)
    py = sys.executable
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env["LLM_USER_PATH"] = str(configure(root, url))
            echo, up = "echo: hi", "upstream: hi"
            cases = [
                ("floor: `python -c pass`", [py, "-c", "pass"], ""),
                (
                    "floor: python importing langchain_core's BaseChatModel and messages",
                    [
                        py,
                        "-c",
                        "import langchain_core.language_models.chat_models, "
                        "langchain_core.messages",
                    ],
                    "",
                ),
                (
                    "floor: python importing langchain_openai's ChatOpenAI",
                    [py, "-c", "from langchain_openai import ChatOpenAI"],
                    "",
                ),
                (
                    "`ai-assistant chat -m echo hi --no-log`",
                    [ours, "chat", "-m", "echo", "hi", "--no-log"],
                    echo,
                ),
                ("`llm -m echo hi -n`", [str(llm), "-m", "echo", "hi", "-n"], '"prompt": "hi"'),
                (
                    "`ai-assistant chat -m fast hi --no-log` (openai_compatible)",
                    [ours, "chat", "-m", "fast", "hi", "--no-log"],
                    up,
                ),
                (
                    "`llm -m fast hi -n` (extra-openai-models)",
                    [str(llm), "-m", "fast", "hi", "-n"],
                    up,
                ),
            ]
            if not args.no_logged:
                cases += [
                    (
                        "`ai-assistant chat -m echo hi` (history stored)",
                        [ours, "chat", "-m", "echo", "hi"],
                        echo,
                    ),
                    (
                        "`llm -m echo hi` (logged to logs.db)",
                        [str(llm), "-m", "echo", "hi"],
                        '"prompt": "hi"',
                    ),
                ]
            trees: dict[str, dict[str, str]] = {}  # label -> the environment it runs in
            for tree in args.tree:
                name, _, folder = tree.partition("=")
                for model, expect in (("echo", echo), ("fast", up)):
                    label = f"`ai-assistant chat -m {model} hi --no-log` ({name})"
                    cases.append((label, [ours, "chat", "-m", model, "hi", "--no-log"], expect))
                    trees[label] = {**env, "PYTHONPATH": str(Path(folder).resolve())}
            if not args.no_proposed:  # the CLI started through python -c, with the pre-load
                proposed = [py, "-c", PRELOAD + RUN_CLI, "chat", "--no-log", "-m"]
                cases += [
                    (PROPOSED_ECHO, [*proposed, "echo", "hi"], echo),
                    (PROPOSED_FAST, [*proposed, "fast", "hi"], up),
                ]
            for _ in range(2):  # warm the file cache, write bytecode, make both databases
                for label, argv, expect in cases:
                    run_once(argv, root, trees.get(label, env), expect)
            times: dict[str, tuple[list[float], list[float]]] = {c[0]: ([], []) for c in cases}
            for i in range(args.runs):
                for label, argv, expect in cases if i % 2 == 0 else cases[::-1]:
                    wall, cpu = run_once(argv, root, trees.get(label, env), expect)
                    times[label][0].append(wall)
                    times[label][1].append(cpu)
    finally:
        upstream.terminate()
        upstream.wait(timeout=20)
    print(
        f"{args.runs} runs each, round-robin; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores; llm and llm-echo {llm_versions}\n"
    )
    print("| case | median ms | min ms | max ms | median CPU ms |\n|---|---|---|---|---|")
    med = {}
    for label, (wall, cpu) in times.items():
        med[label] = (statistics.median(wall), statistics.median(cpu))
        print(
            f"| {label} | {med[label][0]:.0f} | {min(wall):.0f} | {max(wall):.0f} "
            f"| {med[label][1]:.0f} |"
        )
    echo_pair = ("`ai-assistant chat -m echo hi --no-log`", "`llm -m echo hi -n`")
    fast_pair = (
        "`ai-assistant chat -m fast hi --no-log` (openai_compatible)",
        "`llm -m fast hi -n` (extra-openai-models)",
    )
    pairs = [
        ("echo, neither stores", *echo_pair, "<= 1.0"),
        ("OpenAI-compatible one-shot, neither stores", *fast_pair, "<= 1.3"),
    ]
    if not args.no_logged:
        pairs.append(
            (
                "echo, both store",
                "`ai-assistant chat -m echo hi` (history stored)",
                "`llm -m echo hi` (logged to logs.db)",
                "<= 1.0",
            )
        )
    for tree in args.tree:
        name = tree.partition("=")[0]
        for model, (_, theirs), target in (
            ("echo", echo_pair, "<= 1.0"),
            ("fast", fast_pair, "<= 1.3"),
        ):
            ours_label = f"`ai-assistant chat -m {model} hi --no-log` ({name})"
            pairs.append((f"{model}, the code of {name}", ours_label, theirs, target))
    if not args.no_proposed:
        pairs.append(("echo, with the proposed pre-load", PROPOSED_ECHO, echo_pair[1], "<= 1.0"))
        pairs.append(
            ("OpenAI-compatible, with the pre-load", PROPOSED_FAST, fast_pair[1], "<= 1.3")
        )
    print("\n| ratio ai-assistant / llm | wall (medians) | CPU (medians) | target |")
    print("|---|---|---|---|")
    for name, a, b, target in pairs:
        print(f"| {name} | {med[a][0] / med[b][0]:.2f} | {med[a][1] / med[b][1]:.2f} | {target} |")


if __name__ == "__main__":
    main()
