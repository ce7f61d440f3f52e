"""The host's exceptions: each carries a message a person can act on, never a secret."""

from __future__ import annotations

from collections.abc import Iterable


class AiAssistantError(Exception):
    """Base class: ``str(error)`` says what is wrong; ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(AiAssistantError):
    """Settings could not be read or are invalid (names the file or key at fault)."""


class PluginError(AiAssistantError):
    """A plugin failed and strict mode is on."""


class UnknownItemError(AiAssistantError, LookupError):
    """Nothing of the requested kind is registered under the requested id."""


class UnknownModelError(UnknownItemError):
    """No model is registered under the requested id."""


class ModelUnavailableError(AiAssistantError):
    """The model is registered but cannot be built (a secret is missing, its factory failed)."""


def close_matches(word: str, choices: Iterable[str], n: int = 1) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``word`` (a likely typo), closest first."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=n, cutoff=0.6)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or an empty string."""
    close = close_matches(word, choices)
    return f" (did you mean {close[0]!r}?)" if close else ""
