"""``OpenAIChatModel``: a LangChain chat model for any endpoint that speaks OpenAI's Chat
Completions protocol (OpenAI, Azure AI Foundry's /openai/v1/, vLLM, llama.cpp, Ollama, LM
Studio), on the HTTP client LangChain itself loads (httpx2), without the openai SDK.

It is a ``BaseChatModel`` like any other, so callbacks, LangSmith tracing, ``bind_tools`` and
``with_structured_output`` work as they do for every model. What it leaves out, measured in
``benchmarks/README.md`` ("A chat model without the openai SDK"): importing the openai SDK and
langchain_openai and building ``ChatOpenAI`` cost about 650 ms of a one-shot chat, and the SDK's
parameter transform and ChatOpenAI's executor hop about 1 ms of the gateway's CPU a request.
Plugins that want the SDK's other APIs (Responses, Azure AD tokens) build ``ChatOpenAI`` or
``AzureChatOpenAI`` themselves; ``azure_openai`` does.

Requests are retried as the openai SDK does (``max_retries``, 2 by default: connection errors,
timeouts, 408, 409, 429 and 5xx, with exponential back-off and ``Retry-After``). An HTTP error
is an ``APIStatusError`` with the status and the server's error object; a reply that is not what
the protocol says is an ``APIResponseError``. HTTP clients are made on first use, one per event
loop (an httpx client belongs to the loop that first used it), sharing one TLS context.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import itertools
import json
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    is_data_content_block,
)
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, SecretStr, model_validator

from . import __version__

# with no timeout set, as the openai SDK: 600 s for each step of a request, 5 s to connect
_DEFAULT_TIMEOUT = httpx2.Timeout(600.0, connect=5.0)
_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)  # (the SDK's)
_RETRY_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 120.0  # seconds: a server asking to wait longer is not retried (as the SDK)
# after [DONE], what is left of the body (its end, mostly) is read for at most this long, so
# that the connection can serve the next request; a server slower than that loses it
_DRAIN_SECONDS = 0.05
_DRAIN_LIMIT = 65536  # bytes
# failures of a request that another try may not have: the connection, not the request
_RETRY_ERRORS = (
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,  # (a kept-alive connection the server had just closed)
    httpx2.ProxyError,
)
_DROPPED_BLOCKS = frozenset({"tool_use", "thinking", "reasoning_content", "function_call"})
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # (only these: JSON may hold U+2028 unescaped)
_DEVELOPER_ROLE = re.compile(r"^o\d")  # OpenAI's o-series take system text as "developer"
# ChatOpenAI's names for settings this model has under other names
_CHATOPENAI_NAMES = {
    "openai_api_key": "api_key",
    "openai_api_base": "base_url",
    "request_timeout": "timeout",
    "max_completion_tokens": "max_tokens",
    "openai_organization": "organization",
}
# the Chat Completions request's own fields that may be set for every request
_BODY_FIELDS = frozenset(
    [
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream_options",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    ]
)


class APIError(Exception):
    """The endpoint could not give a reply."""

    status_code: int | None = None


class APIStatusError(APIError):
    """The endpoint answered with an HTTP error; ``body`` is its error object (OpenAI's
    ``{"error": {...}}``, unwrapped) or its text."""

    def __init__(self, status_code: int, body: Any, response: Any = None) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status_code}: {message}" if message else f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body
        self.response = response


class APIResponseError(APIError):
    """The endpoint answered, but not as the Chat Completions protocol says."""


class APIKeyError(APIError):
    """The key cannot be sent as it is (nothing was sent)."""

    failure_kind = "auth"  # (the chat core says where the key is set)


class OpenAIChatModel(BaseChatModel):
    """A chat model behind ``base_url``'s ``/chat/completions``."""

    model_config = ConfigDict(populate_by_name=True)

    model_name: str = Field(alias="model")
    base_url: str
    api_key: SecretStr | None = None
    timeout: float | None = None  # seconds for each step of a request (None: the SDK's)
    max_retries: int = Field(default=2, ge=0)
    default_headers: dict[str, str] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stream_usage: bool = True  # ask for token usage on streamed replies (stream_options)
    streaming: bool = False  # invoke() streams from the server too (LangChain reads it)
    organization: str | None = None  # sent as OpenAI-Organization, for OpenAI's own API
    model_kwargs: dict[str, Any] = Field(default_factory=dict)  # more fields for the body
    # clients to use instead of the model's own (for every event loop): tests, proxies, mocks
    http_client: Any = Field(default=None, exclude=True)
    http_async_client: Any = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _settings_of_chatopenai(cls, values: Any) -> Any:
        """ChatOpenAI's names for the same settings are taken (``openai_api_key``,
        ``request_timeout``...); request fields that are not settings (``top_p``, ``seed``,
        ``reasoning_effort``..., and ``extra_body``'s) go in every request's body, as
        ChatOpenAI sends them. Any other name is refused, naming it: a typo must not end up in
        the body, nor a key."""
        if not isinstance(values, dict):
            return values
        known = set(cls.model_fields)
        known |= {f.alias for f in cls.model_fields.values() if f.alias}
        values = {_CHATOPENAI_NAMES.get(key, key): value for key, value in values.items()}
        extra = {key: value for key, value in values.items() if key not in known}
        if not extra:
            return values
        body = dict(extra.pop("extra_body", None) or {})
        unknown = sorted(key for key in extra if key not in _BODY_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown setting {', '.join(map(repr, unknown))}: a field of the request's "
                "body goes in model_kwargs (or extra_body)"
            )
        values = {key: value for key, value in values.items() if key in known}
        values["model_kwargs"] = {**extra, **body, **(values.get("model_kwargs") or {})}
        return values

    @property
    def _llm_type(self) -> str:
        return "openai-compatible"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "base_url": self.base_url}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: dict | str | bool | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Offer ``tools`` (anything ``convert_to_openai_tool`` takes) to the model.
        ``tool_choice``: a tool's name, ``"auto"``, ``"none"``, ``"required"`` (or ``"any"``,
        or ``True``), or OpenAI's dict."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        formatted = [convert_to_openai_tool(tool, strict=strict) for tool in tools]
        names = {tool["function"]["name"] for tool in formatted if "function" in tool}
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        if tool_choice:
            if tool_choice is True or tool_choice == "any":
                tool_choice = "required"
            elif isinstance(tool_choice, str) and tool_choice in names:
                tool_choice = {"type": "function", "function": {"name": tool_choice}}
            elif not isinstance(tool_choice, (str, dict)):
                raise ValueError(f"tool_choice must be a str, bool or dict, not {tool_choice!r}")
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: Any,
        *,
        method: str = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Replies parsed into ``schema`` (a pydantic class, a TypedDict or a JSON schema), as
        ChatOpenAI's: ``method="json_schema"`` (the default: the server keeps the reply to
        the schema, ``response_format``), ``"function_calling"`` (a tool the model must call)
        or ``"json_mode"`` (any JSON object: say in the prompt what it should hold).
        ``strict=True`` asks the server to hold to the schema exactly."""
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.utils.function_calling import convert_to_openai_function
        from langchain_core.utils.pydantic import is_basemodel_subclass

        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        function = convert_to_openai_function(schema, strict=strict)
        if method == "function_calling":
            from langchain_core.output_parsers.openai_tools import (
                JsonOutputKeyToolsParser,
                PydanticToolsParser,
            )

            model = self.bind_tools(
                [schema], tool_choice=function["name"], parallel_tool_calls=False, strict=strict
            )
            parser: Any = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if pydantic
                else JsonOutputKeyToolsParser(key_name=function["name"], first_tool_only=True)
            )
        else:
            if method == "json_schema":
                named = {key: function[key] for key in ("name", "description") if key in function}
                named["schema"] = function["parameters"]
                if strict is not None:
                    named["strict"] = strict
                response_format = {"type": "json_schema", "json_schema": named}
            elif method == "json_mode":
                response_format = {"type": "json_object"}
            else:
                raise ValueError(
                    f"method must be json_schema, function_calling or json_mode, not {method!r}"
                )
            model = self.bind(response_format=response_format)
            parser = (
                PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
            )
        if not include_raw:
            return model | parser
        from operator import itemgetter

        from langchain_core.runnables import RunnableMap, RunnablePassthrough

        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        ).with_fallbacks(
            [RunnablePassthrough.assign(parsed=lambda _: None)], exception_key="parsing_error"
        )
        return RunnableMap(raw=model) | parsed

    # -- the request ------------------------------------------------------------------------

    def _payload(
        self, messages: list[BaseMessage], stop: list[str] | None, stream: bool, kwargs: dict
    ) -> bytes:
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": [message_dict(message) for message in messages],
        }
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        payload.update(self.model_kwargs)
        if stop:
            payload["stop"] = stop
        for key, value in kwargs.items():  # bound and per-call: tools, temperature...
            if value is not None and not key.startswith("ls_"):
                payload[key] = value
        if "max_tokens" in payload:  # (OpenAI's name since 2024; reasoning models need it)
            payload["max_completion_tokens"] = payload.pop("max_tokens")
        if _DEVELOPER_ROLE.match(self.model_name):
            for message in payload["messages"]:
                if message["role"] == "system":
                    message["role"] = "developer"
        if stream:
            payload["stream"] = True
            if self.stream_usage and "stream_options" not in payload:
                payload["stream_options"] = {"include_usage": True}
        return json.dumps(payload, ensure_ascii=False).encode()

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"ai-assistant/{__version__}",
        }
        # (a key read from a file or a variable may end in a line break: it is not the key's)
        key = self.api_key.get_secret_value().strip() if self.api_key is not None else ""
        if key:
            if not key.isprintable():
                raise APIKeyError("the API key has a control character in it (a line break?)")
            headers["Authorization"] = f"Bearer {key}"
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        headers.update(self.default_headers or {})
        return headers

    @property
    def _url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _timeout(self) -> Any:
        if self.timeout is None:
            return _DEFAULT_TIMEOUT
        return httpx2.Timeout(self.timeout)

    def async_client(self) -> Any:
        """The HTTP client this model uses on the running event loop (made on first use;
        nothing is connected until a request)."""
        if self.http_async_client is not None:
            return self.http_async_client
        return _clients.for_loop(asyncio.get_running_loop())

    def _sync_client(self) -> Any:
        if self.http_client is not None:
            return self.http_client
        return _clients.for_thread()

    async def _asend(self, body: bytes, stream: bool) -> Any:
        """The endpoint's response (opened, when streaming), retried as the openai SDK does."""
        client = self.async_client()
        headers, timeout = self._headers(), self._timeout()
        for attempt in itertools.count():
            request = client.build_request(
                "POST", self._url, content=body, headers=headers, timeout=timeout
            )
            try:
                response = await client.send(request, stream=stream)
                if response.status_code < 300:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except _RETRY_ERRORS:
                wait = self._retry_wait(attempt)
                if wait is None:
                    raise
            else:
                wait = self._retry_wait(attempt, response)
                if wait is None:
                    raise _status_error(response)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, body: bytes, stream: bool) -> Any:
        """``_asend`` for threads without an event loop."""
        client = self._sync_client()
        headers, timeout = self._headers(), self._timeout()
        for attempt in itertools.count():
            request = client.build_request(
                "POST", self._url, content=body, headers=headers, timeout=timeout
            )
            try:
                response = client.send(request, stream=stream)
                if response.status_code < 300:
                    return response
                try:
                    response.read()
                finally:
                    response.close()
            except _RETRY_ERRORS:
                wait = self._retry_wait(attempt)
                if wait is None:
                    raise
            else:
                wait = self._retry_wait(attempt, response)
                if wait is None:
                    raise _status_error(response)
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_wait(self, attempt: int, response: Any = None) -> float | None:
        """Seconds to wait before trying again after try ``attempt`` (from 0) failed, with
        ``response`` or for want of one; None when there is no next try (as the openai SDK:
        ``max_retries``; 408, 409, 429 and 5xx, or what ``x-should-retry`` says; the
        server's ``Retry-After`` up to two minutes, and no retry when it asks for longer)."""
        if attempt >= self.max_retries:
            return None
        wait = None
        if response is not None:
            should = response.headers.get("x-should-retry")
            if should == "false" or (
                should != "true"
                and response.status_code not in _RETRY_STATUSES
                and response.status_code < 500
            ):
                return None
            wait = _retry_after(response.headers)
            if wait is not None and wait > MAX_RETRY_AFTER:
                return None
        if wait is not None and wait > 0:
            return wait
        return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())

    # -- LangChain's four entry points --------------------------------------------------------

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = await self._asend(self._payload(messages, stop, False, kwargs), stream=False)
        return chat_result(_json(response))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        response = self._send(self._payload(messages, stop, False, kwargs), stream=False)
        return chat_result(_json(response))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        response = await self._asend(self._payload(messages, stop, True, kwargs), stream=True)
        try:
            if _is_json(response):  # (a server that answers a stream with one completion)
                await response.aread()
                yield _as_chunk(chat_result(_json(response)))
                return
            events = _Events()
            body = response.aiter_bytes()
            async for raw in body:
                for chunk in events.feed(raw):
                    yield chunk
                if events.done:
                    break
            else:
                for chunk in events.end():
                    yield chunk
                return
            if response.headers.get("connection", "").lower() != "close":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_drain(body), _DRAIN_SECONDS)
        finally:
            await response.aclose()

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        response = self._send(self._payload(messages, stop, True, kwargs), stream=True)
        try:
            if _is_json(response):
                response.read()
                yield _as_chunk(chat_result(_json(response)))
                return
            events = _Events()
            for raw in response.iter_bytes():  # (ended at [DONE]: the sync read has no bound)
                yield from events.feed(raw)
                if events.done:
                    return
            yield from events.end()
        finally:
            response.close()


# -- LangChain messages to the protocol's, and back -------------------------------------------


def message_dict(message: BaseMessage) -> dict[str, Any]:
    """``message`` as a Chat Completions message."""
    content = _content(message.content, isinstance(message, AIMessage))
    if isinstance(message, HumanMessage):
        out: dict[str, Any] = {"role": "user", "content": content}
    elif isinstance(message, AIMessage):
        out = {"role": "assistant", "content": content}
        calls = [_call_dict(c["id"], c["name"], json.dumps(c["args"])) for c in message.tool_calls]
        calls += [
            _call_dict(c.get("id"), c.get("name"), c.get("args") or "")
            for c in message.invalid_tool_calls
        ]
        if not calls and "tool_calls" in message.additional_kwargs:
            calls = [
                {k: v for k, v in call.items() if k in ("id", "type", "function")}
                for call in message.additional_kwargs["tool_calls"]
            ]
        if calls:
            out["tool_calls"] = calls
            out["content"] = content or None
    elif isinstance(message, ToolMessage):
        text = content
        if isinstance(text, list):  # (servers take text, or text parts)
            parts = [p for p in text if isinstance(p, dict) and p.get("type") == "text"]
            text = parts if len(parts) == len(text) else json.dumps(text)
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": text}
    elif isinstance(message, SystemMessage):
        role = message.additional_kwargs.get("__openai_role__", "system")
        out = {"role": role, "content": content}
    elif isinstance(message, ChatMessage):
        out = {"role": message.role, "content": content}
    else:
        raise TypeError(f"a {type(message).__name__} has no place in a Chat Completions request")
    name = message.name or message.additional_kwargs.get("name")
    if name is not None:
        out["name"] = name
    return out


def _content(content: Any, assistant: bool) -> Any:
    """Text as it is; content blocks in OpenAI's form: text parts without LangChain's extras
    (ids, annotations), LangChain's data blocks converted, and in an assistant's message only
    text and refusals (not another model's reasoning, or the tool calls sent beside it)."""
    if not isinstance(content, list):
        return content
    blocks = []
    for block in content:
        if isinstance(block, str):
            block = {"type": "text", "text": block}
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": block.get("text", "")})
        elif assistant:
            if kind == "refusal":
                blocks.append({"type": "refusal", "refusal": block.get("refusal", "")})
        elif kind not in _DROPPED_BLOCKS:
            if is_data_content_block(block):
                from langchain_core.messages.block_translators.openai import (
                    convert_to_openai_data_block,
                )

                block = convert_to_openai_data_block(block)
            blocks.append(block)
    return blocks


def _call_dict(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_result(data: Any) -> ChatResult:
    """A Chat Completions response (parsed JSON) as LangChain's ``ChatResult``."""
    if not isinstance(data, dict):
        raise APIResponseError(f"the reply is not a JSON object: {_preview(data)}")
    if data.get("error"):
        raise _error_in_body(data["error"])
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise APIResponseError(f"the reply has no choices: {_preview(data)}")
    usage = usage_metadata(data.get("usage"))
    generations = []
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("message") or {}, dict):
            raise APIResponseError(f"a choice of the reply is not a message: {_preview(choice)}")
        message = ai_message(choice.get("message") or {})
        if usage is not None:
            message.usage_metadata = usage
        info = {"finish_reason": choice.get("finish_reason"), "model_name": data.get("model")}
        _more_info(info, data, choice)
        generations.append(ChatGeneration(message=message, generation_info=info))
    llm_output = {"token_usage": data.get("usage"), "model_name": data.get("model")}
    return ChatResult(generations=generations, llm_output=llm_output)


def _more_info(info: dict[str, Any], data: dict[str, Any], choice: dict[str, Any]) -> None:
    """What else a reply says of itself, when it says it (into ``response_metadata``)."""
    for key, value in (("id", data), ("system_fingerprint", data), ("logprobs", choice)):
        if value.get(key) is not None:
            info[key] = value[key]


def ai_message(data: dict[str, Any]) -> AIMessage:
    """An assistant message of a reply; tool calls whose arguments are not JSON become
    ``invalid_tool_calls``."""
    from langchain_core.output_parsers.openai_tools import (
        make_invalid_tool_call,
        parse_tool_call,
    )

    tool_calls, invalid = [], []
    for raw in data.get("tool_calls") or ():
        try:
            tool_calls.append(parse_tool_call(raw, return_id=True))
        except Exception as exc:  # noqa: BLE001 - LangChain's parser raises its own kinds
            invalid.append(make_invalid_tool_call(raw, str(exc)))
    extra = {key: data[key] for key in ("refusal", "audio") if data.get(key)}
    return AIMessage(
        content=data.get("content") or "",
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        additional_kwargs=extra,
        response_metadata={"model_provider": "openai"},
    )


def usage_metadata(usage: Any) -> dict[str, Any] | None:
    """OpenAI's ``usage`` as LangChain's ``UsageMetadata``."""
    if not isinstance(usage, dict):
        return None
    input_tokens = usage.get("prompt_tokens") or 0
    output_tokens = usage.get("completion_tokens") or 0
    total = usage.get("total_tokens")
    metadata: dict[str, Any] = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total if total is not None else input_tokens + output_tokens,
    }
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        metadata["input_token_details"] = {"cache_read": cached}
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning is not None:
        metadata["output_token_details"] = {"reasoning": reasoning}
    return metadata


_DONE = object()


class _Events:
    """A streamed reply's server-sent events, as the SSE standard reads them: always UTF-8,
    lines split at CR, LF or CRLF only, an event's ``data:`` lines joined and taken at the
    blank line that ends it (or at the end of the body); nothing after ``[DONE]``."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.rest = ""  # the start of a line whose end has not come yet
        self.data: list[str] = []  # the data lines of the event being read
        self.seen = False  # any data line at all
        self.done = False  # [DONE] came
        self.other = ""  # the start of what came that was not an event, for the error

    def feed(self, raw: bytes) -> list[Any]:
        """The chunks of the events these bytes complete."""
        if self.done:
            return []
        text = self.rest + self.decoder.decode(raw)
        held = "\r" if text.endswith("\r") else ""  # (its LF may come next: one line break)
        lines = _LINE_BREAK.split(text[: len(text) - len(held)])
        self.rest = lines.pop() + held
        chunks = []
        for line in lines:
            chunk = self._line(line)
            if chunk is _DONE:
                self.done = True
                break
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def end(self) -> list[Any]:
        """What is left at the end of the body; an error if it held no event at all."""
        if self.done:
            return []
        rest = self.rest + self.decoder.decode(b"", final=True)
        chunks = [self._line(rest.rstrip("\r")), self._line("")]
        if not self.seen:
            raise APIResponseError(f"the streamed reply has no events: {_preview(self.other)}")
        return [chunk for chunk in chunks if chunk is not None and chunk is not _DONE]

    def _line(self, line: str) -> Any:
        if not line:  # the end of an event
            if not self.data:
                return None
            data, self.data = "\n".join(self.data), []
            return _stream_chunk(data)
        if line.startswith("data:"):
            self.seen = True
            self.data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif len(self.other) < 200 and not line.startswith((":", "event:", "id:", "retry:")):
            self.other += line.strip() + " "
        return None


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read the rest of a body (up to ``_DRAIN_LIMIT``), so its connection can be kept."""
    read = 0
    async for raw in body:
        read += len(raw)
        if read > _DRAIN_LIMIT:
            return


def _is_json(response: Any) -> bool:
    return response.headers.get("content-type", "").lower().startswith("application/json")


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    """A whole reply as one streamed chunk."""
    generation = result.generations[0]
    message = generation.message
    calls = [(c["name"], json.dumps(c["args"]), c["id"]) for c in message.tool_calls]
    calls += [(c.get("name"), c.get("args"), c.get("id")) for c in message.invalid_tool_calls]
    chunk = AIMessageChunk(
        content=message.content,
        tool_call_chunks=[
            tool_call_chunk(name=name, args=args, id=call_id, index=index)
            for index, (name, args, call_id) in enumerate(calls)
        ],
        additional_kwargs=message.additional_kwargs,
        usage_metadata=message.usage_metadata,
        response_metadata={"model_provider": "openai"},
    )
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


def _stream_chunk(data: str) -> Any:
    """One event's data: a ``ChatGenerationChunk``, ``_DONE``, or None (no choices)."""
    data = data.strip()
    if data == "[DONE]":
        return _DONE
    try:
        event = json.loads(data)
    except ValueError:
        raise APIResponseError(f"a streamed event is not JSON: {_preview(data)}") from None
    if not isinstance(event, dict):
        raise APIResponseError(f"a streamed event is not a JSON object: {_preview(data)}")
    if event.get("error"):
        raise _error_in_body(event["error"])
    usage = usage_metadata(event.get("usage"))
    choices = event.get("choices") or ()
    if not choices:
        if usage is None:
            return None
        return ChatGenerationChunk(message=AIMessageChunk(content="", usage_metadata=usage))
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("delta") or {}, dict):
        raise APIResponseError(f"a streamed choice is not a delta: {_preview(data)}")
    delta = choice.get("delta") or {}
    calls = [
        tool_call_chunk(
            name=(call.get("function") or {}).get("name"),
            args=(call.get("function") or {}).get("arguments"),
            id=call.get("id"),
            index=call.get("index"),
        )
        for call in delta.get("tool_calls") or ()
    ]
    message = AIMessageChunk(
        content=delta.get("content") or "",
        tool_call_chunks=calls,
        response_metadata={"model_provider": "openai"},
    )
    if usage is not None:
        message.usage_metadata = usage
    info = None
    if choice.get("finish_reason"):
        info = {"finish_reason": choice["finish_reason"], "model_name": event.get("model")}
        _more_info(info, event, choice)
    return ChatGenerationChunk(message=message, generation_info=info)


# -- HTTP: errors, retries, clients -------------------------------------------------------------


def _json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        raise APIResponseError(
            f"HTTP {response.status_code} with a body that is not JSON: {_preview(response.text)}"
        ) from None


def _status_error(response: Any) -> APIStatusError:
    status = response.status_code
    if status < 400:  # (redirects are not followed: a POST's body and key stay where set)
        where = response.headers.get("location") or "elsewhere"
        message = f"the endpoint redirects to {where}: set the endpoint to where it points"
        return APIStatusError(status, {"message": message}, response)
    try:
        body = json.loads(response.content)
    except ValueError:
        body = _preview(response.text)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    elif isinstance(body, dict) and isinstance(body.get("error"), str):
        body = {"message": body["error"]}  # ({"error": "model not found"})
    return APIStatusError(status, body, response)


def _error_in_body(error: Any) -> APIError:
    """An error the endpoint sent inside a 200 reply (some servers do, mid-stream)."""
    status = error.get("code") if isinstance(error, dict) else None
    if isinstance(status, int) and 400 <= status < 600:
        return APIStatusError(status, error)
    if isinstance(error, dict) and error.get("type") == "server_error":
        return APIStatusError(500, error)
    message = error.get("message") if isinstance(error, dict) else error
    return APIResponseError(f"the endpoint sent an error: {_preview(message)}")


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or
    an HTTP date); None when it asks nothing that can be read."""
    with contextlib.suppress(KeyError, TypeError, ValueError, OverflowError):
        return float(headers["retry-after-ms"]) / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    with contextlib.suppress(ValueError, OverflowError):
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        return parsedate_to_datetime(value).timestamp() - time.time()
    return None


@functools.cache
def _tls_context() -> Any:
    """One TLS context for every client: making one reads the trust store (20 to 40 ms)."""
    return httpx2.create_ssl_context()


class _Clients:
    """The models' HTTP clients: one async client per event loop (an httpx client belongs to
    the loop that first used it) and one sync client per thread, for every endpoint, as the
    openai SDK shares its own. Made on first use, with the one TLS context."""

    def __init__(self) -> None:
        self._async: dict[Any, Any] = {}
        self._local = threading.local()
        self._lock = threading.Lock()  # (held only to make a client: well under a millisecond)

    def for_loop(self, loop: Any) -> Any:
        client = self._async.get(loop)
        if client is None:
            tls = _tls_context()  # (outside the lock: the first one reads files)
            with self._lock:
                # (a closed loop's client can never be used again: let it go, and the loop)
                for closed in [other for other in self._async if other.is_closed()]:
                    del self._async[closed]
                client = self._async.get(loop)
                if client is None:
                    client = httpx2.AsyncClient(verify=tls, timeout=None, limits=_LIMITS)
                    self._async[loop] = client
        return client

    def for_thread(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx2.Client(verify=_tls_context(), timeout=None, limits=_LIMITS)
            self._local.client = client
        return client


def ready_client() -> None:
    """Make the HTTP client the models use on the running event loop now, rather than on
    its first request; nothing is connected."""
    _clients.for_loop(asyncio.get_running_loop())


def prepare_transport() -> None:
    """Do what a model's first real request would, but connecting: import the HTTP
    transport and its HTTP/1.1 stack (httpcore2, h11: about 35 ms) and make the TLS context
    (20 to 40 ms). For a warm-up, whose client answers from memory, on a thread of its own."""
    httpx2.AsyncHTTPTransport(verify=_tls_context())


_clients = _Clients()
