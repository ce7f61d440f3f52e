"""The conversation API for assistant UIs (the shape of the Backstage backend's routes):
models, messages that are stored in a conversation, each caller's own conversations, and
feedback on a reply."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from ..chat import ChatError, Message, Turn, chat_settings
from ..chat.events import Token, ToolResult
from ..storage import StoreError, UnknownConversationError, UnknownMessageError
from . import schema
from .deps import (
    Caller,
    Gateway,
    State,
    begin,
    json_response,
    settled,
    sse,
    store_error,
    whole_text,
)
from .errors import ApiError, from_chat_error
from .requests import model_options, read_flag, read_json, read_messages, read_model_id
from .tool_steps import server_tools, steps_of

router = APIRouter()


def _conversation(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "title": row["title"],
        "model": row["model"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if "message_count" in row:
        out["messageCount"] = row["message_count"]
    return out


def _message(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "role": row["role"],
        "content": row["content"],
        "modelId": row["model_id"],
        "status": row["status"],
        "error": row["error"],
        "createdAt": row["created_at"],
        "latencyMs": row["latency_ms"],
        "usage": {"inputTokens": row["input_tokens"], "outputTokens": row["output_tokens"]},
    }
    if row.get("tool_calls"):
        out["toolCalls"] = row["tool_calls"]
    if row.get("tool_call_id"):
        out["toolCallId"] = row["tool_call_id"]
    if row.get("score") is not None:
        out["score"] = {"value": row["score"], "comment": row["score_comment"]}
    return out


async def _find(state: Gateway, conversation_id: str, owner: str | None) -> dict[str, Any]:
    try:
        return await state.store.conversation(conversation_id, owner)
    except UnknownConversationError:
        raise ApiError(
            404,
            f"no conversation '{conversation_id}'",
            "not_found_error",
            "conversation_not_found",
        ) from None


@router.get("/api/models", **schema.operation("Models with plugin and status", "the models", 401))
async def models(state: State, owner: Caller) -> Any:
    return json_response({"models": [m.describe() for m in state.host.registry]})


@router.post("/api/chat/message", **schema.chat_message())
async def message(request: Request, state: State, owner: Caller) -> Any:
    data = await read_json(request, state.limits)
    settings = chat_settings(state.host)
    messages = read_messages(data, state.limits)
    options = model_options(data)
    stream = read_flag(data, "stream")
    model_id = read_model_id(  # (404 after any 400)
        data, "modelId", state.host.registry, default=settings["default_model"]
    )
    history: list[Message] = []
    system = settings["system"]
    conversation_id = data.get("conversationId")
    if conversation_id is not None:
        if not isinstance(conversation_id, str):
            raise ApiError(400, "'conversationId' must be a string", param="conversationId")
        conv = await _find(state, conversation_id, owner)
        conversation_id = conv["id"]
        system = conv["system"] or system
        history = [Message.of(m) for m in conv["messages"] if m["content"] or m.get("tool_calls")]
    limit = state.limits.max_prompt_chars
    try:
        turn = Turn(
            state.host,
            model_id,
            messages,
            history=history,
            system=system,
            store=state.store,
            conversation_id=conversation_id,
            owner=owner,
            surface="api",
            user=owner,
            stream=stream,
            options=options,
            max_prompt_chars=limit,
            timeout=state.limits.request_timeout,
            on_notice=state.notice,
            tools=server_tools(state.host, owner),
        )
    except ChatError as exc:
        raise from_chat_error(exc) from None
    context = turn.prompt.describe(limit)
    if turn.prompt.trimmed:
        state.notice(
            f"conversation {conversation_id}: the oldest {turn.prompt.trimmed} message(s) were "
            f"left out to fit server.limits.max_prompt_chars ({limit})"
        )
    reply = await begin(turn, request.receive, stream)
    if not stream:
        text = await whole_text(reply)
        answer: dict[str, Any] = {
            "id": reply.reply.message_id,
            "role": "assistant",
            "content": text,
            "modelId": reply.reply.model_id,
        }
        if reply.reply.tool_calls:
            answer["toolCalls"] = reply.reply.tool_calls
        if reply.reply.steps:
            answer["toolSteps"] = steps_of(reply.reply)
        if reply.reply.sources:
            answer["sources"] = reply.reply.sources
        return json_response(
            {
                "conversationId": turn.conversation_id,
                "message": answer,
                "usage": reply.reply.usage(),
                "context": context,
            }
        )

    async def events() -> AsyncIterator[str]:
        yield sse(
            {
                "type": "start",
                "conversationId": turn.conversation_id,
                "messageId": reply.reply.message_id,
                "context": context,
            }
        )
        try:
            async for event in reply.events():
                if isinstance(event, Token):
                    yield sse({"type": "token", "content": event.text})
                elif isinstance(event, ToolResult):
                    yield sse(
                        {
                            "type": "tool_result",
                            "toolCallId": event.tool_call_id,
                            "name": event.name,
                            "content": event.content,
                            "error": event.error,
                            **({"sources": list(event.sources)} if event.sources else {}),
                        }
                    )
                else:
                    yield sse(
                        {
                            "type": "tool_call",
                            "id": event.id,
                            "name": event.name,
                            "args": event.args,
                        }
                    )
        except ApiError as err:
            await settled(turn)
            yield sse({"type": "error", **err.body()})
            return
        try:
            await turn.recorder.flush()
        except StoreError as exc:
            yield sse({"type": "error", **store_error(exc).body()})
            return
        yield sse(
            {
                "type": "done",
                "conversationId": turn.conversation_id,
                "messageId": reply.reply.message_id,
                "modelId": reply.reply.model_id,
                "usage": reply.reply.usage(),
                "context": context,
                **({"sources": reply.reply.sources} if reply.reply.sources else {}),
            }
        )

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


@router.post("/api/chat/message/{message_id}/score", **schema.score())
async def score(message_id: str, request: Request, state: State, owner: Caller) -> Any:
    data = await read_json(request, state.limits)
    value = data.get("score")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, "'score' must be a number", param="score")
    comment = data.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise ApiError(400, "'comment' must be a string", param="comment")
    not_found = ApiError(
        404, f"no assistant message '{message_id}'", "not_found_error", "message_not_found"
    )
    if not message_id.isdigit() or len(message_id) > 18:
        raise not_found
    try:
        row = await state.store.score_message(int(message_id), float(value), comment, owner)
    except UnknownMessageError:
        raise not_found from None
    metadata = {
        "model_id": row["model_id"],
        "conversation_id": row["conversation_id"],
        "user": owner,
        "surface": "api",
        "message_id": row["id"],
    }
    await _hand_to_callbacks(state, row["id"], float(value), comment, metadata)
    return json_response(
        {
            "messageId": row["id"],
            "conversationId": row["conversation_id"],
            "score": value,
            "comment": comment,
        }
    )


async def _hand_to_callbacks(
    state: Gateway, message_id: int, value: float, comment: str | None, metadata: dict[str, Any]
) -> None:
    """``on_score`` of every callback handler that has one (see ``hookspecs.register_callbacks``);
    one that fails is logged and the others still run."""
    if not len(state.host.callbacks):
        return
    for handler in state.host.callbacks.handlers(metadata, state.notice):
        on_score = getattr(handler, "on_score", None)
        if on_score is None:
            continue
        try:
            if asyncio.iscoroutinefunction(on_score):
                await on_score(message_id, value, comment, metadata)
            else:  # (an SDK call may block: not on the event loop)
                await asyncio.to_thread(on_score, message_id, value, comment, metadata)
        except Exception as exc:  # noqa: BLE001 - feedback is stored whatever a plugin does
            state.notice(f"callback on_score failed: {type(exc).__name__}: {exc}")


@router.get(
    "/api/chat/conversations",
    **schema.operation("The caller's conversations", "the conversations", 401),
)
async def conversations(state: State, owner: Caller) -> Any:
    rows = await state.store.conversations(owner=owner)
    return json_response({"conversations": [_conversation(row) for row in rows]})


@router.get(
    "/api/chat/{conversation_id}",
    **schema.operation("One of the caller's conversations", "it, with messages", 401, 404),
)
async def conversation(conversation_id: str, state: State, owner: Caller) -> Any:
    conv = await _find(state, conversation_id, owner)
    return json_response(
        {**_conversation(conv), "messages": [_message(m) for m in conv["messages"]]}
    )


@router.delete(
    "/api/chat/{conversation_id}",
    **schema.operation("Delete one of the caller's conversations", "its id", 401, 404),
)
async def delete(conversation_id: str, state: State, owner: Caller) -> Any:
    full_id = (await _find(state, conversation_id, owner))["id"]
    await state.store.delete_conversation(full_id, owner)
    return json_response({"deleted": full_id})
