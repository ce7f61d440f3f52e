"""The chat settings of a host (``prompt.*`` and ``chat.*``, read once), and which model answers."""

from __future__ import annotations

import weakref
from typing import Any

from ..errors import UnknownModelError
from ..host import Host

_SETTINGS: weakref.WeakKeyDictionary[Host, dict[str, Any]] = weakref.WeakKeyDictionary()


def chat_settings(host: Host) -> dict[str, Any]:
    """prompt.* and chat.* of ``host``, read once (the gateway needs them on every request)."""
    settings = _SETTINGS.get(host)
    if settings is None:
        value = host.config.value
        settings = _SETTINGS[host] = {
            "system": value("prompt.system") or None,
            "prefix": value("prompt.prefix"),
            "suffix": value("prompt.suffix"),
            "default_model": value("chat.default_model") or None,
            "fallbacks": {
                str(k): [v] if isinstance(v, str) else list(v)
                for k, v in value("chat.fallbacks").items()
            },
        }
    return settings


def resolve_model_id(host: Host, requested: str | None) -> str:
    """``-m ID``; else ``chat.default_model``; else the only registered model; else an error."""
    model_id = requested or chat_settings(host)["default_model"]
    if model_id:
        host.registry.get(model_id)  # raises with close matches if unknown
        return model_id
    ids = host.registry.ids()
    if len(ids) == 1:
        return ids[0]
    raise UnknownModelError(
        "no model chosen" if ids else "no model is registered",
        hint=(
            f"pass -m ID or set chat.default_model; registered: {', '.join(ids)}"
            if ids
            else "configure a provider section in settings.toml"
        ),
    )
