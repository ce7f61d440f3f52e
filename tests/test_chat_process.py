"""The installed `ai-assistant chat` as a real process: tokens reach the terminal as they arrive,
signals mid-stream keep the history consistent, and the interactive session works on a pty."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

EXE = shutil.which("ai-assistant", path=str(Path(sys.executable).parent))


def _spawn(project, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    return subprocess.Popen(
        [EXE, *args],
        cwd=project.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def _read_until(proc: subprocess.Popen, text: bytes, timeout: float = 60) -> bytes:
    """Read the child's stdout as it comes until ``text`` shows up."""
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} never arrived; got {seen!r}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait(timeout=30)
                raise AssertionError(
                    f"stdout closed before {text!r}; got {seen!r}; stderr: {proc.stderr.read()!r}"
                )
            seen += chunk
    return seen


def _last_assistant(project) -> dict:
    db = sqlite3.connect(project.root / "history.db")
    db.row_factory = sqlite3.Row
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return dict(
        db.execute(
            "SELECT * FROM messages WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    )


def test_first_token_is_printed_before_the_upstream_has_finished(chat_project, upstream):
    proc = _spawn(chat_project, "chat", "-m", "gated", "a b c")
    try:
        first = _read_until(proc, b"upstream:")
        assert upstream.finished_at is None  # the upstream has not sent the rest yet
        upstream.gate.set()  # only now may the upstream send the rest
        rest, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (first + rest).decode() == "upstream: a b c\n"
    assert proc.returncode == 0


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)])
def test_interrupt_mid_stream_keeps_the_partial_reply_as_interrupted(
    chat_project, upstream, sig, code
):
    proc = _spawn(chat_project, "chat", "-m", "gated", "a b c")
    try:
        _read_until(proc, b"upstream:")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        upstream.gate.set()
    assert proc.returncode == code
    assert b"interrupted: the partial reply is kept" in err
    assert b"Traceback" not in err
    message = _last_assistant(chat_project)
    assert message["status"] == "interrupted"
    assert message["content"] == "upstream:"
    assert message["error"] == "interrupted by the user"


def _saved_text(project, text: str, timeout: float = 10) -> None:
    """Wait until the last assistant message holds ``text`` (saved while the reply streams)."""
    deadline = time.monotonic() + timeout
    while _last_assistant(project)["content"] != text:
        assert time.monotonic() < deadline, f"{text!r} was never saved"
        time.sleep(0.05)


def test_a_stalled_stream_s_text_is_saved_and_a_kill_leaves_a_consistent_database(
    chat_project, upstream
):
    """The upstream stalls after its first token: that token is saved all the same (within
    FLUSH_SECONDS), so a kill meanwhile loses none of it."""
    proc = _spawn(chat_project, "chat", "-m", "gated", "a b c")
    try:
        _read_until(proc, b"upstream:")
        _saved_text(chat_project, "upstream:")
        proc.kill()
        proc.wait(timeout=30)
    finally:
        upstream.gate.set()
    message = _last_assistant(chat_project)  # integrity_check passes
    assert message["status"] == "streaming"  # as the killed process left it: nobody read it yet
    after = chat_project.run("chat", "-m", "good", "still works")
    assert after.stdout == "upstream: still works\n"
    killed = _conversations(chat_project)[1]
    assert killed["messages"][1]["status"] == "interrupted"  # a reader corrected it
    assert killed["messages"][1]["content"] == "upstream:"


SLOW_ECHO = """
[default.storage]
path = "history.db"
[default.models.echo]
models = [{ id = "echo" }, { id = "slow", delay = 1, prefix = "slow echo: " }]
"""


def _conversations(project) -> list[dict]:
    """Every conversation as `conversations show --json` gives it, newest first."""
    listed = project.run("conversations", "list", "--json")
    assert listed.exit_code == 0, listed.output
    shown = []
    for row in json.loads(listed.stdout):
        result = project.run("conversations", "show", row["id"], "--json")
        assert result.exit_code == 0, result.output
        shown.append(json.loads(result.stdout))
    return shown


def _shown(project, conversation_id: str) -> str:
    result = project.run("conversations", "show", conversation_id)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_reply_whose_process_was_killed_is_shown_interrupted(project):
    project.write("settings.toml", SLOW_ECHO)
    proc = _spawn(project, "chat", "-m", "slow", " ".join(["word"] * 60))
    try:
        _read_until(proc, b"slow echo:")
        proc.send_signal(signal.SIGKILL)  # no handler runs: the row is left `streaming`
        proc.wait(timeout=30)
    finally:
        proc.kill()
    (conv,) = _conversations(project)
    reply = conv["messages"][1]
    assert reply["status"] == "interrupted"
    assert reply["error"] == "the process ended"
    assert reply["completed_at"] is not None
    text = _shown(project, conv["id"])
    assert "interrupted: the process ended" in text and "streaming" not in text
    # the correction is stored, so every reader (and the raw file) agrees from now on
    assert _last_assistant(project)["status"] == "interrupted"


def test_a_live_reply_stays_streaming_beside_a_killed_one(chat_project, upstream):
    """Two writers at once, as two gateway workers would be: the killed one's reply is marked
    interrupted, the live one's is not touched and says who is writing it."""
    project = chat_project
    settings = project.root / "settings.toml"
    settings.write_text(
        settings.read_text().replace(
            '{ id = "echo" }',
            '{ id = "echo" }, { id = "crawl", delay = 1, prefix = "slow echo: " }',
        )
    )
    live = _spawn(project, "chat", "-m", "gated", "a b c")
    killed = _spawn(project, "chat", "-m", "crawl", " ".join(["word"] * 60))
    try:
        _read_until(live, b"upstream:")
        _read_until(killed, b"slow echo:")
        killed.kill()
        killed.wait(timeout=30)
        by_model = {c["model"]: c for c in _conversations(project)}
        assert by_model["crawl"]["messages"][1]["status"] == "interrupted"
        assert by_model["crawl"]["messages"][1]["error"] == "the process ended"
        streaming = by_model["gated"]["messages"][1]
        assert streaming["status"] == "streaming" and streaming["error"] is None
        text = _shown(project, by_model["gated"]["id"])
        assert f"streaming: being written by pid {live.pid} on " in text
        assert "interrupted" not in text
        upstream.gate.set()
        out, _ = live.communicate(timeout=60)
    finally:
        upstream.gate.set()
        live.kill()
        killed.kill()
    assert live.returncode == 0 and out.endswith(b"a b c\n")
    finished = {c["model"]: c for c in _conversations(project)}["gated"]["messages"][1]
    assert finished["status"] == "complete" and finished["content"] == "upstream: a b c"


def test_interactive_session_on_a_terminal(project):
    project.write(
        "settings.toml",
        """
        [default.storage]
        path = "history.db"
        [default.models.echo]
        models = [{ id = "echo" }, { id = "slow", delay = 0.3, prefix = "slow echo: " }]
    """,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    child = pexpect.spawn(
        EXE,
        ["chat", "-m", "echo"],
        cwd=str(project.root),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect_exact("echo> ")
        child.sendline("hello")
        child.expect_exact("echo: hello")
        child.expect_exact("echo> ")
        child.sendline("/model slow")
        child.expect_exact("model: slow")
        child.expect_exact("slow> ")
        child.sendline("one two three four five six seven eight nine")
        child.expect_exact("slow echo:")
        child.sendintr()  # Ctrl-C stops the reply, not the session
        child.expect_exact("[interrupted]")
        child.expect_exact("slow> ")
        child.sendline("/history")
        child.expect_exact("you: hello")
        child.expect_exact("assistant: echo: hello")
        child.expect_exact("slow> ")
        child.sendline("/bogus")
        child.expect_exact("unknown command /bogus")
        child.sendcontrol("d")  # Ctrl-D leaves
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    db = sqlite3.connect(project.root / "history.db")
    rows = db.execute("SELECT role, model_id, status FROM messages ORDER BY id").fetchall()
    assert rows == [
        ("user", None, "complete"),
        ("assistant", "echo", "complete"),
        ("user", None, "complete"),
        ("assistant", "slow", "interrupted"),
    ]
    assert db.execute("SELECT model FROM conversations").fetchall() == [("slow",)]


def test_a_failed_save_of_a_streaming_reply_is_an_error_not_a_traceback(project):
    """The timer that saves a streaming reply's text hits a store that cannot write (the
    disk, say): the turn ends with the error, as any failed write does, and the loop prints
    no "Exception in callback" traceback. (The one thing faked: the disk's failure.)"""
    project.settings('[default.storage]\npath = "history.db"\n')
    code = (
        "import sqlite3, sys\n"
        "from ai_assistant.storage.sqlite import SQLiteStore\n"
        "def fails(self, message_id, **fields):\n"
        "    raise sqlite3.OperationalError('disk I/O error')\n"
        "SQLiteStore.update_message = fails\n"
        "from ai_assistant.cli import main\n"
        "sys.argv = ['ai-assistant', 'chat', '-m', 'echo', 'a b c d e f']\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")}
    env["AI_ASSISTANT_MODELS__ECHO__DELAY"] = "0.2"  # (a reply of over a second)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=project.root, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "disk I/O error" in done.stderr
    assert "Traceback" not in done.stderr and "Exception in callback" not in done.stderr
