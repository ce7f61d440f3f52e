"""Errors in OpenAI's shape, ``{"error": {"message", "type", "code"}}``, with fitting statuses."""

from __future__ import annotations

import json
from typing import Any

from ..chat.failures import ChatError, PromptTooLongError


class ApiError(Exception):
    """An error response; the message is shown to the client, so it never holds a secret."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }

    def response(self) -> Any:
        from starlette.responses import Response  # the CLI imports this module without Starlette

        return Response(
            json.dumps(self.body()), status_code=self.status, media_type="application/json"
        )


# provider failure kind -> (HTTP status, error type)
_BY_KIND = {
    "rate_limited": (429, "rate_limit_error"),
    "timeout": (504, "timeout_error"),
    "server_error": (502, "upstream_error"),
    "connection": (502, "upstream_error"),
    "auth": (502, "upstream_error"),  # the gateway's key was refused, not the client's
    "request": (400, "invalid_request_error"),
}


def from_chat_error(exc: ChatError, field: str = "messages") -> ApiError:
    """What a client should see for a reply that could not be produced (``field`` holds the
    request's messages, named when they do not fit the prompt limit)."""
    if isinstance(exc, PromptTooLongError):
        return ApiError(400, str(exc), code="prompt_too_long", param=field)
    failure = exc.failure
    if failure is None:  # the model cannot be built (e.g. its key is not configured)
        return ApiError(503, str(exc), "service_unavailable", "model_unavailable")
    status, kind = _BY_KIND.get(failure.kind, (502, "upstream_error"))
    return ApiError(status, str(exc), kind, failure.kind)
