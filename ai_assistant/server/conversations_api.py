"""The conversation API for assistant UIs (the shape of the Backstage backend's routes):
models, messages that are stored in a conversation, and each caller's own conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.responses import StreamingResponse

from ..chat import Recorder, chat_settings
from ..store import UnknownConversationError
from . import schema
from .app import Gateway, json_response, sse
from .errors import ApiError
from .prompt import assemble
from .replies import ReplyStream
from .requests import model_options, read_flag, read_json, read_messages, read_model_id


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
    return {
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


def register(app: Any, gateway: Gateway) -> None:
    store = gateway.store

    def find(conversation_id: str, owner: str | None) -> dict[str, Any]:
        try:
            return store.conversation(conversation_id, owner)
        except UnknownConversationError:
            raise ApiError(
                404,
                f"no conversation '{conversation_id}'",
                "not_found_error",
                "conversation_not_found",
            ) from None

    @app.get("/api/models", **schema.operation("Models with plugin and status", "the models", 401))
    async def models(request: Request) -> Any:
        gateway.identity(request)
        return json_response({"models": [m.describe() for m in gateway.host.registry]})

    @app.post("/api/chat/message", **schema.chat_message())
    async def message(request: Request) -> Any:
        owner = gateway.identity(request)
        data = await read_json(request, gateway.limits)
        settings = chat_settings(gateway.host)
        turns = read_messages(data, gateway.limits)
        options = model_options(data)
        stream = read_flag(data, "stream")
        model_id = read_model_id(  # (404 after any 400)
            data, "modelId", gateway.host.registry, default=settings["default_model"]
        )
        history: list[tuple[str, str]] = []
        system = settings["system"]
        conversation_id = data.get("conversationId")
        if conversation_id is not None:
            if not isinstance(conversation_id, str):
                raise ApiError(400, "'conversationId' must be a string", param="conversationId")
            conv = find(conversation_id, owner)
            conversation_id = conv["id"]
            system = conv["system"] or system
            history = [(m["role"], m["content"]) for m in conv["messages"] if m["content"]]
        limit = gateway.limits.max_prompt_chars
        prompt = assemble(limit, turns, history, system, settings["prefix"], settings["suffix"])
        context = prompt.describe(limit)
        if prompt.trimmed:
            gateway.notice(
                f"conversation {conversation_id}: the oldest {prompt.trimmed} message(s) were "
                f"left out to fit server.limits.max_prompt_chars ({limit})"
            )
        recorder = Recorder(store, conversation_id, owner=owner, system=system)
        user_texts = [text for role, text in turns if role == "user"]
        reply = ReplyStream(
            gateway, model_id, prompt.messages, recorder, user_texts, options, stream=stream
        )
        await reply.start(request.receive)
        if not stream:
            text = await reply.collect()
            return json_response(
                {
                    "conversationId": recorder.conversation_id,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "modelId": reply.reply.model_id,
                    },
                    "usage": reply.usage(),
                    "context": context,
                }
            )

        async def events() -> AsyncIterator[str]:
            yield sse(
                {"type": "start", "conversationId": recorder.conversation_id, "context": context}
            )
            try:
                async for text in reply.tokens():
                    yield sse({"type": "token", "content": text})
            except ApiError as err:
                yield sse({"type": "error", **err.body()})
                return
            yield sse(
                {
                    "type": "done",
                    "conversationId": recorder.conversation_id,
                    "modelId": reply.reply.model_id,
                    "usage": reply.usage(),
                    "context": context,
                }
            )

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
        )

    @app.get(
        "/api/chat/conversations",
        **schema.operation("The caller's conversations", "the conversations", 401),
    )
    async def conversations(request: Request) -> Any:
        owner = gateway.identity(request)
        return json_response(
            {"conversations": [_conversation(row) for row in store.conversations(owner=owner)]}
        )

    @app.get(
        "/api/chat/{conversation_id}",
        **schema.operation("One of the caller's conversations", "it, with messages", 401, 404),
    )
    async def conversation(conversation_id: str, request: Request) -> Any:
        owner = gateway.identity(request)
        conv = find(conversation_id, owner)
        return json_response(
            {**_conversation(conv), "messages": [_message(m) for m in conv["messages"]]}
        )

    @app.delete(
        "/api/chat/{conversation_id}",
        **schema.operation("Delete one of the caller's conversations", "its id", 401, 404),
    )
    async def delete(conversation_id: str, request: Request) -> Any:
        owner = gateway.identity(request)
        full_id = find(conversation_id, owner)["id"]
        store.delete_conversation(full_id, owner)
        return json_response({"deleted": full_id})
