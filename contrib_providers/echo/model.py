"""EchoChatModel: a deterministic LangChain chat model that repeats the last user message."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

_TOKEN = re.compile(r"\s*\S+")


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

    def _answer(self, messages: list[BaseMessage], stop: list[str] | None) -> str:
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
        return self._generate(messages, stop)

    def _chunks(self, messages: list[BaseMessage], stop: list[str] | None) -> list[Any]:
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
        for chunk in self._chunks(messages, stop):
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
        for chunk in self._chunks(messages, stop):
            if chunk.text:
                if self.delay:
                    await asyncio.sleep(self.delay)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
