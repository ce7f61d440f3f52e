"""What is sent upstream, and the one check of ``server.limits.max_prompt_chars`` against it.

Both APIs build the messages for the model here, from the chat service's ``to_langchain``, and
the limit is counted on the result: the system prompt, the ``prompt.prefix``/``suffix`` around
each user message, the stored history of a continued conversation and the new messages.

A continued conversation whose stored history no longer fits is trimmed from its oldest turns
(the stored conversation keeps them; the reply says how many were left out); what the request
itself brings must fit on its own, or it is refused with 400 ``prompt_too_long``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ApiError


@dataclass
class Prompt:
    messages: list[Any]  # the LangChain messages sent upstream
    chars: int  # their text, in characters
    trimmed: int = 0  # stored history messages left out to fit the limit

    def describe(self, limit: int) -> dict[str, int]:
        """The reply's ``context`` metadata."""
        return {
            "messages": len(self.messages),
            "characters": self.chars,
            "trimmedMessages": self.trimmed,
            "maxPromptChars": limit,
        }


def _chars(message: Any) -> int:
    content = message.content
    if isinstance(content, str):
        return len(content)
    return sum(len(p.get("text", "")) if isinstance(p, dict) else len(str(p)) for p in content)


def assemble(
    limit: int,
    turns: Sequence[tuple[str, str]],
    history: Sequence[tuple[str, str]] = (),
    system: str | None = None,
    prefix: str = "",
    suffix: str = "",
    field: str = "messages",
) -> Prompt:
    """The messages for ``history`` + ``turns``, within ``limit`` characters: the oldest history
    turns are dropped until it fits (never starting on an assistant turn); 400 when the request's
    own part does not fit."""
    from ..chat import to_langchain

    messages = to_langchain([*history, *turns], system, prefix, suffix)
    sizes = [_chars(m) for m in messages]
    start = len(messages) - len(turns) - len(history)  # 1 with a system message, else 0
    end = start + len(history)  # messages[start:end] came from the stored history
    if start not in (0, 1):  # not one message a turn any more: count all, trim nothing
        start = end = 0
    fixed = sum(sizes) - sum(sizes[start:end])
    if fixed > limit:
        raise ApiError(
            400,
            f"prompt too long: {fixed} characters (server.limits.max_prompt_chars is {limit})",
            code="prompt_too_long",
            param=field,
        )
    keep = start
    total = sum(sizes)
    while total > limit or (start < keep < end and history[keep - start][0] != "user"):
        total -= sizes[keep]
        keep += 1
    if keep == start:
        return Prompt(messages, total)
    return Prompt(messages[:start] + messages[keep:], total, keep - start)
