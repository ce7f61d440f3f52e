"""EchoChatModel: a deterministic LangChain chat model that repeats the last user message.

It can call tools, so the whole tool loop runs offline: with tools bound, a last user message
``/tool NAME {"arg": "value"}`` (JSON arguments, optional) makes it call tool NAME with those
arguments; once the results come back it answers ``echo: NAME said: <result>`` for each.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

_TOKEN = re.compile(r"\s*\S+")
_TOOL_REQUEST = re.compile(r"^/tool\s+([A-Za-z0-9_-]+)\s*(.*)$", re.S)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "") if isinstance(part, dict) else str(part) for part in content
    )


class EchoChatModel(BaseChatModel):
    """Answers ``prefix + <last user message>``, one whitespace-led token at a time."""

    model_name: str = "echo"
    prefix: str = "echo: "
    delay: float = 0.0  # seconds before each streamed token

    @property
    def _llm_type(self) -> str:
        return "echo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "prefix": self.prefix}

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        """Tools by name: the model calls one when asked with ``/tool NAME {json}``."""
        from langchain_core.utils.function_calling import convert_to_openai_tool

        names = [convert_to_openai_tool(tool)["function"]["name"] for tool in tools]
        return self.bind(tools=names, **kwargs)

    def _tool_call(self, messages: list[BaseMessage], tools: list[str]) -> dict | None:
        """The tool call a last ``/tool NAME {json}`` message asks for, if NAME is bound."""
        if not tools or not messages or not isinstance(messages[-1], HumanMessage):
            return None
        match = _TOOL_REQUEST.match(_text(messages[-1]).strip())
        if match is None or match[1] not in tools:
            return None
        try:
            args = json.loads(match[2]) if match[2].strip() else {}
        except ValueError:
            return None
        if not isinstance(args, dict):
            return None
        return {"name": match[1], "args": args, "id": f"call_echo_{len(messages)}"}

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None) -> str:
        results = []
        for message in reversed(messages):  # the tool results that answer the last calls
            if not isinstance(message, ToolMessage):
                break
            results.append(message)
        if results:
            names = {
                call["id"]: call["name"]
                for m in messages
                if isinstance(m, AIMessage)
                for call in m.tool_calls
            }
            said = [
                f"{names.get(m.tool_call_id, m.name or 'tool')} said: {_text(m)}"
                for m in reversed(results)
            ]
            return self.prefix + "; ".join(said)
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = self.prefix + (_text(last) if last is not None else "(nothing to echo)")
        for word in stop or ():
            if word and word in text:
                text = text[: text.index(word)]
        return text

    def _usage(self, messages: list[BaseMessage], answer: str) -> dict[str, int]:
        prompt = sum(len(_TOKEN.findall(_text(m))) for m in messages)
        completion = len(_TOKEN.findall(answer))
        return {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._tool_call(messages, kwargs.get("tools") or [])
        if call is not None:
            message = AIMessage(
                content="",
                tool_calls=[call],
                usage_metadata=self._usage(messages, ""),
                response_metadata={"model_name": self.model_name, "finish_reason": "tool_calls"},
            )
            return ChatResult(generations=[ChatGeneration(message=message)])
        answer = self._answer(messages, stop)
        message = AIMessage(
            content=answer,
            usage_metadata=self._usage(messages, answer),
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _chunks(
        self, messages: list[BaseMessage], stop: list[str] | None, tools: list[str]
    ) -> list[Any]:
        call = self._tool_call(messages, tools)
        if call is not None:
            chunk = AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": json.dumps(call["args"]),
                        "id": call["id"],
                        "index": 0,
                    }
                ],
                usage_metadata=self._usage(messages, ""),
                response_metadata={"model_name": self.model_name, "finish_reason": "tool_calls"},
            )
            return [ChatGenerationChunk(message=chunk)]
        answer = self._answer(messages, stop)
        chunks = [
            ChatGenerationChunk(message=AIMessageChunk(content=token))
            for token in _TOKEN.findall(answer)
        ]
        last = AIMessageChunk(
            content="",
            usage_metadata=self._usage(messages, answer),
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return [*chunks, ChatGenerationChunk(message=last)]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._chunks(messages, stop, kwargs.get("tools") or []):
            if chunk.text:
                if self.delay:
                    time.sleep(self.delay)
                if run_manager is not None:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        # natively async: LangChain's default would run _stream in a thread for every call
        for chunk in self._chunks(messages, stop, kwargs.get("tools") or []):
            if chunk.text:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
