"""The history store, as it was imported before ``ai_assistant.storage``: a thin re-export.

``Store`` is the blocking SQLite store; new code uses ``ai_assistant.storage``."""

from __future__ import annotations

from .storage import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    PROCESS_ENDED,
    STREAMING,
    StoreBusyError,
    StoreError,
    UnknownConversationError,
    UnknownMessageError,
    default_store_path,
    now,
)
from .storage import SQLiteStore as Store

__all__ = [
    "COMPLETE",
    "FAILED",
    "INTERRUPTED",
    "PROCESS_ENDED",
    "STREAMING",
    "Store",
    "StoreBusyError",
    "StoreError",
    "UnknownConversationError",
    "UnknownMessageError",
    "default_store_path",
    "now",
]
