"""What can go wrong in a turn: ``ChatError`` (what the user sees), and ``classify``, which sorts
a provider SDK's exception by what it means for fallbacks (duck-typed: no SDK is imported)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import env_var_name
from ..errors import AiAssistantError

if TYPE_CHECKING:
    from .reply import Reply


class ChatError(AiAssistantError):
    """The reply could not be produced (or broke off); ``reply`` holds what arrived."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        reply: Reply | None = None,
        failure: Failure | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.reply = reply
        self.failure = failure  # the provider error behind it, classified


class PromptTooLongError(ChatError):
    """What a request brings does not fit the prompt limit on its own (nothing was sent)."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(
            f"prompt too long: {chars} characters (server.limits.max_prompt_chars is {limit})"
        )
        self.chars = chars
        self.limit = limit


class Failure:
    """A provider error, classified: may the next model be tried?"""

    def __init__(self, kind: str, description: str, fallback: bool) -> None:
        self.kind = kind  # auth, rate_limited, server_error, timeout, connection, request, error
        self.description = description
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"Failure({self.kind!r}, {self.description!r})"


_TIMEOUTS = {"APITimeoutError", "TimeoutException", "TimeoutError", "ReadTimeout", "Timeout"}
_CONNECTION = {
    "APIConnectionError",
    "ConnectError",
    "RemoteProtocolError",
    "ReadError",
    "NetworkError",
    "TransportError",
    "ConnectionError",
    "IncompleteRead",
}


def classify(exc: BaseException) -> Failure:
    """Sort an exception from any provider SDK by what it means for fallbacks (duck-typed, so
    no SDK is imported to look at it). An exception with ``failure_kind = "auth"`` is the
    key's fault whatever else it says."""
    if getattr(exc, "failure_kind", None) == "auth":  # (a key refused before it was sent)
        return Failure("auth", " ".join(str(exc).split()), False)
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    detail = _short(exc)
    if status in (401, 403):
        return Failure("auth", f"HTTP {status}: the API key is missing or was rejected", False)
    if status == 429:
        return Failure("rate_limited", f"HTTP 429 rate limited{detail}", True)
    if isinstance(status, int) and status >= 500:
        return Failure("server_error", f"HTTP {status} server error{detail}", True)
    if isinstance(status, int) and 300 <= status < 400:  # (the endpoint is set wrong)
        return Failure("error", f"HTTP {status}{detail}", True)
    if names & _TIMEOUTS:
        return Failure("timeout", "timed out", True)
    if names & _CONNECTION:
        return Failure("connection", f"connection failed{detail}", True)
    if isinstance(status, int):
        return Failure("request", f"HTTP {status}{detail}", False)
    return Failure("error", f"{type(exc).__name__}{detail}", False)


def _short(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = " ".join(str(message or exc).split())
    return f": {text[:200]}" if text else ""


def key_hint(model: Any) -> str:
    """Where the key of a refused model goes."""
    key = f"models.{model.plugin}.api_key"
    return f"check the key: `ai-assistant secrets set {key}`, or export {env_var_name(key)}"
