"""What is sent upstream: the messages of a turn, and the one place a prompt is assembled.

A prompt is the system message, the stored history of a continued conversation, and the new
messages, each user message wrapped in ``prompt.prefix``/``prompt.suffix``. With a limit (the
gateway's ``server.limits.max_prompt_chars``) it is counted as sent: a history that no longer fits
is trimmed from its oldest turns (the stored conversation keeps them), and new messages that do
not fit on their own are refused with ``PromptTooLongError`` before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .failures import ChatError, PromptTooLongError
from .text import FIX_HINT, unicode_fault

ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True)
class Message:
    """One message of a conversation. An assistant message may carry ``tool_calls`` (each
    ``{"id", "name", "args"}``, LangChain's shape); a tool message answers ``tool_call_id``."""

    role: str
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None

    @classmethod
    def of(cls, item: Message | tuple[str, str] | dict[str, Any]) -> Message:
        """A message from a ``(role, text)`` pair, a stored row, or a message."""
        if isinstance(item, Message):
            return item
        if isinstance(item, dict):
            return cls(
                item["role"],
                item.get("content") or "",
                list(item.get("tool_calls") or ()),
                item.get("tool_call_id"),
            )
        role, content = item
        return cls(role, content)


def to_langchain(
    turns: Iterable[Message | tuple[str, str]],
    system: str | None = None,
    prefix: str = "",
    suffix: str = "",
) -> list[Any]:
    """LangChain messages, one per turn (system first when given): each user text wrapped in
    ``prefix``/``suffix``; roles system, user, assistant (with its tool calls) and tool."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    messages: list[Any] = [SystemMessage(system)] if system else []
    for item in turns:
        message = Message.of(item)
        if message.role == "user":
            messages.append(HumanMessage(f"{prefix}{message.content}{suffix}"))
        elif message.role == "system":
            messages.append(SystemMessage(message.content))
        elif message.role == "tool":
            messages.append(ToolMessage(message.content, tool_call_id=message.tool_call_id or ""))
        elif message.tool_calls:
            calls = [
                {"id": c.get("id"), "name": c["name"], "args": c.get("args") or {}}
                for c in message.tool_calls
            ]
            messages.append(AIMessage(message.content, tool_calls=calls))
        else:
            messages.append(AIMessage(message.content))
    return messages


@dataclass
class Prompt:
    messages: list[Any]  # the LangChain messages sent upstream
    chars: int  # their text (and tool-call arguments), in characters
    trimmed: int = 0  # stored history messages left out to fit the limit

    def describe(self, limit: int | None) -> dict[str, Any]:
        """The gateway reply's ``context`` metadata."""
        return {
            "messages": len(self.messages),
            "characters": self.chars,
            "trimmedMessages": self.trimmed,
            "maxPromptChars": limit,
        }


def _chars(message: Any) -> int:
    content = message.content
    if isinstance(content, str):
        size = len(content)
    else:
        size = sum(len(p.get("text", "")) if isinstance(p, dict) else len(str(p)) for p in content)
    for call in getattr(message, "tool_calls", None) or ():
        size += len(call.get("name") or "") + len(json.dumps(call.get("args") or {}))
    return size


def _texts(turns: Sequence[Message | tuple[str, str]]) -> Iterable[tuple[str, str]]:
    for item in turns:
        message = Message.of(item)
        yield f"{message.role} message", message.content


def assemble(
    turns: Sequence[Message | tuple[str, str]],
    history: Sequence[Message | tuple[str, str]] = (),
    system: str | None = None,
    prefix: str = "",
    suffix: str = "",
    limit: int | None = None,
) -> Prompt:
    """The messages for ``history`` + ``turns``, within ``limit`` characters if given: the oldest
    history turns are dropped until it fits (never leaving one that starts on anything but a
    user message); ``PromptTooLongError`` when the new turns alone do not fit."""
    history = [Message.of(m) for m in history]
    for what, text in [("system prompt", system or ""), *_texts(turns)]:
        fault = unicode_fault(text)
        if fault:  # (before anything is stored or sent)
            raise ChatError(f"the {what} is {fault}", hint=FIX_HINT)
    messages = to_langchain([*history, *turns], system, prefix, suffix)
    sizes = [_chars(m) for m in messages]
    total = sum(sizes)
    if limit is None:
        return Prompt(messages, total)
    start = len(messages) - len(turns) - len(history)  # 1 with a system message, else 0
    end = start + len(history)  # messages[start:end] came from the stored history
    if start not in (0, 1):  # not one message a turn any more: count all, trim nothing
        start = end = 0
    fixed = total - sum(sizes[start:end])
    if fixed > limit:
        raise PromptTooLongError(fixed, limit)
    keep = start
    while total > limit or (start < keep < end and history[keep - start].role != "user"):
        total -= sizes[keep]
        keep += 1
    if keep == start:
        return Prompt(messages, total)
    return Prompt(messages[:start] + messages[keep:], total, keep - start)


KNOWLEDGE_INSTRUCTIONS = (
    "Answer from the numbered passages below where they help, and cite the ones you use as "
    "[1], [2]. If they do not hold the answer, say so.\n\n"
)


def add_knowledge(prompt: Prompt, passages: str) -> None:
    """Put retrieved passages (``chat --knowledge``) into ``prompt`` as a system message just
    before the newest user message, so the history before it is unchanged."""
    from langchain_core.messages import HumanMessage, SystemMessage

    message = SystemMessage(KNOWLEDGE_INSTRUCTIONS + passages)
    last_user = max(
        (i for i, m in enumerate(prompt.messages) if isinstance(m, HumanMessage)),
        default=len(prompt.messages),
    )
    prompt.messages.insert(last_user, message)
    prompt.chars += _chars(message)
