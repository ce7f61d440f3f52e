"""``Reply``: one assistant reply as a turn builds it, and as surfaces read it afterwards."""

from __future__ import annotations

from typing import Any

from ..storage import STREAMING


class Reply:
    """One assistant reply: who answered, what, how it ended."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.parts: list[str] = []
        # {"id", "name", "args"}, as LangChain has them: the calls this text ends with that were
        # not run here (the client runs them); calls the turn ran are in ``steps``
        self.tool_calls: list[dict[str, Any]] = []
        self.status = STREAMING
        self.error: str | None = None
        self.failures: list[tuple[str, str]] = []  # (model id, why) for models that fell through
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.first_token_ms: int | None = None
        self.latency_ms: int | None = None
        self.message_id: int | None = None
        # the tool steps before this text: each assistant message that called tools, then the
        # tools' results (role "tool"), in order; empty when no tool ran
        self.steps: list[Any] = []
        # the sources this reply drew on (knowledge passages: from -K, or a tool's artifact),
        # each {"source", "document", "path" or "url", "title"}, in order, without repeats
        self.sources: list[dict[str, Any]] = []
        # each tool call's result event (chat.events.ToolResult) by call id: whether it failed
        self.results: dict[str, Any] = {}

    def cite(self, sources: Any) -> None:
        """Add cited sources (``{"source", "document", ...}`` dicts), skipping repeats."""
        seen = {(s.get("source"), s.get("document")) for s in self.sources}
        for source in sources or ():
            if not isinstance(source, dict):
                continue
            key = (source.get("source"), source.get("document"))
            if key not in seen:
                seen.add(key)
                self.sources.append(dict(source))

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def usage(self) -> dict[str, int] | None:
        """OpenAI's usage object, when the provider counted tokens."""
        if self.input_tokens is None and self.output_tokens is None:
            return None
        prompt, completion = self.input_tokens or 0, self.output_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def __repr__(self) -> str:
        return f"Reply(model_id={self.model_id!r}, status={self.status!r}, {len(self.text)} chars)"
