"""ai-assistant: an AI assistant host whose chat models come from provider plugins."""

from __future__ import annotations

from typing import Any

from .errors import (
    AiAssistantError,
    ConfigError,
    ModelUnavailableError,
    PluginError,
    UnknownModelError,
)
from .hookspecs import hookimpl
from .host import Host, load_host
from .registry import Model, ModelRegistry, PluginRegistry

__version__ = "0.1.0"

__all__ = [
    "AiAssistantError",
    "ConfigError",
    "Host",
    "Model",
    "ModelRegistry",
    "ModelUnavailableError",
    "PluginError",
    "PluginRegistry",
    "UnknownModelError",
    "Chat",
    "get_model",
    "hookimpl",
    "load_host",
]

_default_host: Host | None = None


def get_model(model_id: str) -> Any:
    """The LangChain chat model registered as ``model_id``, from the settings found in the
    current directory (loaded once per process)."""
    global _default_host
    if _default_host is None:
        _default_host = load_host()
    return _default_host.get_model(model_id)


def __getattr__(name: str) -> Any:
    # the chat service loads on first use, so `import ai_assistant` stays light
    if name == "Chat":
        from .chat import Chat

        return Chat
    raise AttributeError(f"module 'ai_assistant' has no attribute {name!r}")
