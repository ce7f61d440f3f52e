"""The host's exceptions: each carries a message a person can act on, never a secret."""

from __future__ import annotations


class AiAssistantError(Exception):
    """Base class: ``str(error)`` says what is wrong; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(AiAssistantError):
    """Settings could not be read or are invalid (names the file or key at fault)."""


class PluginError(AiAssistantError):
    """A plugin failed and strict mode is on."""


class UnknownModelError(AiAssistantError, LookupError):
    """No model is registered under the requested id."""


class ModelUnavailableError(AiAssistantError):
    """The model is registered but cannot be built (a secret is missing, its factory failed)."""
