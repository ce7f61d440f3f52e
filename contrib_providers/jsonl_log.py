"""A callback plugin: one JSON line per model call event (start, first token, end with usage,
error), with the turn's metadata, appended to a file. For audits and quick latency checks.

    [default.callbacks.jsonl_log]
    path = "model-calls.jsonl"     # relative to the settings file; mode 0600

Each line: ``{"event": "start" | "first_token" | "end" | "error", "time": ISO-8601, "run_id",
"model_id", "called_model_id", "fallback_from"?, "conversation_id", "user", "surface", ...}``;
``first_token`` and ``end`` add ``ms`` since the call's start, ``end`` adds ``usage``, ``error``
adds ``error`` (the exception's type and HTTP status, never its message: it may quote a key).
"""

from __future__ import annotations

from ai_assistant import hookimpl
from ai_assistant.provider_kit import settings_path

SECTION = "callbacks.jsonl_log"


def make_handler(path):
    """The handler class is made on first use: langchain_core is imported then, not at start-up."""
    import json
    import os
    import threading
    import time
    from datetime import UTC, datetime

    from langchain_core.callbacks import BaseCallbackHandler

    lock = threading.Lock()

    class JsonLinesHandler(BaseCallbackHandler):
        def __init__(self):
            self.started = {}
            self.first_token = set()

        def _write(self, event, run_id, metadata=None, **fields):
            line = {
                "event": event,
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "run_id": str(run_id),
                **{k: v for k, v in (metadata or {}).items() if not k.startswith(("ls_", "lc_"))},
                **fields,
            }
            text = json.dumps(line, default=str) + "\n"
            with lock:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, text.encode())
                finally:
                    os.close(fd)

        def _ms(self, run_id):
            return round(
                (time.perf_counter() - self.started.get(run_id, time.perf_counter())) * 1000
            )

        def on_chat_model_start(self, serialized, messages, *, run_id, metadata=None, **kwargs):
            self.started[run_id] = time.perf_counter()
            self._write("start", run_id, metadata)

        def on_llm_new_token(self, token, *, run_id, **kwargs):
            if token and run_id not in self.first_token:
                self.first_token.add(run_id)
                self._write("first_token", run_id, ms=self._ms(run_id))

        def on_llm_end(self, response, *, run_id, **kwargs):
            usage = None
            for generations in response.generations:
                for generation in generations:
                    message = getattr(generation, "message", None)
                    usage = getattr(message, "usage_metadata", None) or usage
            self._write("end", run_id, ms=self._ms(run_id), usage=usage)
            self.started.pop(run_id, None)

        def on_llm_error(self, error, *, run_id, **kwargs):
            status = getattr(error, "status_code", None)
            kind = type(error).__name__ + (f" (HTTP {status})" if status else "")
            self._write("error", run_id, ms=self._ms(run_id), error=kind)
            self.started.pop(run_id, None)

    return JsonLinesHandler()


@hookimpl
def register_callbacks(config, registry):
    section = config.get(SECTION)
    if not section or not section.get("path"):
        return
    path = settings_path(config, section["path"])
    registry.register("jsonl_log", factory=lambda metadata: make_handler(path), path=str(path))


@hookimpl
def validate_config(config):
    section = config.get(SECTION)
    if section is None:
        return []
    if not isinstance(section.get("path"), str) or not section.get("path"):
        return [(f"{SECTION}.path", 'is required: add path = "model-calls.jsonl"')]
    return []
