"""The history store behaves the same on SQLite and on a real PostgreSQL (from the ``pgserver``
wheel, or ``AI_ASSISTANT_TEST_POSTGRES_URL``): conversations, every stored field, owners,
prefixes, live and dead writers, concurrent migrations; ``storage status`` and ``storage copy``;
and a locked SQLite file never stalls the gateway."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from ai_assistant import load_host
from ai_assistant.server import create_app
from ai_assistant.storage import (
    SQLiteStore,
    StoreBusyError,
    StoreError,
    SyncStore,
    UnknownConversationError,
    UnknownMessageError,
    mask_url,
)
from ai_assistant.storage.base import MESSAGE_COLUMNS
from ai_assistant.storage.postgresql import PostgresStore

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """The URL of a new history store, on each backend in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    return request.getfixturevalue("postgres_url")


def open_history(url: str):
    """The blocking store for ``url`` (as the CLI opens it)."""
    if url.startswith("postgresql"):
        return SyncStore(PostgresStore(url, pool_size=4))
    return SQLiteStore(url)


@pytest.fixture
def history(store_url):
    store = open_history(store_url)
    yield store
    store.close()


# -- behaviour, on both ----------------------------------------------------------------------


def test_messages_keep_every_field_tool_calls_and_scores(history):
    conversation_id, reply_id = history.start_exchange(
        None,
        "echo",
        ["what is the weather?", {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}],
        system="be brief",
        owner="alice",
    )
    calls = [{"id": "call_2", "name": "get_weather", "args": {"city": "Paris"}}]
    history.update_message(
        reply_id,
        content="Looking it up",
        status="complete",
        tool_calls=calls,
        latency_ms=12,
        first_token_ms=3,
        input_tokens=7,
        output_tokens=5,
    )
    conv = history.conversation(conversation_id)
    assert (conv["title"], conv["model"], conv["system"], conv["owner"]) == (
        "what is the weather?",
        "echo",
        "be brief",
        "alice",
    )
    user, tool, reply = conv["messages"]
    assert (user["role"], user["status"], user["tool_calls"]) == ("user", "complete", [])
    assert (tool["role"], tool["content"], tool["tool_call_id"]) == ("tool", "sunny", "call_1")
    assert reply["tool_calls"] == calls
    assert (reply["content"], reply["status"], reply["model_id"]) == (
        "Looking it up",
        "complete",
        "echo",
    )
    assert (reply["latency_ms"], reply["first_token_ms"]) == (12, 3)
    assert (reply["input_tokens"], reply["output_tokens"]) == (7, 5)
    assert reply["completed_at"] >= reply["created_at"]
    with pytest.raises(UnknownMessageError):
        history.score_message(reply_id, 1, "mine?", owner="bob")  # not bob's conversation
    with pytest.raises(UnknownMessageError):
        history.score_message(user["id"], 1, None, owner="alice")  # not a reply
    scored = history.score_message(reply_id, 0.5, "close", owner="alice")
    assert (scored["id"], scored["conversation_id"]) == (reply_id, conversation_id)
    reply = history.conversation(conversation_id)["messages"][-1]
    assert (reply["score"], reply["score_comment"]) == (0.5, "close") and reply["scored_at"]
    # the same keys on every backend
    assert set(reply) == {*MESSAGE_COLUMNS, "writer_pid", "writer_host"}


def test_a_whole_exchange_is_stored_in_one_write(history):
    """What the gateway's non-streaming completions store once their reply has ended: the new
    messages and the finished reply together, owned by no writer, absent numbers left empty."""
    calls = [{"id": "call_9", "name": "lookup", "args": {"q": "x"}}]
    conversation_id, reply_id = history.start_exchange(
        None,
        "echo",
        ["look it up", {"role": "tool", "content": "found", "tool_call_id": "call_8"}],
        owner="alice",
        reply={"content": "here", "status": "complete", "latency_ms": 4, "tool_calls": calls},
    )
    _, failed_id = history.start_exchange(
        conversation_id,
        "echo",
        ["again"],
        owner="alice",
        reply={"content": "", "status": "failed", "error": "upstream: boom", "model_id": "b"},
    )
    user, tool, reply, again, failed = history.conversation(conversation_id)["messages"]
    assert [m["role"] for m in (user, tool, reply, again, failed)] == [
        "user",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    assert (reply["id"], failed["id"]) == (reply_id, failed_id)
    assert (tool["content"], tool["tool_call_id"], tool["status"]) == (
        "found",
        "call_8",
        "complete",
    )
    assert (reply["content"], reply["status"], reply["tool_calls"]) == ("here", "complete", calls)
    assert (reply["latency_ms"], reply["first_token_ms"], reply["input_tokens"]) == (4, None, None)
    assert reply["writer"] is None and reply["completed_at"] >= reply["created_at"]
    assert (failed["status"], failed["error"], failed["model_id"]) == (
        "failed",
        "upstream: boom",
        "b",
    )
    assert failed["content"] == "" and failed["latency_ms"] is None


def test_a_whole_exchange_keeps_when_it_began(history):
    """Written once its reply ended, an exchange is still dated when it was asked."""
    asked = "2026-11-25T10:00:00.000+00:00"
    conversation_id, _ = history.start_exchange(
        None, "echo", ["slow one"], reply={"content": "done", "status": "complete"}, at=asked
    )
    conv = history.conversation(conversation_id)
    user, reply = conv["messages"]
    assert conv["created_at"] == user["created_at"] == reply["created_at"] == asked
    assert reply["completed_at"] > asked


def test_continuing_a_conversation_deleted_meanwhile_is_unknown_not_a_crash(history):
    conversation_id, _reply = history.start_exchange(None, "echo", ["hi"])
    history.delete_conversation(conversation_id)
    # (a second request continued it after looking it up, before the delete)
    with pytest.raises(UnknownConversationError, match="deleted"):
        history.start_exchange(conversation_id, "echo", ["still there?"])
    assert history.conversations() == []


def test_owners_see_only_their_conversations_and_prefixes_must_be_unique(history):
    alice, _ = history.start_exchange(None, "echo", ["a"], owner="alice")
    bob, _ = history.start_exchange(None, "echo", ["b"], owner="bob")
    time.sleep(0.01)  # (timestamps are to the millisecond)
    history.start_exchange(alice, "echo", ["again"], owner="alice")
    assert [c["id"] for c in history.conversations(owner="alice")] == [alice]
    assert [c["message_count"] for c in history.conversations(owner="alice")] == [4]
    assert [c["id"] for c in history.conversations()] == [alice, bob]  # newest first
    assert history.conversations(limit=1)[0]["id"] == alice
    assert history.latest_conversation() == alice
    assert history.resolve(alice[:10]) == alice
    assert history.resolve(alice.upper()[:10]) == alice
    with pytest.raises(UnknownConversationError):
        history.resolve(alice[:10], owner="bob")
    with pytest.raises(UnknownConversationError, match="matches 2"):
        history.resolve("")
    with pytest.raises(UnknownConversationError, match="no conversation"):
        history.resolve("zz")
    history.set_conversation_model(bob, "other")
    assert history.conversation(bob[:8])["model"] == "other"
    with pytest.raises(UnknownConversationError):
        history.delete_conversation(bob, owner="alice")
    assert history.delete_conversation(bob[:8], owner="bob") == bob
    assert [c["id"] for c in history.conversations()] == [alice]
    assert history.counts() == {"conversations": 1, "messages": 4, "writers": 1}


WRITER = """
import os, signal, sys
from ai_assistant.storage import SQLiteStore, SyncStore
from ai_assistant.storage.base import MESSAGE_COLUMNS
from ai_assistant.storage.postgresql import PostgresStore
url = sys.argv[1]
store = SyncStore(PostgresStore(url)) if url.startswith("postgresql") else SQLiteStore(url)
print(store.start_exchange(None, "echo", ["hi"])[0], flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # alive until the test closes stdin
"""


def _writer(url: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _reply(store, conversation_id: str) -> dict:
    return store.conversation(conversation_id)["messages"][-1]


def test_replies_of_live_writers_stay_streaming_and_of_dead_ones_are_interrupted(
    store_url, history
):
    mine, _ = history.start_exchange(None, "echo", ["hi"])
    killed = _writer(store_url, "kill")
    dead = killed.stdout.readline().strip()
    assert killed.wait(timeout=30) == -signal.SIGKILL
    live = _writer(store_url, "live")
    try:
        theirs = live.stdout.readline().strip()
        for conversation_id, pid in ((mine, os.getpid()), (theirs, live.pid)):
            reply = _reply(history, conversation_id)
            assert reply["status"] == "streaming" and reply["error"] is None
            assert (reply["writer_pid"], reply["writer_host"]) == (pid, socket.gethostname())
        reply = _reply(history, dead)
        assert (reply["status"], reply["error"]) == ("interrupted", "the process ended")
    finally:
        live.stdin.close()
        live.wait(timeout=30)
    # it exited without finishing its reply: now nobody owns it
    assert _reply(history, theirs)["status"] == "interrupted"
    assert _reply(history, mine)["status"] == "streaming"


MIGRATE = """
import sys
from ai_assistant.storage import SQLiteStore, SyncStore
from ai_assistant.storage.base import MESSAGE_COLUMNS
from ai_assistant.storage.postgresql import PostgresStore
url = sys.argv[1]
store = SyncStore(PostgresStore(url)) if url.startswith("postgresql") else SQLiteStore(url)
print(store.schema_version())
"""


def test_processes_migrating_at_once_each_find_the_schema_whole(store_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [(p.returncode, out.strip()) for p, (out, _) in zip(procs, outputs, strict=True)] == [
        (0, "5")
    ] * 4, [err for _, err in outputs]
    store = open_history(store_url)
    try:
        assert store.schema_version() == 5
        store.start_exchange(None, "echo", ["works"])
    finally:
        store.close()


def test_the_gateway_records_a_conversation_that_another_gateway_continues(
    store_url, project, monkeypatch
):
    """Two gateways over one store (one PostgreSQL, or one SQLite file): a conversation
    started on one continues on the other, with each reply stored complete."""
    monkeypatch.setenv("AI_ASSISTANT_STORAGE__URL", store_url)
    with TestClient(create_app(load_host())) as one, TestClient(create_app(load_host())) as two:
        first = one.post(
            "/api/chat/message",
            json={"modelId": "echo", "messages": [{"role": "user", "content": "one"}]},
        )
        assert first.status_code == 200, first.text
        conversation_id = first.json()["conversationId"]
        second = two.post(
            "/api/chat/message",
            json={
                "modelId": "echo",
                "conversationId": conversation_id[:8],
                "messages": [{"role": "user", "content": "two"}],
            },
        )
        assert second.status_code == 200, second.text
        assert second.json()["conversationId"] == conversation_id
        detail = one.get(f"/api/chat/{conversation_id}").json()
        assert [(m["role"], m["status"]) for m in detail["messages"]] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ] * 2
        assert detail["messages"][-1]["id"] == second.json()["message"]["id"]
        assert two.get("/readyz").json()["status"] == "ready"


def test_a_nul_character_in_a_message_is_stored_on_either_store(store_url, project, monkeypatch):
    """PostgreSQL's text cannot hold NUL (U+0000): a message with one is still answered and
    stored, the NUL as U+FFFD there; SQLite keeps it as it is. Never a 503 (retrying would not
    help)."""
    monkeypatch.setenv("AI_ASSISTANT_STORAGE__URL", store_url)
    kept = "\ufffd" if store_url.startswith("postgresql") else "\x00"
    with TestClient(create_app(load_host())) as client:
        chat = client.post(
            "/api/chat/message",
            json={"modelId": "echo", "messages": [{"role": "user", "content": "a\x00b"}]},
        )
        assert chat.status_code == 200, chat.text
        completion = client.post(
            "/v1/chat/completions",
            json={
                "model": "echo",
                "messages": [
                    {"role": "system", "content": "be\x00brief"},
                    {"role": "user", "content": "c\x00d"},
                ],
            },
        )
        assert completion.status_code == 200, completion.text
        detail = client.get(f"/api/chat/{chat.json()['conversationId']}").json()
        assert [m["content"] for m in detail["messages"]] == [f"a{kept}b", f"echo: a{kept}b"]
        titles = [c["title"] for c in client.get("/api/chat/conversations").json()["conversations"]]
        assert sorted(titles) == [f"a{kept}b", f"c{kept}d"]


# -- PostgreSQL: secrets, copy, status -------------------------------------------------------


def test_the_password_in_a_postgresql_url_is_masked_in_errors_and_status(postgres_server, project):
    assert mask_url("postgresql://bob:s3cret-pw@db:5432/h?sslmode=require") == (
        "postgresql://bob:********@db:5432/h?sslmode=require"
    )
    assert mask_url("postgresql://db/h?user=bob&password=s3cret-pw") == (
        "postgresql://db/h?user=bob&password=********"
    )
    wrong = "postgresql://bob:s3cret-pw@127.0.0.1:9/history"
    project.settings(f'[default.storage]\nurl = "{wrong}"\nbusy_timeout = 1\n')
    result = project.run("storage", "status")
    assert result.exit_code == 1
    assert "s3cret-pw" not in result.output and "s3cret-pw" not in result.stderr
    assert "cannot open the history store postgresql://bob:********@127.0.0.1:9/history" in (
        result.stderr
    )


@pytest.mark.parametrize(
    "password",
    ["ab#Zq9secretPW", "ab@Zq9secretPW", "ab?Zq9secret/PW", "Zq9sec#x@ret", "Zq9sec?cd/ef"],
)
def test_a_password_with_raw_url_characters_is_masked_too(project, password):
    """libpq takes a password written raw in the URL, `#`, `?`, `/` or `@` in it included:
    neither the store's name in messages nor its errors show any of it."""
    url = f"postgresql://bob:{password}@127.0.0.1:9/history"
    assert mask_url(url) == "postgresql://bob:********@127.0.0.1:9/history"
    assert password not in repr(PostgresStore(url))
    project.settings(f'[default.storage]\nurl = "{url}"\nbusy_timeout = 1\n')
    result = project.run("storage", "status")
    assert result.exit_code == 1
    # (libpq may quote what follows a raw @, ? or / as a host or a parameter, however short)
    tails = [password.partition(mark)[2] + "@" for mark in "@?/" if mark in password]
    for piece in ("Zq9sec", password, *tails):
        assert piece not in result.output and piece not in result.stderr, result.stderr


def test_storage_copy_moves_a_sqlite_history_into_postgresql_once(project, postgres_url, tmp_path):
    source = SQLiteStore(tmp_path / "history.db")
    first, reply = source.start_exchange(None, "echo", ["hello"], owner="alice", system="sys")
    calls = [{"id": "c1", "name": "lookup", "args": {"q": "x"}}]
    source.update_message(reply, content="hi", status="complete", tool_calls=calls)
    source.score_message(reply, 1.0, "good")
    second, _ = source.start_exchange(None, "echo", ["oth\x00er"])  # (NUL: no text in PostgreSQL)
    project.settings(f'[default.storage]\nurl = "{tmp_path / "history.db"}"\n')

    copied = project.run("storage", "copy", "--to", postgres_url)
    assert copied.exit_code == 0, copied.stderr
    assert "2 conversations, 4 messages copied" in copied.stdout
    again = project.run("storage", "copy", "--to", postgres_url)
    assert again.exit_code == 0 and "0 conversations, 0 messages copied" in again.stdout

    # the source goes on; a later copy adds only what is new
    source.start_exchange(first, "echo", ["more"])
    later = project.run("storage", "copy", "--to", postgres_url)
    assert "1 conversations, 2 messages copied" in later.stdout

    target = open_history(postgres_url)
    try:
        conv = target.conversation(first)
        assert (conv["owner"], conv["system"], conv["title"]) == ("alice", "sys", "hello")
        copied_reply = conv["messages"][1]
        assert copied_reply["tool_calls"] == calls and copied_reply["score"] == 1.0
        assert [m["content"] for m in conv["messages"]] == ["hello", "hi", "more", ""]
        assert conv["messages"][-1]["status"] == "interrupted"  # no writer over there
        assert {c["id"] for c in target.conversations()} == {first, second}
        nul = target.conversation(second)
        assert (nul["title"], nul["messages"][0]["content"]) == ("oth\ufffder",) * 2
    finally:
        target.close()

    project.settings(f'[default.storage]\nurl = "{postgres_url}"\n')
    status = project.run("storage", "status", "--json")
    assert status.exit_code == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["dialect"] == "postgresql" and data["schema_version"] == 5
    assert data["counts"]["conversations"] == 2 and data["counts"]["messages"] == 6


def test_storage_status_shows_the_sqlite_store(project):
    project.run("chat", "-m", "echo", "hello")
    result = project.run("storage", "status")
    assert result.exit_code == 0, result.stderr
    assert "store: sqlite" in result.stdout and "history.db" in result.stdout
    assert "schema version: 5" in result.stdout
    assert "conversations: 1" in result.stdout and "messages: 2" in result.stdout


# -- SQLite: a locked file never stalls the gateway ------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def test_a_locked_sqlite_store_gets_503_within_the_bound_while_healthz_stays_fast(tmp_path):
    from test_gateway import _start, _stop

    (tmp_path / "settings.toml").write_text(
        textwrap.dedent("""\
        [default.plugins]
        dirs = []
        [default.storage]
        url = "history.db"
        busy_timeout = 1
        [default.chat]
        default_model = "echo"
        [default.models.echo]
        models = [{ id = "echo" }]
        """)
    )
    proc, base, log = _start(tmp_path)
    try:
        ok = httpx.post(
            f"{base}/api/chat/message",
            json={"messages": [{"role": "user", "content": "before"}]},
            timeout=30,
        )
        assert ok.status_code == 200, ok.text
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "history.db"), "5"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "locked"
        held_since = time.monotonic()
        outcome: dict = {}

        def chat() -> None:
            started = time.monotonic()
            outcome["response"] = httpx.post(
                f"{base}/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": "during"}]},
                timeout=30,
            )
            outcome["seconds"] = time.monotonic() - started

        asker = threading.Thread(target=chat)
        asker.start()
        health = []
        while time.monotonic() - held_since < 4:
            started = time.monotonic()
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.05)
        asker.join(timeout=30)
        holder.wait(timeout=30)
        response = outcome["response"]
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "store_busy" and "history.db" in error["message"]
        assert "retry" in error["message"]
        assert outcome["seconds"] < 3  # busy_timeout is 1 s
        health.sort()
        assert health[int(len(health) * 0.99) - 1] < 0.25, health[-5:]
        # and once the lock is gone, chats are stored again
        after = httpx.post(
            f"{base}/api/chat/message",
            json={"messages": [{"role": "user", "content": "after"}]},
            timeout=30,
        )
        assert after.status_code == 200, after.text
    finally:
        _stop(proc)
    text = log.read_text()
    assert "Traceback" not in text and " 500" not in text
    rows = sqlite3.connect(tmp_path / "history.db").execute(
        "SELECT content, status FROM messages WHERE role = 'user' ORDER BY id"
    )
    assert [r[0] for r in rows] == ["before", "after"]


def test_a_store_that_cannot_be_opened_gets_a_hint_for_the_command_at_hand(project, tmp_path):
    """Each command names the file and says to set storage.url; only `chat` can do without the
    store, so only it suggests --no-log (`serve` and `conversations` have no such option)."""
    from test_gateway import EXE, _free_port

    project.settings('[default.storage]\nurl = "/proc/no-such-folder/history.db"\n')
    chat = project.run("chat", "-m", "echo", "hi")
    listed = project.run("conversations", "list")
    serve = subprocess.run(
        [EXE, "serve", "--port", str(_free_port())],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("AI_ASSISTANT_")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    for result, output in ((chat, chat.stderr), (listed, listed.stderr), (serve, serve.stderr)):
        assert getattr(result, "exit_code", getattr(result, "returncode", None)) == 1, output
        assert "cannot open the history database /proc/no-such-folder/history.db" in output
        assert "set storage.url" in output and "Traceback" not in output
    assert "--no-log" in chat.stderr
    assert "--no-log" not in listed.stderr and "--no-log" not in serve.stderr


def test_sqlite_url_forms_name_the_same_file(project):
    project.settings('[default.storage]\nurl = "sqlite:///state/h.db"\n')
    assert project.run("chat", "-m", "echo", "hi").exit_code == 0
    assert (project.root / "state" / "h.db").exists()
    assert Path(project.root / "state" / "h.db").stat().st_size > 0


def test_two_gateway_processes_over_one_postgresql_store_every_stream_whole(postgres_url, tmp_path):
    """Scale-out: two `serve` processes on different ports over one PostgreSQL. A conversation
    started on one continues on the other, and 100 concurrent streams split across them are
    all stored complete."""
    import asyncio

    from test_gateway import _start, _stop

    (tmp_path / "settings.toml").write_text(
        textwrap.dedent(f"""\
        [default.plugins]
        dirs = []
        [default.storage]
        url = "{postgres_url}"
        pool_size = 4
        [default.chat]
        default_model = "echo"
        [default.models.echo]
        models = [{{ id = "echo", delay = 0.01 }}]
        """)
    )
    servers = [_start(tmp_path), _start(tmp_path)]
    bases = [base for _, base, _ in servers]
    try:
        first = httpx.post(
            f"{bases[0]}/api/chat/message",
            json={"messages": [{"role": "user", "content": "one"}]},
            timeout=30,
        ).json()
        second = httpx.post(
            f"{bases[1]}/api/chat/message",
            json={
                "conversationId": first["conversationId"],
                "messages": [{"role": "user", "content": "two"}],
            },
            timeout=30,
        )
        assert second.status_code == 200 and second.json()["message"]["content"] == "echo: two"

        async def stream(client: httpx.AsyncClient, i: int) -> str:
            body = {"stream": True, "messages": [{"role": "user", "content": f"n {i} a b c"}]}
            async with client.stream(
                "POST", f"{bases[i % 2]}/api/chat/message", json=body
            ) as response:
                assert response.status_code == 200
                events = [
                    json.loads(line[6:])
                    async for line in response.aiter_lines()
                    if line.startswith("data: ")
                ]
            assert events[-1]["type"] == "done", events[-1]
            return events[-1]["conversationId"]

        async def all_streams() -> list[str]:
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(*(stream(client, i) for i in range(100)))

        ids = asyncio.run(all_streams())
    finally:
        for proc, _, _ in servers:
            _stop(proc)
    store = open_history(postgres_url)
    try:
        convs = {c["id"]: c for c in store.conversations()}
        assert len(convs) == 101 and convs[first["conversationId"]]["message_count"] == 4
        for i, conversation_id in enumerate(ids):
            user, reply = store.conversation(conversation_id)["messages"]
            assert (reply["status"], reply["content"]) == ("complete", f"echo: n {i} a b c")
    finally:
        store.close()


# -- PostgreSQL: the gateway's writes in groups -----------------------------------------------


def _run_on_postgres(url: str, body, **options):
    """``body(store)`` on a fresh PostgresStore for ``url``, closed afterwards."""
    import asyncio

    async def main():
        store = PostgresStore(url, **{"pool_size": 4, **options})
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def _count_transactions(url: str, titles: list[str]) -> int:
    """How many transactions wrote the conversations titled ``titles`` (rows a transaction
    writes share its ``xmin``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT COUNT(DISTINCT xmin::text) FROM conversations WHERE title = ANY(%s)", (titles,)
        ).fetchone()[0]


def test_postgresql_writes_that_come_together_share_a_commit_and_a_refused_one_fails_alone(
    postgres_url,
):
    """Writes that arrive while others are on their way are committed together; one that the
    database refuses fails alone, with an error naming the store, and every other is stored."""
    import asyncio

    done = {"content": "fine", "status": "complete"}

    async def body(store):
        writes = [store.start_exchange(None, "echo", [f"q{i}"], reply=done) for i in range(20)]
        bad = store.start_exchange(None, "echo", ["bad"], reply={"status": "bogus"})
        results = await asyncio.gather(*writes[:10], bad, *writes[10:], return_exceptions=True)
        stored = {}
        for conversation_id, reply_id in [r for r in results if not isinstance(r, Exception)]:
            conv = await store.conversation(conversation_id)
            assert conv["messages"][-1]["id"] == reply_id
            stored[conv["title"]] = [m["content"] for m in conv["messages"]]
        return results, stored

    results, stored = _run_on_postgres(postgres_url, body)
    assert isinstance(results[10], StoreError) and mask_url(postgres_url) in str(results[10])
    assert stored == {f"q{i}": [f"q{i}", "fine"] for i in range(20)}
    assert _count_transactions(postgres_url, list(stored)) < 20


def test_postgresql_a_locked_row_fails_its_own_write_and_the_rest_are_stored(postgres_url):
    """A reply's row locked by another session past ``busy_timeout``: that write gets the
    busy error (retry), the writes that came with it are stored."""
    import asyncio

    import psycopg

    answered: list[int] = []

    async def update(store, i: int, reply_id: int) -> None:
        try:
            await store.update_message(reply_id, content=f"a{i}", status="complete")
        finally:
            answered.append(i)

    async def body(store):
        started = [await store.start_exchange(None, "echo", [f"q{i}"]) for i in range(8)]
        locked_id = started[3][1]
        async with await psycopg.AsyncConnection.connect(postgres_url) as other:
            await other.execute("SELECT 1 FROM messages WHERE id = %s FOR UPDATE", (locked_id,))
            updates = [update(store, i, reply_id) for i, (_, reply_id) in enumerate(started)]
            results = await asyncio.gather(*updates, return_exceptions=True)
            await other.rollback()
        replies = [(await store.conversation(c))["messages"][-1] for c, _ in started]
        return results, replies

    results, replies = _run_on_postgres(postgres_url, body, busy_timeout=0.5)
    assert isinstance(results[3], StoreBusyError) and "retry" in results[3].hint
    assert answered[-1] == 3  # (the others did not wait for that lock)
    assert [r is None for r in results] == [i != 3 for i in range(8)]
    assert [(r["status"], r["content"]) for i, r in enumerate(replies) if i != 3] == [
        ("complete", f"a{i}") for i in range(8) if i != 3
    ]
    assert replies[3]["status"] == "streaming"


class _DroppingProxy:
    """A PostgreSQL server's Unix socket, relayed; once ``armed``, the first answer from the
    server that holds ``trigger`` is not passed on and both sides are cut: the client cannot
    know whether what it sent was committed."""

    def __init__(self, url: str, folder: Path, trigger: bytes) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(url)
        self.target = f"{parse_qs(parts.query)['host'][0]}/.s.PGSQL.{parts.port or 5432}"
        self.folder, self.trigger = folder, trigger
        self.url = url.replace(parse_qs(parts.query)["host"][0], str(folder))
        self.armed = False
        self.dropped = 0

    async def __aenter__(self):
        import asyncio

        self.server = await asyncio.start_unix_server(
            self._relay, str(self.folder / ".s.PGSQL.5432")
        )
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _relay(self, reader, writer):
        import asyncio

        up_reader, up_writer = await asyncio.open_unix_connection(self.target)

        async def pipe(source, sink, from_server: bool) -> None:
            try:
                while data := await source.read(65536):
                    if from_server and self.armed and self.trigger in data:
                        self.armed = False
                        self.dropped += 1
                        break
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for side in (writer, up_writer):
                    side.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))


def test_postgresql_writes_whose_answer_is_lost_are_reported_and_never_stored_twice(
    postgres_url, tmp_path
):
    """The connection is cut after the server wrote the exchanges but before their answer
    arrived: their callers get a store error (the write may have landed), nothing is written
    again behind their back, and the store goes on working."""
    import asyncio

    assert "host=" in postgres_url, "this test relays the server's Unix socket"
    done = {"content": "fine", "status": "complete"}

    async def body(_store):
        async with _DroppingProxy(postgres_url, tmp_path, b"INSERT 0 ") as proxy:
            store = PostgresStore(proxy.url, pool_size=4)
            await store.open()
            try:
                await store.start_exchange(None, "echo", ["warm"], reply=done)
                proxy.armed = True
                writes = [
                    store.start_exchange(None, "echo", [f"q{i}"], reply=done) for i in range(6)
                ]
                results = await asyncio.gather(*writes, return_exceptions=True)
                assert proxy.dropped == 1
                after = await store.start_exchange(None, "echo", ["after"], reply=done)
                titles = [c["title"] for c in await store.conversations()]
                return results, after, titles
            finally:
                await store.close()

    results, after, titles = _run_on_postgres(postgres_url, body)
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed and all(isinstance(r, StoreError) for r in failed)
    assert all(mask_url(postgres_url.split("?")[0]) in str(r) for r in failed)
    assert sorted(t for t in titles if t.startswith("q")) == sorted(set(titles) - {"warm", "after"})
    assert len(titles) == len(set(titles))  # (no exchange written twice)
    assert after[0]


def test_postgresql_closing_the_store_answers_the_writes_already_queued(postgres_url):
    """``close`` waits for the writes on their way: each is stored and answered."""
    import asyncio

    done = {"content": "fine", "status": "complete"}

    async def body(store):
        writes = [
            asyncio.ensure_future(store.start_exchange(None, "echo", [f"q{i}"], reply=done))
            for i in range(10)
        ]
        await asyncio.sleep(0)  # (each has queued its write)
        await store.close()
        return [w.result() for w in writes if w.done()]

    answered = _run_on_postgres(postgres_url, body)
    assert len(answered) == 10
    store = open_history(postgres_url)
    try:
        assert sorted(c["title"] for c in store.conversations()) == sorted(
            f"q{i}" for i in range(10)
        )
    finally:
        store.close()


def test_postgresql_gateways_continuing_the_same_conversations_never_deadlock(
    postgres_url, monkeypatch
):
    """Two stores (two gateway processes) continue conversations A and B at the same moment, in
    opposite orders: every batch locks rows in one order, so none is ever left waiting for a
    lock the other holds while it waits for one of its own."""
    import asyncio

    from ai_assistant.storage import postgresql

    # (a batch waits 2 s for a lock here, so only a deadlock, not a slow machine, makes one
    # of its writes go on alone)
    monkeypatch.setattr(postgresql, "BATCH_LOCK_TIMEOUT_MS", 2000)

    done = {"content": "fine", "status": "complete"}

    async def body(first):
        second = PostgresStore(postgres_url, pool_size=4)
        await second.open()
        try:
            a, _ = await first.start_exchange(None, "echo", ["A"], reply=done)
            b, _ = await first.start_exchange(None, "echo", ["B"], reply=done)
            failures = []
            for n in range(20):
                # (new conversations between the two: were a batch to lock A, then insert, then
                # lock B, and the other B then A, each would hold what the other waits for)
                writes = [
                    first.start_exchange(a, "echo", [f"1a{n}"], reply=done),
                    second.start_exchange(b, "echo", [f"2b{n}"], reply=done),
                    *[
                        store.start_exchange(None, "echo", ["x"], reply=done)
                        for store in (first, second)
                        for _ in range(10)
                    ],
                    first.start_exchange(b, "echo", [f"1b{n}"], reply=done),
                    second.start_exchange(a, "echo", [f"2a{n}"], reply=done),
                ]
                results = await asyncio.gather(*writes, return_exceptions=True)
                failures += [r for r in results if isinstance(r, Exception)]
            counts = [len((await first.conversation(c))["messages"]) for c in (a, b)]
            return failures, counts
        finally:
            await second.close()

    failures, counts = _run_on_postgres(postgres_url, body, busy_timeout=5)
    assert failures == []
    assert counts == [2 + 20 * 2 * 2] * 2
    # each store's two writes of a round went in one transaction (after a deadlock, one of
    # them would have gone on alone)
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        split = conn.execute(
            "SELECT COUNT(*) FROM (SELECT substr(content, 1, 1), substr(content, 3) "
            "FROM messages WHERE role = 'user' AND content ~ '^[12][ab][0-9]+$' "
            "GROUP BY 1, 2 HAVING COUNT(DISTINCT xmin::text) > 1) AS rounds"
        ).fetchone()[0]
    assert split == 0


def test_postgresql_connections_dropped_while_idle_fail_no_write(postgres_url):
    """The pool's idle connections are gone (a server restart, a firewall): the writes that
    come next, alone or together, find them dead before anything was sent, and go on other
    connections."""
    import asyncio

    import psycopg

    done = {"content": "fine", "status": "complete"}

    async def drop_idle_connections(store) -> None:
        await asyncio.gather(*(store.conversations() for _ in range(8)))  # (the pool fills)
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                "pg_backend_pid() AND datname = current_database() AND state = 'idle'"
            )
        await asyncio.sleep(0.2)

    async def body(store):
        await drop_idle_connections(store)
        results = []
        for i in range(3):  # (a quiet gateway: each write alone)
            try:
                results.append(await store.start_exchange(None, "echo", [f"s{i}"], reply=done))
            except StoreError as exc:
                results.append(exc)
        await drop_idle_connections(store)
        writes = [store.start_exchange(None, "echo", [f"q{i}"], reply=done) for i in range(50)]
        results += await asyncio.gather(*writes, return_exceptions=True)
        return results, len(await store.conversations())

    results, stored = _run_on_postgres(postgres_url, body)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert stored == 53


def test_postgresql_batches_after_a_refused_write_keep_working(postgres_url):
    """Round after round, a batch with one refused write on the same connection: the good
    writes of every round are stored, then and afterwards (psycopg's prepared statements must
    not drift from the server's when a pipeline is aborted)."""
    import asyncio

    async def body(store):
        ids = [(await store.start_exchange(None, "echo", [f"q{i}"]))[1] for i in range(4)]
        failed = []
        for n in range(15):
            writes = [
                store.update_message(ids[0], content=f"a{n}"),
                store.update_message(ids[1], status="bogus"),
                store.update_message(ids[2], content=f"c{n}"),
                store.update_message(ids[3], content=f"d{n}"),
            ]
            results = await asyncio.gather(*writes, return_exceptions=True)
            assert isinstance(results[1], StoreError)
            failed += [(n, r) for i, r in enumerate(results) if i != 1 and r is not None]
        for n in range(5):
            writes = [store.update_message(i, content=f"z{n}") for i in ids]
            failed += [(n, r) for r in await asyncio.gather(*writes, return_exceptions=True) if r]
        return failed

    assert _run_on_postgres(postgres_url, body, pool_size=1) == []


def test_a_python_api_chat_on_postgresql_stores_every_turn_in_order(postgres_url, project):
    """`Chat` turns follow each other faster than their deferred writes land: each turn's
    writes wait for the previous turn's, so a conversation's second turn never arrives before
    the conversation exists."""
    from ai_assistant.chat import Chat

    host = load_host()
    store = open_history(postgres_url)
    try:
        ids = []
        for n in range(10):
            chat = Chat(host, "echo", store=store)
            for turn in range(3):
                assert chat.send(f"c{n} t{turn}").status == "complete"
            ids.append(chat.conversation_id)
        for n, conversation_id in enumerate(ids):
            stored = store.conversation(conversation_id)["messages"]
            assert [m["content"] for m in stored] == [
                text for t in range(3) for text in (f"c{n} t{t}", f"echo: c{n} t{t}")
            ]
    finally:
        store.close()


def test_postgresql_a_server_that_stops_answering_holds_no_write_forever(postgres_url, monkeypatch):
    """The server's processes for this store freeze (a host that hangs, a network gone silent):
    every write waiting, and every one queued behind them, gets a store error within
    busy_timeout and the grace; once the server answers again, the store writes again."""
    import asyncio

    import psycopg

    from ai_assistant.storage import postgresql

    monkeypatch.setattr(postgresql, "ANSWER_GRACE", 1.0)
    done = {"content": "fine", "status": "complete"}

    def backends() -> list[int]:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        return [pid for (pid,) in rows]

    async def body(store):
        await asyncio.gather(*(store.conversations() for _ in range(4)))  # (the pool fills)
        frozen = backends()
        try:
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
        except PermissionError:
            pytest.skip("the server's processes are not this user's to signal")
        try:
            writes = [store.start_exchange(None, "echo", [f"q{i}"], reply=done) for i in range(6)]
            results = await asyncio.wait_for(asyncio.gather(*writes, return_exceptions=True), 30)
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        after = await store.start_exchange(None, "echo", ["after"], reply=done)
        return results, after

    results, after = _run_on_postgres(postgres_url, body, pool_size=2, busy_timeout=0.5)
    assert all(isinstance(r, StoreError) for r in results), results
    assert all("no answer from the server" in str(r) for r in results)
    assert after[0]


def test_a_python_api_chat_whose_first_turn_could_not_be_stored_is_stored_from_the_next(
    postgres_url, project
):
    """The first turn's write fails (the table locked past busy_timeout): the next turn
    creates the conversation, instead of every later turn failing as 'deleted'."""
    import psycopg

    from ai_assistant.chat import Chat

    host = load_host()
    store = SyncStore(PostgresStore(postgres_url, pool_size=2, busy_timeout=0.3))
    try:
        store.counts()  # (migrated before the lock)
        chat = Chat(host, "echo", store=store)
        with psycopg.connect(postgres_url) as locker:
            locker.execute("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
            assert chat.send("one").status == "complete"
            store.flush()  # (its write waited out busy_timeout, and failed)
        assert chat.send("two").status == "complete"
        assert chat.send("three").status == "complete"
        store.flush()
        stored = store.conversation(chat.conversation_id)
        assert [m["content"] for m in stored["messages"]] == [
            "two", "echo: two", "three", "echo: three"
        ]  # fmt: skip
    finally:
        store.close()
