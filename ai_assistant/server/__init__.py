"""The HTTP gateway: OpenAI's chat-completions protocol and a conversation API for every
registered model. Imported only by `ai-assistant serve` (FastAPI is not loaded otherwise)."""

from .app import create_app

__all__ = ["create_app"]
