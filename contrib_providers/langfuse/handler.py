"""What the ``langfuse`` plugin needs langfuse for: one client per credentials, and the
LangChain handler each turn gets. Imported on the first turn only (it imports langfuse)."""

from __future__ import annotations

import threading
import uuid

from opentelemetry.sdk.trace import TracerProvider

# the installed package: this folder is imported as ai_assistant_plugin_langfuse, never langfuse
from langfuse import Langfuse, propagate_attributes
from langfuse.langchain import CallbackHandler

_lock = threading.Lock()
_clients: dict[tuple[str, str], Langfuse] = {}  # (host, public key) -> the plugin's client


def client(host: str, public_key: str, secret_key: str, timeout: int) -> Langfuse:
    """The Langfuse client for these credentials, made once. It gets a tracer provider of its
    own, so the process-wide OpenTelemetry setup is left alone."""
    with _lock:
        found = _clients.get((host, public_key))
        if found is None:
            # base_url (not host): a LANGFUSE_BASE_URL in the environment does not override it
            found = Langfuse(
                public_key=public_key,
                secret_key=secret_key,
                base_url=host,
                timeout=timeout,
                tracer_provider=TracerProvider(),
            )
            _clients[(host, public_key)] = found
        return found


def flush() -> None:
    with _lock:
        clients = list(_clients.values())
    for each in clients:
        each.flush()


def trace_attributes(metadata: dict) -> dict:
    """Langfuse's trace attributes for one turn: who asked, in which conversation."""
    surface = metadata.get("surface") or "python"
    attributes = {"trace_name": f"ai-assistant {surface}", "tags": [f"surface:{surface}"]}
    if metadata.get("user") is not None:
        attributes["user_id"] = str(metadata["user"])
    if metadata.get("conversation_id") is not None:
        attributes["session_id"] = str(metadata["conversation_id"])
    return attributes


class TurnHandler(CallbackHandler):
    """Langfuse's LangChain ``CallbackHandler``, taught the turn's user and conversation.

    Langfuse's handler turns ``langfuse_user_id``/``langfuse_session_id`` run metadata into
    trace attributes only at the root of a chain; the chat core calls a chat model directly, so
    this one sets them itself (``propagate_attributes``) around the start of each model call,
    and adds the two keys to the generation's metadata as well."""

    def __init__(self, *, client: Langfuse, public_key: str, attributes: dict) -> None:
        super().__init__(public_key=public_key)
        self.client = client
        self.turn_attributes = attributes
        self.turn_metadata = {  # kept on the generation too
            f"langfuse_{key}": attributes[key]
            for key in ("user_id", "session_id")
            if key in attributes
        }

    def _traced(self, start, *args, parent_run_id=None, metadata=None, **kwargs):
        if parent_run_id is not None:  # inside a chain: the chain's root carries them
            return start(*args, parent_run_id=parent_run_id, metadata=metadata, **kwargs)
        with propagate_attributes(**self.turn_attributes):
            return start(
                *args,
                parent_run_id=parent_run_id,
                metadata={**(metadata or {}), **self.turn_metadata},
                **kwargs,
            )

    def on_chat_model_start(self, *args, **kwargs):
        return self._traced(super().on_chat_model_start, *args, **kwargs)

    def on_llm_start(self, *args, **kwargs):
        return self._traced(super().on_llm_start, *args, **kwargs)

    def on_score(self, message_id, score, comment, metadata) -> None:
        """Feedback from ``POST /api/chat/message/{id}/score``: a score named ``feedback`` on
        the conversation's session (Langfuse's traces do not know message ids). Its id comes
        from the message, so scoring a reply again replaces its score, as the history does.
        Queued: langfuse sends it in the background."""
        conversation_id = metadata.get("conversation_id")
        seed = f"ai-assistant:{conversation_id}:{message_id}"
        self.client.create_score(
            name="feedback",
            value=float(score),
            data_type="NUMERIC",
            comment=comment,
            session_id=str(conversation_id) if conversation_id is not None else None,
            score_id=str(uuid.uuid5(uuid.NAMESPACE_URL, seed)),
            metadata={
                "message_id": message_id,
                "model_id": metadata.get("model_id"),
                "user": metadata.get("user"),
            },
        )


def make_handler(options: dict, metadata: dict) -> TurnHandler:
    """A handler for one turn, sending to the Langfuse client for these options."""
    return TurnHandler(
        client=client(**options),
        public_key=options["public_key"],
        attributes=trace_attributes(metadata),
    )
