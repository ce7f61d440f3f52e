"""The history database: numbered migrations upgrade an older file in place, and a reply whose
process ended mid-stream is marked interrupted for every reader, while a live one is not."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from starlette.testclient import TestClient

from ai_assistant import load_host
from ai_assistant import store as store_module
from ai_assistant.server import create_app
from ai_assistant.storage import sqlite as sqlite_module
from ai_assistant.storage.base import migrations
from ai_assistant.store import Store


def test_an_older_database_is_migrated_in_place_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "history.db"
    every = migrations("sqlite")
    monkeypatch.setattr(sqlite_module, "migrations", lambda dialect: every[:1])
    # a reply left streaming by a version that did not record writers
    old = Store(path)
    old.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO conversations VALUES ('c1', 'kept', 'echo', NULL, 't', 't')")
    db.execute(
        "INSERT INTO messages (conversation_id, role, content, model_id, status, created_at) "
        "VALUES ('c1', 'assistant', 'half a', 'echo', 'streaming', 't')"
    )
    db.commit()
    db.close()
    monkeypatch.undo()

    upgraded = Store(path)
    assert upgraded.schema_version() == len(every) == 5
    conv = upgraded.conversation("c1")
    assert conv["title"] == "kept" and conv["owner"] is None
    (legacy,) = conv["messages"]
    assert (legacy["status"], legacy["error"]) == ("interrupted", "the process ended")
    assert legacy["content"] == "half a" and legacy["completed_at"]
    conversation_id, reply_id = upgraded.start_exchange(None, "echo", ["hi"], owner="alice")
    assert [c["id"] for c in upgraded.conversations(owner="alice")] == [conversation_id]
    assert {c["id"] for c in upgraded.conversations()} == {"c1", conversation_id}
    applied = (
        sqlite3.connect(path)
        .execute("SELECT version FROM schema_migrations ORDER BY version")
        .fetchall()
    )
    assert applied == [(v,) for v in range(1, 6)]


def test_tool_messages_tool_calls_and_scores_are_stored(tmp_path):
    store = Store(tmp_path / "history.db")
    conversation_id, reply_id = store.start_exchange(
        None,
        "echo",
        ["what is the weather?", {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}],
        owner="alice",
    )
    calls = [{"id": "call_2", "name": "get_weather", "args": {"city": "Paris"}}]
    store.update_message(reply_id, status="complete", tool_calls=calls)
    user, tool, reply = store.conversation(conversation_id)["messages"]
    assert (user["role"], user["tool_calls"]) == ("user", [])
    assert (tool["role"], tool["content"], tool["tool_call_id"]) == ("tool", "sunny", "call_1")
    assert reply["tool_calls"] == calls
    with pytest.raises(store_module.UnknownMessageError):
        store.score_message(reply_id, 1, "mine?", owner="bob")  # not bob's conversation
    with pytest.raises(store_module.UnknownMessageError):
        store.score_message(user["id"], 1, None, owner="alice")  # not a reply
    assert store.score_message(reply_id, 0.5, "close", owner="alice")["conversation_id"] == (
        conversation_id
    )
    scored = store.conversation(conversation_id)["messages"][-1]
    assert (scored["score"], scored["score_comment"]) == (0.5, "close")


def _reply(store: Store, conversation_id: str) -> dict:
    return store.conversation(conversation_id)["messages"][-1]


KILLED_WRITER = """
import os, signal, sys
from ai_assistant.store import Store
store = Store(sys.argv[1])
conversation_id, _ = store.start_exchange(None, "echo", ["hi"])
print(conversation_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_writer(path) -> str:
    """A process that starts a reply and is killed: the id of its conversation."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return proc.stdout.strip()


def test_a_reply_of_a_killed_writer_is_interrupted_for_the_gateway_api_too(project):
    conversation_id = _killed_writer(project.root / "history.db")
    raw = sqlite3.connect(project.root / "history.db")
    assert raw.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchone() == (
        "streaming",
    )
    store = Store(project.root / "history.db")
    with TestClient(create_app(load_host(), store=store)) as client:
        detail = client.get(f"/api/chat/{conversation_id}").json()
    reply = detail["messages"][-1]
    assert (reply["status"], reply["error"]) == ("interrupted", "the process ended")


def test_a_live_pid_does_not_keep_a_dead_writer_alive(tmp_path):
    """A writer is alive while its lock is held, not while some process has its pid: here the
    recorded pid is this very process (as after pid reuse), yet nobody holds the lock."""
    store = Store(tmp_path / "history.db")
    conversation_id, reply_id = store.start_exchange(None, "echo", ["hi"])
    db = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    db.execute(
        "INSERT INTO writers (id, pid, host, started_at) VALUES ('w-reused', ?, ?, 't')",
        (os.getpid(), socket.gethostname()),
    )
    db.execute("UPDATE messages SET writer = 'w-reused' WHERE id = ?", (reply_id,))
    reply = _reply(store, conversation_id)
    assert (reply["status"], reply["error"]) == ("interrupted", "the process ended")
    assert db.execute("SELECT COUNT(*) FROM writers WHERE id = 'w-reused'").fetchone() == (0,)


def test_live_writers_in_this_process_and_in_another_stay_streaming(tmp_path):
    path = tmp_path / "history.db"
    writer, reader = Store(path), Store(path)
    mine, _ = writer.start_exchange(None, "echo", ["hi"])
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from ai_assistant.store import Store
                store = Store(sys.argv[1])
                print(store.start_exchange(None, "echo", ["hi"])[0], flush=True)
                sys.stdin.read()  # alive until the test closes stdin
                """
            ),
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        theirs = other.stdout.readline().strip()
        for conversation_id, pid in ((mine, os.getpid()), (theirs, other.pid)):
            reply = _reply(reader, conversation_id)
            assert reply["status"] == "streaming" and reply["error"] is None
            assert (reply["writer_pid"], reply["writer_host"]) == (pid, socket.gethostname())
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    # it exited without finishing its reply: now nobody owns it
    assert _reply(reader, theirs)["status"] == "interrupted"
    assert _reply(reader, mine)["status"] == "streaming"
    writer.close()  # a store closed mid-reply leaves no owner either
    assert _reply(reader, mine)["error"] == "the process ended"


def test_a_busy_database_still_reads_corrected_and_marks_later(tmp_path):
    path = tmp_path / "history.db"
    conversation_id = _killed_writer(path)
    store = Store(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process is writing: the reader cannot mark
    try:
        reply = _reply(store, conversation_id)
        assert (reply["status"], reply["error"]) == ("interrupted", "the process ended")
        raw = blocker.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchone()
        assert raw == ("streaming",)
    finally:
        blocker.execute("ROLLBACK")
    assert _reply(store, conversation_id)["status"] == "interrupted"
    raw = blocker.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchone()
    assert raw == ("interrupted",)


def test_opening_a_new_database_waits_for_another_process_setting_it_up(tmp_path, monkeypatch):
    """Two processes opening a new file at once (two gateway workers, two chats): the second
    one's switch to WAL meets the first one's write lock, and SQLite answers "database is locked"
    at once, without its busy wait. Opening waits for the lock and carries on."""
    path = tmp_path / "history.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process, midway through creating the schema
    attempts = threading.Semaphore(0)
    connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.set_trace_callback(lambda sql: "journal_mode" in sql and attempts.release())
        return db

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    opened: list[object] = []
    opener = threading.Thread(target=lambda: opened.append(_open_or_error(path)))
    opener.start()
    try:
        # a second attempt means the first met the lock and was retried, not raised
        seen, deadline = 0, time.monotonic() + 30
        while seen < 2 and opener.is_alive() and time.monotonic() < deadline:
            seen += attempts.acquire(timeout=0.05)
        assert seen >= 2, f"no retry; opening gave {opened}"
    finally:
        other.execute("COMMIT")
        opener.join(timeout=30)
    (store,) = opened
    assert isinstance(store, Store), store
    assert store.schema_version() == len(migrations("sqlite"))


def _open_or_error(path) -> object:
    try:
        return Store(path)
    except Exception as exc:  # noqa: BLE001 - the test reports it
        return exc


def test_the_gateways_writer_keeps_the_wal_from_growing(tmp_path):
    """The async face (the gateway's) checkpoints the WAL from its writer thread, between
    writes, instead of inside the commit a request waits for: the WAL still stops growing."""
    import asyncio

    from ai_assistant.storage import SQLiteStore

    path = tmp_path / "history.db"
    store = SQLiteStore(path)
    wal = tmp_path / "history.db-wal"
    done = {"content": "x" * 2000, "status": "complete"}

    async def write(count: int) -> None:
        for i in range(count):
            await store.aio.start_exchange(None, "echo", [f"question {i}"], reply=done)

    async def main() -> tuple[int, int]:
        await write(2 * sqlite_module.CHECKPOINT_EVERY)
        early = wal.stat().st_size
        await write(6 * sqlite_module.CHECKPOINT_EVERY)
        return early, wal.stat().st_size

    try:
        early, late = asyncio.run(main())
    finally:
        store.close()
    assert early > 0
    assert late <= early * 1.25  # (without checkpoints it would be about four times as big)


def test_writes_queued_together_commit_together_and_one_that_fails_fails_alone(tmp_path):
    """The gateway's writer thread commits what queued up meanwhile in one transaction; a
    write that fails in it is retried alone, so it gets its error and the others are kept."""
    import asyncio

    from ai_assistant.storage import SQLiteStore, UnknownConversationError

    store = SQLiteStore(tmp_path / "history.db")
    done = {"content": "fine", "status": "complete"}
    gate = threading.Event()

    async def main() -> list:
        writes = store.aio
        held = writes.enqueue(gate.wait)  # (the writer is busy: what follows queues up)
        queued = [
            writes.enqueue(lambda i=i: store.start_exchange(None, "echo", [f"q{i}"], reply=done))
            for i in range(3)
        ]
        queued.insert(1, writes.enqueue(lambda: store.start_exchange("gone", "echo", ["?"])))
        gate.set()
        await held
        return await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 30)

    try:
        first, failed, *rest = asyncio.run(main())
        assert isinstance(failed, UnknownConversationError)
        stored = {c["title"] for c in store.conversations()}
        assert stored == {"q0", "q1", "q2"}
        assert [first[1], *(r[1] for r in rest)] == sorted([first[1], *(r[1] for r in rest)])
    finally:
        store.close()


def test_a_long_chat_through_the_python_api_keeps_the_wal_checkpointed(project):
    """Only the gateway hands its checkpoints to the writer thread: a chat that writes
    through (the CLI, the Python API) keeps SQLite's automatic ones."""
    from ai_assistant import load_host
    from ai_assistant.chat import Chat
    from ai_assistant.storage import SQLiteStore

    path = project.root / "history.db"
    store = SQLiteStore(path)
    chat = Chat(load_host(), "echo", store=store)
    try:
        for i in range(400):
            chat.new_conversation()
            chat.send(f"{i} " + "y" * 3000)
        wal = (project.root / "history.db-wal").stat().st_size
    finally:
        store.close()
    assert wal < 8_000_000  # (about 20 MB without checkpoints; SQLite's own stop near 4 MB)


def test_a_writer_registered_in_a_rolled_back_batch_is_registered_again(tmp_path):
    """A streaming reply's start queued with a write that fails: the batch is rolled back and
    each runs alone; the reply still names the live process writing it."""
    import asyncio

    from ai_assistant.storage import SQLiteStore, UnknownMessageError

    store = SQLiteStore(tmp_path / "history.db")
    gate = threading.Event()

    async def main() -> tuple:
        writes = store.aio
        held = writes.enqueue(gate.wait)
        start = writes.enqueue(lambda: store.start_exchange(None, "echo", ["streaming"]))
        bad = writes.enqueue(lambda: store.score_message(424242, 1.0, None))
        gate.set()
        await held
        results = await asyncio.wait_for(asyncio.gather(start, bad, return_exceptions=True), 30)
        return results

    try:
        (conversation_id, _reply_id), failed = asyncio.run(main())
        assert isinstance(failed, UnknownMessageError)
        reply = store.conversation(conversation_id)["messages"][-1]
        assert reply["status"] == "streaming"
        assert (reply["writer_pid"], reply["writer_host"]) == (os.getpid(), socket.gethostname())
    finally:
        store.close()


def test_an_exchange_of_many_messages_fits_an_older_sqlites_parameter_limit(tmp_path):
    """SQLite before 3.32 takes 999 parameters a statement: the messages go in as many
    statements as that needs, in order, in one transaction."""
    from ai_assistant.storage import SQLiteStore

    store = SQLiteStore(tmp_path / "history.db")
    store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # (as such a SQLite has it)
    try:
        texts = [f"message {i}" for i in range(200)]
        conversation_id, reply_id = store.start_exchange(None, "echo", texts)
        messages = store.conversation(conversation_id)["messages"]
    finally:
        store.close()
    assert [m["content"] for m in messages[:-1]] == texts
    assert messages[-1]["id"] == reply_id and messages[-1]["role"] == "assistant"


def test_a_start_whose_batch_was_rolled_back_and_that_then_failed_writes_no_other_row(tmp_path):
    """A reply's start runs in a batch that is rolled back, then fails alone (the file stayed
    locked: simulated, since the timing cannot be arranged with a real lock): the id of the
    rolled-back row is void, and the reply's later writes never land on another row."""
    import asyncio

    from ai_assistant.chat.recording import Recorder
    from ai_assistant.chat.reply import Reply
    from ai_assistant.storage import SQLiteStore, StoreBusyError

    store = SQLiteStore(tmp_path / "history.db")
    real, runs = store.start_exchange, []

    def start_exchange(conversation_id, model_id, rows, **kw):
        if "from alice" in str(rows):
            runs.append(1)
            if len(runs) == 2:  # (its run alone, after the batch was rolled back)
                raise StoreBusyError("the history store stayed locked")
        return real(conversation_id, model_id, rows, **kw)

    store.start_exchange = start_exchange
    gate = threading.Event()

    async def main() -> str:
        writes = store.aio
        held = writes.enqueue(gate.wait)
        alice, alices = Recorder(writes, None, owner="alice"), Reply("echo")
        alice.start("echo", ["question from alice"], alices)
        bad = writes.enqueue(lambda: store.score_message(424242, 1.0, None))
        gate.set()
        await held
        with pytest.raises(StoreBusyError):
            await asyncio.wait_for(alice.started(), 30)
        await asyncio.gather(bad, return_exceptions=True)
        bob, bobs = Recorder(writes, None, owner="bob", whole=True), Reply("echo")
        bob.start("echo", ["question from bob"], bobs)
        bobs.parts.append("bob's answer")
        bobs.status = "complete"
        bob.finish(bobs)
        await asyncio.wait_for(bob.flush(), 30)
        alices.parts.append("alice's answer")
        alices.status = "interrupted"
        alice.finish(alices)
        await asyncio.gather(asyncio.wait_for(alice.flush(), 30), return_exceptions=True)
        return bob.conversation_id

    try:
        bobs_conversation = asyncio.run(main())
        messages = store.conversation(bobs_conversation)["messages"]
    finally:
        store.close()
    assert [(m["content"], m["status"]) for m in messages] == [
        ("question from bob", "complete"),
        ("bob's answer", "complete"),
    ]
