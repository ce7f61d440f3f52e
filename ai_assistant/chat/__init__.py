"""The chat core: the one async turn every surface drives (``Turn``), its typed events, the
prompt, failures and fallbacks, recording, and ``Chat``, the blocking face of it.

Nothing here imports LangChain or a provider SDK until a turn is made.
"""

# ruff: noqa: E402 - the shortcut below must run before the modules that import LangChain
from .imports import preload_langsmith_leaf

preload_langsmith_leaf()  # see imports.py

from .events import Done, Error, Event, Fallback, Token, ToolCall, ToolResult, Usage
from .facade import Chat
from .failures import ChatError, Failure, PromptTooLongError, classify
from .prompt import Message, Prompt, assemble, to_langchain
from .recording import Recorder, open_store
from .reply import Reply
from .settings import chat_settings, resolve_model_id
from .turn import Turn

__all__ = [
    "Chat",
    "ChatError",
    "Done",
    "Error",
    "Event",
    "Failure",
    "Fallback",
    "Message",
    "Prompt",
    "PromptTooLongError",
    "Recorder",
    "Reply",
    "Token",
    "ToolCall",
    "ToolResult",
    "Turn",
    "Usage",
    "assemble",
    "chat_settings",
    "classify",
    "open_store",
    "resolve_model_id",
    "to_langchain",
]
