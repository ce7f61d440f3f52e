"""Reading a request: body size, JSON, messages and the limits that apply to them."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from ..chat.prompt import Message
from ..chat.text import unicode_fault
from ..errors import did_you_mean
from .errors import ApiError

ROLES = ("system", "user", "assistant", "tool")


class Limits:
    """``server.limits.*``: every over-limit request gets a 4xx naming the limit."""

    def __init__(self, config: Any) -> None:
        self.max_body_bytes = config.value("server.limits.max_body_bytes")
        self.max_messages = config.value("server.limits.max_messages")
        self.max_prompt_chars = config.value("server.limits.max_prompt_chars")
        self.request_timeout = float(config.value("server.limits.request_timeout"))


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
        data = json.loads(body, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8: {exc.reason}") from None
    except RecursionError:
        raise ApiError(400, "request body is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or a number too long to convert
        reason = _first_line(exc)
        if "integer string conversion" in reason:
            reason = f"an integer has more than {sys.get_int_max_str_digits()} digits"
        raise ApiError(400, f"request body is not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    if _ESCAPED_SURROGATE.search(body):
        _refuse_lone_surrogates(data)
    return data


# JSON text escapes such as \ud800 decode to lone surrogates, which cannot be stored or sent on
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _refuse_lone_surrogates(data: Any) -> None:
    """400 naming the first field whose text holds an unpaired surrogate (walked without
    recursion: the body may be nested as deep as the JSON parser allows)."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if unicode_fault(value):
                raise ApiError(
                    400,
                    f"{where or 'request body'} holds an unpaired UTF-16 surrogate escape",
                    param=where or None,
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if unicode_fault(key):
                    raise ApiError(400, "a field name holds an unpaired UTF-16 surrogate escape")
                pending.append((path, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


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
) -> list[Message]:
    """The messages in ``data[field]`` (OpenAI's shape: an assistant message may carry
    ``tool_calls``, a ``tool`` message answers one by ``tool_call_id``), checked against
    ``max_messages`` (the prompt's size is checked once it is assembled, by the chat core)."""
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
    return [_read_message(message, f"{field}[{i}]") for i, message in enumerate(messages)]


def _read_message(message: Any, where: str) -> Message:
    if not isinstance(message, dict):
        raise ApiError(400, f"{where} must be an object with role and content", param=where)
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role not in ROLES:
        raise ApiError(
            400, f"{where}.role must be one of {', '.join(ROLES)}", param=f"{where}.role"
        )
    calls = message.get("tool_calls")
    if role == "assistant" and calls is not None:
        tool_calls = _read_tool_calls(calls, f"{where}.tool_calls")
        content = message.get("content")
        text = "" if content is None else text_of(content, f"{where}.content")
        return Message(role, text, tool_calls)
    text = text_of(message.get("content"), f"{where}.content")
    if role != "tool":
        return Message(role, text)
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ApiError(
            400,
            f"{where}.tool_call_id is required: the id of the tool call this answers",
            param=f"{where}.tool_call_id",
        )
    return Message(role, text, tool_call_id=call_id)


def _read_tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    """OpenAI's ``[{"id", "type": "function", "function": {"name", "arguments"}}]`` as the chat
    core's ``[{"id", "name", "args"}]`` (``arguments`` is a JSON object in a string)."""
    if not isinstance(calls, list):
        raise ApiError(400, f"{where} must be an array of tool calls", param=where)
    out = []
    for j, call in enumerate(calls):
        here = f"{where}[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ApiError(
                400, f"{here} must be an object with id and function", param=f"{here}.function"
            )
        call_id, name = call.get("id"), function.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise ApiError(400, f"{here}.id must be a non-empty string", param=f"{here}.id")
        if not isinstance(name, str) or not name:
            raise ApiError(
                400,
                f"{here}.function.name must be a non-empty string",
                param=f"{here}.function.name",
            )
        arguments = function.get("arguments", "{}")
        try:
            args = json.loads(arguments) if isinstance(arguments, str) else None
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise ApiError(
                400,
                f"{here}.function.arguments must be a JSON object in a string",
                param=f"{here}.function.arguments",
            )
        out.append({"id": call_id, "name": name, "args": args})
    return out


def read_flag(data: dict[str, Any], field: str, where: str | None = None) -> bool:
    """A boolean field (absent or null: false)."""
    value = data.get(field)
    if value is not None and not isinstance(value, bool):
        where = where or field
        raise ApiError(400, f"'{where}' must be true or false", param=where)
    return value is True


def read_include_usage(data: dict[str, Any]) -> bool:
    """``stream_options.include_usage``; ``stream_options`` must be an object when given."""
    options = data.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object", param="stream_options")
    return read_flag(options, "include_usage", "stream_options.include_usage")


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
