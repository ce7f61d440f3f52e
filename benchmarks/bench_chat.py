"""What the chat path costs: time to first token and per-token overhead against a local upstream,
and the wall time of a one-shot `ai-assistant chat` with the offline echo model.

    python benchmarks/bench_chat.py            # 15 runs of each case
    python benchmarks/bench_chat.py --runs 31

The fake OpenAI-compatible upstream (tests/fake_openai.py) runs in this process, so the moment a
request reaches it and the moment a token reaches our end of the CLI's stdout pipe are read off
the same clock: "first token after request" is the CLI's own cost (HTTP on loopback, the SDK's
parsing, our loop, the write to stdout) with the process's start-up and SDK import taken out.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from fake_openai import FakeOpenAI  # noqa: E402

TOKENS = 1000


def _exe() -> str:
    exe = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))
    if exe is None:
        sys.exit("ai-assistant is not installed in this environment: pip install -e .")
    return exe


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what a user gets: cached bytecode
    return env


def _stream_times(argv: list[str], cwd: Path) -> tuple[list[tuple[float, bytes]], float]:
    """(time, bytes) of every read of the child's stdout, and when it exited."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    reads = []
    while True:
        select.select([proc.stdout], [], [])
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        reads.append((time.perf_counter(), chunk))
    proc.wait()
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} exited with {proc.returncode}")
    return reads, time.perf_counter()


def _project(root: Path, url: str) -> Path:
    (root / "settings.toml").write_text(f"""
[default.storage]
path = "history.db"
[default.models.echo]
models = [{{ id = "echo" }}]
[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
models = [{{ model_name = "ok", id = "fast" }}, {{ model_name = "tokens-{TOKENS}", id = "long" }}]
""")
    return root


def _row(label: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"| {label} | {statistics.median(values):.2f} | {min(values):.2f} | "
        f"{max(values):.2f} | {unit} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = _exe()
    first_token, per_token, echo_wall, echo_nolog, fast_wall = [], [], [], [], []
    with FakeOpenAI() as upstream, tempfile.TemporaryDirectory() as tmp:
        root = _project(Path(tmp), upstream.url)
        _stream_times([exe, "chat", "-m", "fast", "warm up"], root)  # write bytecode
        for _ in range(args.runs):
            start = time.perf_counter()
            reads, _ = _stream_times([exe, "chat", "-m", "fast", "hello"], root)
            fast_wall.append((time.perf_counter() - start) * 1000)
            received = upstream.requests[-1]["received_at"]
            first_token.append((reads[0][0] - received) * 1000)

            upstream.reset()
            reads, _ = _stream_times([exe, "chat", "-m", "long", "go"], root)
            received = upstream.requests[-1]["received_at"]
            # the CLI's span from request to last token, less the upstream's own span
            client_span = reads[-1][0] - received
            upstream_span = upstream.finished_at - received
            per_token.append((client_span - upstream_span) * 1000 / TOKENS)

            start = time.perf_counter()
            _stream_times([exe, "chat", "-m", "echo", "hello"], root)
            echo_wall.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            _stream_times([exe, "chat", "--no-log", "-m", "echo", "hello"], root)
            echo_nolog.append((time.perf_counter() - start) * 1000)
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print("| measure | median | min | max | unit |\n|---|---|---|---|---|")
    print(_row("first token printed after the request reached the upstream", first_token))
    print(_row(f"added per token ({TOKENS}-token reply, CLI span less upstream span)", per_token))
    print(_row("`chat -m fast hello` via openai_compatible, whole process", fast_wall))
    print(_row("`chat -m echo hello`, whole process (history stored)", echo_wall))
    print(_row("`chat --no-log -m echo hello`, whole process", echo_nolog))


if __name__ == "__main__":
    main()
