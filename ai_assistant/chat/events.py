"""The typed events of a turn, in the order a surface sees them: ``Fallback`` when a model hands
over to the next, then ``Token`` and ``ToolCall`` as the reply arrives (``ToolResult`` once a tool
has answered), ``Usage`` when the provider counted tokens, and last ``Done`` or ``Error``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .failures import ChatError
    from .reply import Reply


@dataclass(frozen=True, slots=True)
class Token:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool: ``args`` decoded, as LangChain gives them."""

    id: str | None
    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's answer to the call ``tool_call_id`` (``error``: the tool failed, timed out, or
    was refused; ``content`` says why, and that is what the model reads)."""

    tool_call_id: str
    name: str
    content: str
    error: bool = False
    sources: tuple[dict[str, Any], ...] = ()  # what the result cites (search_knowledge's hits)


@dataclass(frozen=True, slots=True)
class Fallback:
    """``from_model`` failed before its first token (``reason``); ``to_model`` is tried next."""

    from_model: str
    to_model: str
    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True, slots=True)
class Done:
    reply: Reply


@dataclass(frozen=True, slots=True)
class Error:
    """The reply could not be produced, or broke off (``error.reply`` holds what arrived)."""

    error: ChatError


Event = Token | ToolCall | ToolResult | Fallback | Usage | Done | Error
