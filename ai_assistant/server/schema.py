"""The OpenAPI description of the routes (``/openapi.json``).

The routes read their bodies themselves (so every error has OpenAI's shape and names its field);
these schemas document what they accept and answer, for clients and for schema-driven tests.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code", "param"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}

TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}

TOOL_CALL = {
    "type": "object",
    "required": ["id", "function"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "arguments": {"type": "string", "description": "a JSON object"},
            },
        },
    },
}

MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}, {"type": "null"}],
            "description": "required, except for an assistant message with tool_calls",
        },
        "tool_calls": {"type": "array", "items": TOOL_CALL, "description": "assistant only"},
        "tool_call_id": {"type": "string", "description": "tool only: the call it answers"},
    },
}

MODEL_OPTIONS: dict[str, Any] = {
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}

TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": {"type": "object", "description": "a JSON schema"},
            },
        },
    },
}

CHAT_COMPLETION_REQUEST = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "stream": {"type": ["boolean", "null"]},
        "stream_options": {
            "type": ["object", "null"],
            "properties": {"include_usage": {"type": ["boolean", "null"]}},
        },
        "tools": {
            "type": ["array", "null"],
            "items": TOOL,
            "description": "the client's tools: the model's calls come back for the client to "
            "run. Without them, the tools the caller's server.tools patterns allow are run here",
        },
        "tool_choice": {
            "anyOf": [
                {"enum": ["none", "auto", "required"]},
                {
                    "type": "object",
                    "required": ["type", "function"],
                    "properties": {
                        "type": {"const": "function"},
                        "function": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}},
                        },
                    },
                },
            ],
            "description": "only with tools",
        },
        **MODEL_OPTIONS,
    },
    "example": {"model": "echo", "messages": [{"role": "user", "content": "hi"}]},
}

CHAT_MESSAGE_REQUEST = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "modelId": {
            "type": "string",
            "minLength": 1,
            "description": "default: chat.default_model",
        },
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "conversationId": {
            "type": ["string", "null"],
            "description": "continue this conversation (an id or a unique prefix)",
        },
        "stream": {"type": ["boolean", "null"]},
        **MODEL_OPTIONS,
    },
    "example": {"modelId": "echo", "messages": [{"role": "user", "content": "hi"}]},
}

_ANY_OBJECT = {"type": "object"}
_JSON = "application/json"
_STATUS_TEXT = {
    400: "a malformed request or a bad field (named in `param`)",
    401: "a missing or wrong API key",
    404: "an unknown model, conversation or message",
    413: "a body over server.limits.max_body_bytes",
    429: "the provider rate-limited the request",
    502: "the provider failed",
    503: "the model's key is not configured",
    504: "no reply within server.limits.request_timeout",
}


def _responses(ok: str, *statuses: int, stream: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {_JSON: {"schema": _ANY_OBJECT}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    out: dict[str, Any] = {"200": {"description": ok, "content": content}}
    for status in statuses:
        out[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {_JSON: {"schema": ERROR}},
        }
    return out


READY = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "models": {"type": "integer", "description": "only for a caller with a valid key"},
        "failed_plugins": {"type": "array", "items": {"type": "string"}},
        "problems": {"type": "array", "items": {"type": "string"}},
        "pid": {"type": "integer", "description": "the worker process that answered"},
    },
}


def readiness() -> dict[str, Any]:
    summary = "Ready: models registered, history store writable (details need a valid key)"
    answer = {_JSON: {"schema": READY}}
    responses = {
        "200": {"description": "ready", "content": answer},
        "503": {"description": "not ready", "content": answer},
    }
    return {"summary": summary, "openapi_extra": {"responses": responses}}


BEARER = [{"bearer": []}]
_UPSTREAM = (400, 401, 404, 413, 429, 502, 503, 504)


def operation(
    summary: str,
    ok: str,
    *statuses: int,
    body: dict[str, Any] | None = None,
    stream: bool = False,
    auth: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for a FastAPI route decorator describing one operation."""
    extra: dict[str, Any] = {"responses": _responses(ok, *statuses, stream=stream)}
    if auth:
        extra["security"] = BEARER
    if body is not None:
        extra["requestBody"] = {"required": True, "content": {_JSON: {"schema": body}}}
    return {"summary": summary, "openapi_extra": extra}


def chat_completions() -> dict[str, Any]:
    return operation(
        "OpenAI chat completions (JSON, or SSE chunks with `stream`)",
        "the completion, or its chunks",
        *_UPSTREAM,
        body=CHAT_COMPLETION_REQUEST,
        stream=True,
    )


def chat_message() -> dict[str, Any]:
    return operation(
        "A message in a stored conversation (JSON, or SSE events with `stream`)",
        "the reply and the conversation id, or start/token/done events",
        *_UPSTREAM,
        body=CHAT_MESSAGE_REQUEST,
        stream=True,
    )


SCORE_REQUEST = {
    "type": "object",
    "required": ["score"],
    "properties": {
        "score": {"type": "number"},
        "comment": {"type": ["string", "null"]},
    },
    "example": {"score": 1, "comment": "spot on"},
}


def score() -> dict[str, Any]:
    return operation(
        "Feedback on an assistant message of the caller's own conversations",
        "the stored score",
        400,
        401,
        404,
        413,
        body=SCORE_REQUEST,
    )


def security_schemes() -> dict[str, Any]:
    return {"bearer": {"type": "http", "scheme": "bearer"}}
