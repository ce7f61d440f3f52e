"""The host's own settings keys, declared once: type, range and default of each.

``config validate`` checks the settings against this, and the code that reads a key asks
``Config.value(key)``, which gives the default from here: there is no second copy of a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Key:
    """One host key: what it accepts, what it is when unset, and what to write instead."""

    __slots__ = ("path", "types", "expected", "default", "minimum", "maximum")

    def __init__(
        self,
        path: str,
        types: tuple[type, ...],
        expected: str,
        default: Any = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> None:
        self.path = path
        self.types = types
        self.expected = expected
        self.default = default
        self.minimum = minimum
        self.maximum = maximum

    def __repr__(self) -> str:
        return f"Key({self.path!r})"

    def type_ok(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in self.types:
            return False  # TOML's true is not a port number, though Python says it is an int
        return isinstance(value, self.types)

    def range_problem(self, value: Any) -> str | None:
        """``must be between 1 and 65535`` and the like, or None when the number is in range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not low <= value <= high:
            return f"must be between {low:g} and {high:g}"
        if low is not None and value < low:
            return "must be more than 0" if 0 < low < 1 else f"must be at least {low:g}"
        if high is not None and value > high:
            return f"must be at most {high:g}"
        return None


_NAMES = 'a list of plugin names, like ["echo"]'

# A string is accepted where an environment variable may give a comma-separated list.
KEYS: dict[str, Key] = {
    k.path: k
    for k in [
        Key("plugins", (Mapping,), "a table [default.plugins]", {}),
        Key("plugins.dirs", (list, str), 'a list of directories, like ["plugins"]', []),
        Key("plugins.enabled", (list, str), _NAMES, []),
        Key("plugins.disabled", (list, str), _NAMES, []),
        Key("plugins.strict", (bool,), "true or false", False),
        Key("models", (Mapping,), "a table of provider sections, like [default.models.echo]", {}),
        Key("chat", (Mapping,), "a table [default.chat]", {}),
        Key("chat.default_model", (str,), 'a model id, like "echo"'),
        Key(
            "chat.fallbacks",
            (Mapping,),
            'a table of model id = [fallback ids], like { "a" = ["b"] }',
            {},
        ),
        Key("chat.tools", (list, str), 'a list of tool name patterns, like ["files_*"]', []),
        Key("chat.max_tool_steps", (int,), "a number of tool steps per reply", 8, 1),
        Key("tools", (Mapping,), "a table [default.tools]", {}),
        Key(
            "tools.require_approval",
            (list, str),
            'a list of tool name patterns, like ["files_write*"]',
            [],
        ),
        Key("tools.timeout", (int, float), "a number of seconds", 60, 0.001),
        Key("tools.timeouts", (Mapping,), "a table of tool name = seconds", {}),
        Key("tools.max_result_chars", (int,), "a number of characters", 20_000, 1),
        Key("mcp", (Mapping,), "a table [default.mcp]", {}),
        Key("mcp.servers", (Mapping,), "a table of servers, like [default.mcp.servers.files]", {}),
        Key("prompt", (Mapping,), "a table [default.prompt]", {}),
        Key("prompt.system", (str,), "a string"),
        Key("prompt.prefix", (str,), "a string", ""),
        Key("prompt.suffix", (str,), "a string", ""),
        Key("callbacks", (Mapping,), "a table of callback plugin sections", {}),
        Key(
            "embeddings",
            (Mapping,),
            "a table of provider sections, like [default.embeddings.x]",
            {},
        ),
        Key("knowledge", (Mapping,), "a table [default.knowledge]", {}),
        Key("knowledge.embeddings", (str,), 'an embeddings id, like "hashing"', "hashing"),
        Key(
            "knowledge.store",
            (str,),
            'a file path or URL, like "knowledge.db" or "postgresql://user@host/db"',
        ),
        Key("knowledge.chunk_size", (int,), "a number of characters, like 1000", 1000, 20),
        Key("knowledge.chunk_overlap", (int,), "a number of characters, like 100", 100, 0),
        Key("knowledge.batch_size", (int,), "a number of chunks per embeddings call", 64, 1),
        Key("knowledge.retries", (int,), "a number of retries of a failed embeddings call", 2, 0),
        Key("knowledge.top_k", (int,), "a number of chunks, like 4", 4, 1, 100),
        Key(
            "knowledge.max_document_chars",
            (int,),
            "a number of characters; a longer document is cut there",
            5_000_000,
            1,
        ),
        Key(
            "knowledge.sources",
            (Mapping,),
            "a table of sources, like [default.knowledge.sources.handbook]",
            {},
        ),
        Key("storage", (Mapping,), "a table [default.storage]", {}),
        Key("storage.path", (str,), 'a file path, like "history.db" (older: use storage.url)'),
        Key(
            "storage.url",
            (str,),
            'a file path or URL, like "history.db" or "postgresql://user@host/db"',
        ),
        Key("storage.pool_size", (int,), "a number of connections, like 10", 10, 1),
        Key("storage.busy_timeout", (int, float), "a number of seconds", 5.0, 0.001),
        Key("server", (Mapping,), "a table [default.server]", {}),
        Key("server.host", (str,), 'an address, like "127.0.0.1"', "127.0.0.1"),
        Key("server.port", (int,), "a port number, like 8080", 8080, 1, 65535),
        Key("server.workers", (int,), "a number of worker processes, like 2", 1, 1),
        Key("server.access_log", (bool,), "true or false", True),
        Key("server.store_completions", (bool,), "true or false", True),
        Key("server.api_keys", (Mapping,), 'a table of name = "key", in .secrets.toml', {}),
        Key("server.tools", (Mapping,), 'a table of API key name = ["tool patterns"]', {}),
        Key("server.limits", (Mapping,), "a table [default.server.limits]", {}),
        Key("server.limits.max_body_bytes", (int,), "a number of bytes", 1024 * 1024, 1),
        Key("server.limits.max_messages", (int,), "a number of messages", 256, 1),
        Key("server.limits.max_prompt_chars", (int,), "a number of characters", 400_000, 1),
        Key("server.limits.request_timeout", (int, float), "a number of seconds", 300, 0.001),
    ]
}

# Tables whose keys are the user's own names (plugins, model ids, key names): any key goes.
OPEN_TABLES = {
    "models",
    "callbacks",
    "chat.fallbacks",
    "server.api_keys",
    "server.tools",
    "tools.timeouts",
    "mcp.servers",
    "embeddings",
    "knowledge.sources",
}


def unknown_keys(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, list[str]]]:
    """``(key path, the known keys beside it)`` for each key of the host's tables that the
    schema does not declare (``chat.default_modle``, ``server.prot``, a top-level ``model``)."""
    found: list[tuple[str, list[str]]] = []
    siblings = [p.rsplit(".", 1)[-1] for p in KEYS if p.rpartition(".")[0] == prefix]
    for key, value in data.items():
        # (a nested key from an environment variable keeps the variable's case: PORT)
        path = f"{prefix}.{key}" if prefix else str(key)
        if path not in KEYS and path.lower() in KEYS:
            path = path.lower()
        if path not in KEYS:
            found.append((path, siblings))
        elif isinstance(value, Mapping) and path not in OPEN_TABLES:
            found.extend(unknown_keys(value, path))
    return found
