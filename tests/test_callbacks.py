"""Callbacks, the fifth extension point: handlers from plugins see every model call with the
turn's metadata, fallbacks included, and a broken one never stops a reply."""

from __future__ import annotations

import json

from ai_assistant import Chat, load_host


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_bundled_jsonl_log_records_each_call_with_its_metadata(chat_project):
    chat_project.write(
        "settings.local.toml", '[default.callbacks.jsonl_log]\npath = "calls.jsonl"\n'
    )
    result = chat_project.run("chat", "-m", "broken", "hello")
    assert result.exit_code == 0, result.output
    events = _events(chat_project.root / "calls.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert [e["called_model_id"] for e in starts] == ["broken", "down", "echo"]
    assert [e.get("fallback_from") for e in starts] == [None, "broken", "down"]
    assert {e["model_id"] for e in starts} == {"broken"}
    assert all(e["conversation_id"] and e["surface"] == "cli" for e in starts)
    assert [e["error"] for e in events if e["event"] == "error"][0].endswith("(HTTP 500)")
    end = next(e for e in events if e["event"] == "end")
    assert end["usage"]["output_tokens"] > 0 and end["ms"] >= 0
    assert any(e["event"] == "first_token" for e in events)
    assert (chat_project.root / "calls.jsonl").stat().st_mode & 0o777 == 0o600


RECORDER = """\
from ai_assistant import hookimpl

SEEN = []


def make(metadata):
    from langchain_core.callbacks import BaseCallbackHandler

    class Seen(BaseCallbackHandler):
        def on_chat_model_start(self, serialized, messages, *, metadata=None, tags=None, **kw):
            SEEN.append({"metadata": metadata, "tags": tags, "run_name": kw.get("name")})

    return Seen()


@hookimpl
def register_callbacks(config, registry):
    registry.register("seen", factory=make)
    registry.register("broken", factory=lambda metadata: 1 / 0)
"""


def test_python_api_turns_carry_metadata_and_a_broken_factory_is_skipped(project):
    project.plugin("recorder", RECORDER)
    notices = []
    host = load_host()
    chat = Chat(host, "echo", on_notice=notices.append)
    assert chat.send("hi").text == "echo: hi"
    import sys

    seen = sys.modules["ai_assistant_plugin_recorder"].SEEN
    assert seen[0]["metadata"]["surface"] == "python"
    assert seen[0]["metadata"]["model_id"] == "echo"
    assert "surface:python" in seen[0]["tags"]
    assert any(
        "callback 'broken' (plugin 'recorder') was skipped: ZeroDivisionError" in n for n in notices
    )


def test_callbacks_are_listed_and_attributed(project):
    project.plugin("recorder", RECORDER)
    host = load_host()
    assert [(c.id, c.plugin) for c in host.callbacks] == [
        ("seen", "recorder"),
        ("broken", "recorder"),
    ]
