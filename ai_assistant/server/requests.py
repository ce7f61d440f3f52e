"""Reading a request: body size, JSON, messages and the limits that apply to them."""

from __future__ import annotations

import json
from typing import Any

from ..errors import did_you_mean
from .errors import ApiError

ROLES = ("system", "user", "assistant")


class Limits:
    """``server.limits.*``: every over-limit request gets a 4xx naming the limit."""

    def __init__(self, config: Any) -> None:
        limits = config.get("server.limits") or {}
        self.max_body_bytes = int(limits.get("max_body_bytes", 1_048_576))
        self.max_messages = int(limits.get("max_messages", 256))
        self.max_prompt_chars = int(limits.get("max_prompt_chars", 400_000))
        self.request_timeout = float(limits.get("request_timeout", 300))


async def read_json(request: Any, limits: Limits) -> dict[str, Any]:
    """The request's JSON object, refusing a body over ``max_body_bytes`` before reading it all."""
    too_big = ApiError(
        413,
        f"request body is larger than server.limits.max_body_bytes ({limits.max_body_bytes} bytes)",
        code="request_too_large",
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise too_big
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def read_model_id(
    data: dict[str, Any], field: str, registry: Any, default: str | None = None
) -> str:
    """The registered model id in ``data[field]`` (or ``default``): 400 if absent, 404 with
    close matches if unknown."""
    model_id = data.get(field) or default
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, f"'{field}' is required", param=field)
    if model_id not in registry:
        raise ApiError(
            404,
            f"model '{model_id}' does not exist{did_you_mean(model_id, registry.ids())}",
            code="model_not_found",
            param=field,
        )
    return model_id


def text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, part in enumerate(content):
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                parts.append(part["text"])
            else:
                raise ApiError(
                    400,
                    f'{where}[{i}] must be a text part ({{"type": "text", "text": "..."}})',
                    param=where,
                )
        return "".join(parts)
    raise ApiError(400, f"{where} must be a string or a list of text parts", param=where)


def read_messages(
    data: dict[str, Any], limits: Limits, field: str = "messages", allow_empty: bool = False
) -> list[tuple[str, str]]:
    """(role, text) pairs from ``data[field]``, checked against the limits."""
    messages = data.get(field)
    if messages is None and allow_empty:
        return []
    if not isinstance(messages, list) or (not messages and not allow_empty):
        raise ApiError(400, f"'{field}' must be a non-empty array of messages", param=field)
    if len(messages) > limits.max_messages:
        raise ApiError(
            400,
            f"too many messages: {len(messages)} (server.limits.max_messages "
            f"is {limits.max_messages})",
            code="too_many_messages",
            param=field,
        )
    turns = []
    total = 0
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object with role and content", param=where)
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ROLES:
            raise ApiError(
                400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role"
            )
        text = text_of(message.get("content"), f"{where}.content")
        total += len(text)
        turns.append((role, text))
    if total > limits.max_prompt_chars:
        raise ApiError(
            400,
            f"prompt too long: {total} characters (server.limits."
            f"max_prompt_chars is {limits.max_prompt_chars})",
            code="prompt_too_long",
            param=field,
        )
    return turns


def model_options(data: dict[str, Any]) -> dict[str, Any]:
    """temperature, max_tokens and stop, checked, for the model call."""
    options: dict[str, Any] = {}
    temperature = data.get("temperature")
    if temperature is not None:
        if (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or not (0 <= temperature <= 2)
        ):
            raise ApiError(400, "temperature must be a number from 0 to 2", param="temperature")
        options["temperature"] = temperature
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ApiError(400, "max_tokens must be a positive integer", param="max_tokens")
        options["max_tokens"] = max_tokens
    stop = data.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ApiError(400, "stop must be a string or a list of strings", param="stop")
        options["stop"] = stop
    return options
