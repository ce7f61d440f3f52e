"""OpenAI's protocol: ``GET /v1/models`` and ``POST /v1/chat/completions`` (JSON or SSE)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from ..chat import ChatError, Turn
from ..chat.events import Token, ToolCall, ToolResult
from ..storage import StoreError
from . import schema
from .deps import Caller, State, begin, json_response, settled, sse, store_error, whole_text
from .errors import ApiError, from_chat_error
from .requests import (
    model_options,
    read_flag,
    read_include_usage,
    read_json,
    read_messages,
    read_model_id,
)
from .tool_steps import read_tool_choice, read_tools, server_tools, step, steps_of

router = APIRouter()


def _chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> str:
    """A ``chat.completion.chunk`` event: a delta, or (with ``usage``) the closing usage."""
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
    }
    if usage is None:
        chunk["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    else:
        chunk["usage"] = usage
    return sse(chunk)


def tool_call(call: ToolCall | dict[str, Any], index: int | None = None) -> dict[str, Any]:
    """A tool call in OpenAI's shape (``arguments`` as a JSON string)."""
    if isinstance(call, ToolCall):
        call = {"id": call.id, "name": call.name, "args": call.args}
    out: dict[str, Any] = {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
    }
    if index is not None:
        out = {"index": index, **out}
    return out


def _tool_step(cid: str, created: int, model: str, event: ToolCall | ToolResult) -> str:
    return sse(
        {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "tool_step": step(event),
        }
    )


@router.get("/v1/models", **schema.operation("Every registered model", "OpenAI's list", 401))
async def list_models(state: State, owner: Caller) -> Any:
    return json_response(
        {
            "object": "list",
            "data": [
                {"id": m.id, "object": "model", "created": 0, "owned_by": m.plugin}
                for m in state.host.registry
            ],
        }
    )


@router.post("/v1/chat/completions", **schema.chat_completions())
async def chat_completions(request: Request, state: State, owner: Caller) -> Any:
    data = await read_json(request, state.limits)
    messages = read_messages(data, state.limits)
    options = model_options(data)
    stream = read_flag(data, "stream")
    include_usage = read_include_usage(data)
    client_tools = read_tools(data)  # the client runs these; else the gateway may run its own
    tool_choice = read_tool_choice(data, client_tools)
    model_id = read_model_id(data, "model", state.host.registry)  # (404 after any 400)
    tools = [] if client_tools else server_tools(state.host, owner)
    last_user = [m for m in messages if m.role == "user"][-1:]
    try:
        turn = Turn(
            state.host,
            model_id,
            messages,
            store=state.store if state.store_completions else None,
            owner=owner,
            record=last_user,
            surface="openai",
            user=owner,
            stream=stream,  # no upstream stream if none is read
            record_whole=not stream,  # (one write: nobody sees this reply before it ends)
            options=options,
            max_prompt_chars=state.limits.max_prompt_chars,
            timeout=state.limits.request_timeout,
            on_notice=state.notice,
            tools=tools,
            client_tools=client_tools,
            tool_choice=tool_choice,
        )
    except ChatError as exc:
        raise from_chat_error(exc) from None
    reply = await begin(turn, request.receive, stream)
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if not stream:
        text = await whole_text(reply)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reply.reply.tool_calls:
            message["content"] = text or None
            message["tool_calls"] = [tool_call(c) for c in reply.reply.tool_calls]
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": reply.reply.model_id,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if reply.reply.tool_calls else "stop",
                    "message": message,
                }
            ],
        }
        if reply.reply.steps:  # the gateway ran tools: an extension field, ignored by clients
            body["tool_steps"] = steps_of(reply.reply)
        if reply.reply.sources:  # what search_knowledge cited: an extension field too
            body["sources"] = reply.reply.sources
        usage = reply.reply.usage()
        if usage:
            body["usage"] = usage
        return json_response(body)

    async def events() -> AsyncIterator[str]:
        model = reply.reply.model_id
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
        calls = 0
        try:
            async for event in reply.events():
                if isinstance(event, Token):
                    yield _chunk(cid, created, model, {"content": event.text})
                elif tools or isinstance(event, ToolResult):
                    # a step of the gateway's own tool loop: a chunk with no choices (which
                    # clients skip, as they do the usage chunk) and an extension field
                    yield _tool_step(cid, created, model, event)
                else:
                    yield _chunk(cid, created, model, {"tool_calls": [tool_call(event, calls)]})
                    calls += 1
        except ApiError as err:
            await settled(turn)
            yield sse(err.body())
            yield sse("[DONE]")
            return
        try:
            await turn.recorder.flush()
        except StoreError as exc:
            yield sse(store_error(exc).body())
            yield sse("[DONE]")
            return
        yield _chunk(cid, created, model, finish="tool_calls" if calls else "stop")
        usage = reply.reply.usage()
        if include_usage and usage:
            yield _chunk(cid, created, model, usage=usage)
        yield sse("[DONE]")

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
