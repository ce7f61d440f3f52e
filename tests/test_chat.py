"""`ai-assistant chat` against a real local OpenAI-compatible server, through the bundled
openai_compatible provider: streaming, prompts, history, classified failures and fallbacks."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import SECRET_KEY

from ai_assistant import load_host
from ai_assistant.chat import Chat, open_store


def _conversations(project):
    return json.loads(project.run("conversations", "list", "--json").stdout)


def _last_conversation(project):
    newest = _conversations(project)[0]["id"]
    return json.loads(project.run("conversations", "show", newest, "--json").stdout)


def test_chat_answers_from_the_upstream_and_stores_the_exchange(chat_project, upstream):
    result = chat_project.run("chat", "-m", "good", "hello there")
    assert result.exit_code == 0, result.output
    assert result.stdout == "upstream: hello there\n"
    request = upstream.requests[-1]["body"]
    assert request["model"] == "ok" and request["stream"] is True
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET_KEY}"
    conv = _last_conversation(chat_project)
    assert conv["title"] == "hello there" and conv["model"] == "good"
    user, assistant = conv["messages"]
    assert (user["role"], user["content"], user["status"]) == ("user", "hello there", "complete")
    assert assistant["content"] == "upstream: hello there"
    assert assistant["status"] == "complete" and assistant["model_id"] == "good"
    assert assistant["input_tokens"] == 7 and assistant["output_tokens"] == 3  # from the upstream
    assert assistant["latency_ms"] >= assistant["first_token_ms"] >= 0


def test_prompt_from_stdin_and_arguments(chat_project, upstream):
    piped = chat_project.run("chat", "-m", "good", input="from a pipe\n")
    assert piped.stdout == "upstream: from a pipe\n"
    both = chat_project.run("chat", "-m", "good", "summarise", input="some text\n")
    assert both.stdout == "upstream: some text\n\nsummarise\n"
    empty = chat_project.run("chat", "-m", "good", input="")
    assert empty.exit_code == 2 and "no prompt" in empty.stderr


def test_system_prompt_prefix_and_suffix_are_applied_and_shown(chat_project, upstream):
    chat_project.settings(
        '[development.prompt]\nsystem = "Be brief."\nprefix = "Q: "\nsuffix = " (short)"\n'
    )
    result = chat_project.run("chat", "-m", "good", "--show-prompt", "why?")
    sent = upstream.requests[-1]["body"]["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: why? (short)"},
    ]
    assert "[system] Be brief.\n[human] Q: why? (short)\n" in result.stderr
    chat_project.run("chat", "-m", "good", "-s", "Be poetic.", "why?")
    assert upstream.requests[-1]["body"]["messages"][0]["content"] == "Be poetic."


def test_model_choice_default_single_and_ambiguous(chat_project, project, upstream):
    assert chat_project.run("chat", "hi").stdout == "upstream: hi\n"  # chat.default_model
    unknown = chat_project.run("chat", "-m", "godo", "hi")
    assert unknown.exit_code == 1
    assert "unknown model 'godo'" in unknown.stderr and "'good'" in unknown.stderr
    project.base_settings = ""
    project.settings("[default.storage]\npath = 'h.db'\n")  # only echo is registered now
    assert project.run("chat", "hi").stdout == "echo: hi\n"
    project.settings(
        "[default.storage]\npath = 'h.db'\n"
        "[default.models.ollama]\nmodels = [{ model_name = 'x' }]\n"
    )
    many = project.run("chat", "hi")
    assert many.exit_code == 1
    assert "no model chosen" in many.stderr and "registered: echo, x" in many.stderr


@pytest.mark.parametrize(
    "model, why",
    [
        ("limited", "HTTP 429 rate limited"),
        ("slow", "timed out"),
        ("down", "connection failed"),
    ],
)
def test_failure_before_first_token_falls_back_and_says_who_answered(
    chat_project, upstream, model, why
):
    result = chat_project.run("chat", "-m", model, "hi")
    assert result.exit_code == 0, result.output
    assert result.stdout == "upstream: hi\n"
    assert f"note: model '{model}' failed ({why}" in result.stderr
    assert "trying 'good'" in result.stderr
    assert f"note: answered by 'good' (failed before it: '{model}': {why}" in result.stderr
    assistant = _last_conversation(chat_project)["messages"][-1]
    assert assistant["model_id"] == "good" and assistant["status"] == "complete"


def test_fallback_chain_goes_on_to_the_next_model(chat_project):
    result = chat_project.run("chat", "-m", "broken", "hi")
    assert result.stdout == "echo: hi\n"
    assert "model 'broken' failed (HTTP 500 server error" in result.stderr
    assert "model 'down' failed (connection failed" in result.stderr
    assert "answered by 'echo'" in result.stderr


def test_auth_error_does_not_fall_back_and_says_where_the_key_goes(chat_project, upstream):
    before = len(upstream.requests)
    result = chat_project.run("chat", "-m", "locked", "hi")
    assert result.exit_code == 1
    assert (
        "error: model 'locked' was refused: HTTP 401: the API key is missing or was rejected"
        in result.stderr
    )
    assert (
        "hint: check the key: `ai-assistant secrets set models.openai_compatible.api_key`, "
        "or export AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY"
    ) in result.stderr
    assert len(upstream.requests) == before + 1  # 'good' was not tried
    verbose = chat_project.run("-v", "chat", "-m", "locked", "hi")
    assert SECRET_KEY not in result.output + verbose.output  # not even in the traceback
    assert _last_conversation(chat_project)["messages"][-1]["status"] == "failed"


def test_bad_request_does_not_fall_back(chat_project):
    result = chat_project.run("chat", "-m", "picky", "hi")
    assert result.exit_code == 1
    assert "model 'picky' failed: HTTP 400" in result.stderr
    assert "answered by" not in result.stderr


def test_failure_without_fallback_suggests_configuring_one(chat_project):
    result = chat_project.run("chat", "-m", "unavailable", "hi")
    assert result.exit_code == 1
    assert "model 'unavailable' failed: HTTP 503 server error" in result.stderr
    assert 'to fall back, set chat.fallbacks = { "unavailable" = ["other-id"] }' in result.stderr


def test_reply_broken_mid_stream_keeps_what_arrived(chat_project):
    result = chat_project.run("chat", "-m", "flaky", "one two three")
    assert result.exit_code == 1
    assert result.stdout == "upstream: one\n"
    assert "error: the reply from 'flaky' broke off: connection failed" in result.stderr
    assistant = _last_conversation(chat_project)["messages"][-1]
    assert assistant["status"] == "failed"
    assert assistant["content"] == "upstream: one"
    assert "broke off" in assistant["error"]


def test_missing_key_for_the_chosen_model_is_a_clear_error(project):
    project.settings(
        "[default.storage]\npath = 'h.db'\n[default.models.openai_compatible]\n"
        "models = [{ model_name = 'gpt-4o-mini', endpoint = 'https://api.openai.com/v1' }]\n"
    )
    result = project.run("chat", "-m", "gpt-4o-mini", "hi")
    assert result.exit_code == 1
    assert "needs models.openai_compatible.api_key, which is not set" in result.stderr
    assert "AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY" in result.stderr


def test_continue_cid_and_no_log(chat_project, upstream):
    chat_project.run("chat", "-m", "good", "first question")
    chat_project.run("chat", "-c", "follow up")
    sent = upstream.requests[-1]["body"]["messages"]
    assert [m["content"] for m in sent[-3:]] == [
        "first question",
        "upstream: first question",
        "follow up",
    ]
    convs = _conversations(chat_project)
    assert len(convs) == 1 and convs[0]["message_count"] == 4
    chat_project.run("chat", "-m", "good", "another topic")
    chat_project.run("chat", "--cid", convs[0]["id"][:6], "third")
    assert [m["content"] for m in upstream.requests[-1]["body"]["messages"]][-1] == "third"
    assert len(upstream.requests[-1]["body"]["messages"]) == 5
    chat_project.run("chat", "--no-log", "-m", "good", "off the record")
    assert [c["message_count"] for c in _conversations(chat_project)] == [6, 2]
    bad = chat_project.run("chat", "--no-log", "-c", "x")
    assert bad.exit_code == 2


def test_conversations_show_list_delete(chat_project):
    chat_project.run("chat", "-m", "good", "keep me")
    conv_id = _conversations(chat_project)[0]["id"]
    shown = chat_project.run("conversations", "show", conv_id[:8])
    assert "keep me" in shown.stdout and "[assistant · good · " in shown.stdout
    table = chat_project.run("conversations", "list").stdout
    assert conv_id[:12] in table and "keep me" in table
    assert chat_project.run("conversations", "delete", conv_id).stdout == f"deleted {conv_id}\n"
    missing = chat_project.run("conversations", "show", conv_id)
    assert missing.exit_code == 1 and f"no conversation '{conv_id}'" in missing.stderr


def test_history_schema_is_migrated_once_and_recorded(chat_project):
    chat_project.run("chat", "-m", "good", "hi")
    chat_project.run("chat", "-m", "good", "hi again")
    db = sqlite3.connect(chat_project.root / "history.db")
    assert db.execute("SELECT version FROM schema_migrations").fetchall() == [
        (v,) for v in range(1, 6)
    ]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_python_api_chat_object(chat_project, upstream):
    host = load_host()
    chat = Chat(host, "good", store=open_store(host))
    assert "".join(chat.stream("streamed")) == "upstream: streamed"
    reply = chat.send("again")
    assert reply.text == "upstream: again" and reply.model_id == "good"
    assert [m["content"] for m in upstream.requests[-1]["body"]["messages"]][-3:] == [
        "streamed",
        "upstream: streamed",
        "again",
    ]
    # the same lazy registry serves a non-streaming call
    assert host.get_model("good").invoke("plain").content == "upstream: plain"
    assert upstream.requests[-1]["body"].get("stream") in (None, False)


def test_python_api_events_carry_a_models_tool_call_into_the_history(project, upstream):
    from ai_assistant.chat import Done, Token, ToolCall

    project.settings(
        f"""
        [default.models.openai_compatible]
        endpoint = "{upstream.url}"
        max_retries = 0
        timeout = 5
        models = [{{ model_name = "toolcall", id = "tooly" }}, {{ model_name = "ok", id = "good" }}]
        """
    )
    host = load_host()
    chat = Chat(host, "tooly", store=open_store(host))
    events = list(chat.events("weather?"))
    assert events[0] == ToolCall("call_weather_1", "get_weather", {"city": "Paris"})
    assert isinstance(events[-1], Done) and not any(isinstance(e, Token) for e in events)
    assert chat.last_reply.tool_calls == [
        {"id": "call_weather_1", "name": "get_weather", "args": {"city": "Paris"}}
    ]
    chat.switch_model("good")
    assert chat.send("and now?").text == "upstream: and now?"
    sent = upstream.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    again = Chat(host, conversation_id=chat.conversation_id, store=open_store(host))
    assert again.history[1].tool_calls == [  # as stored
        {"id": "call_weather_1", "name": "get_weather", "args": {"city": "Paris"}}
    ]
