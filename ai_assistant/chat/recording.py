"""Recording a turn in the history store: the new messages, then the reply as it goes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..host import Host
from ..store import Store, default_store_path

if TYPE_CHECKING:
    from .prompt import Message
    from .reply import Reply


def open_store(source: Host | Config) -> Store:
    """The history database at ``storage.path`` (relative to the settings file's folder).
    Settings alone are enough: a command that only reads history imports no plugin."""
    config = source.config if isinstance(source, Host) else source
    configured = config.value("storage.path")
    path = config.root / configured if configured else default_store_path()
    return Store(Path(path).expanduser())


class Recorder:
    """Writes one exchange to the history: the new messages, then the reply as it goes."""

    def __init__(
        self,
        store: Store | None,
        conversation_id: str | None,
        *,
        owner: str | None = None,
        system: str | None = None,
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.owner = owner
        self.system = system

    def start(self, model_id: str, messages: list[Message | str], reply: Reply) -> None:
        """Store ``messages`` (user texts, or user and tool messages) and the empty reply."""
        if self.store is not None:
            rows: list[Any] = [
                m
                if isinstance(m, str)
                else {"role": m.role, "content": m.content, "tool_call_id": m.tool_call_id}
                for m in messages
            ]
            self.conversation_id, reply.message_id = self.store.start_exchange(
                self.conversation_id, model_id, rows, system=self.system, owner=self.owner
            )

    def progress(self, reply: Reply) -> None:
        if self.store is not None and reply.message_id is not None:
            self.store.update_message(reply.message_id, content=reply.text, model_id=reply.model_id)

    def finish(self, reply: Reply) -> None:
        if self.store is not None and reply.message_id is not None:
            self.store.update_message(
                reply.message_id,
                content=reply.text,
                model_id=reply.model_id,
                status=reply.status,
                error=reply.error,
                latency_ms=reply.latency_ms,
                first_token_ms=reply.first_token_ms,
                input_tokens=reply.input_tokens,
                output_tokens=reply.output_tokens,
                tool_calls=reply.tool_calls or None,
            )
