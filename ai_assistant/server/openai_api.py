"""OpenAI's protocol: ``GET /v1/models`` and ``POST /v1/chat/completions`` (JSON or SSE)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.responses import StreamingResponse

from ..chat import Recorder
from . import schema
from .app import Gateway, json_response, sse
from .errors import ApiError
from .prompt import assemble
from .replies import ReplyStream
from .requests import (
    model_options,
    read_flag,
    read_include_usage,
    read_json,
    read_messages,
    read_model_id,
)


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


def register(app: Any, gateway: Gateway) -> None:
    @app.get("/v1/models", **schema.operation("Every registered model", "OpenAI's list", 401))
    async def list_models(request: Request) -> Any:
        gateway.identity(request)
        return json_response(
            {
                "object": "list",
                "data": [
                    {"id": m.id, "object": "model", "created": 0, "owned_by": m.plugin}
                    for m in gateway.host.registry
                ],
            }
        )

    @app.post("/v1/chat/completions", **schema.chat_completions())
    async def chat_completions(request: Request) -> Any:
        owner = gateway.identity(request)
        data = await read_json(request, gateway.limits)
        turns = read_messages(data, gateway.limits)
        options = model_options(data)
        stream = read_flag(data, "stream")
        include_usage = read_include_usage(data)
        model_id = read_model_id(data, "model", gateway.host.registry)  # (404 after any 400)
        prompt = assemble(gateway.limits.max_prompt_chars, turns)
        store = gateway.store if gateway.store_completions else None
        recorder = Recorder(store, None, owner=owner)
        last_user = [text for role, text in turns if role == "user"][-1:]
        reply = ReplyStream(
            gateway, model_id, prompt.messages, recorder, last_user, options, stream=stream
        )
        await reply.start(request.receive)
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not stream:
            text = await reply.collect()
            body = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": reply.reply.model_id,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
            }
            usage = reply.usage()
            if usage:
                body["usage"] = usage
            return json_response(body)

        async def events() -> AsyncIterator[str]:
            model = reply.reply.model_id
            yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
            try:
                async for text in reply.tokens():
                    yield _chunk(cid, created, model, {"content": text})
            except ApiError as err:
                yield sse(err.body())
                yield sse("[DONE]")
                return
            yield _chunk(cid, created, model, finish="stop")
            usage = reply.usage()
            if include_usage and usage:
                yield _chunk(cid, created, model, usage=usage)
            yield sse("[DONE]")

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
