"""A callback plugin: every model call traced in Langfuse, with the turn's user as the Langfuse
user and its conversation as the Langfuse session. Needs the extra:
``pip install 'ai-assistant[langfuse]'`` (langfuse 5, whose LangChain ``CallbackHandler`` it uses).

    [default.callbacks.langfuse]
    host = "https://cloud.langfuse.com"    # the default; or your own Langfuse's URL
    public_key = "pk-lf-..."
    timeout = 5                            # seconds per export (the default): about the most
                                           # a command waits at exit when Langfuse is down

    # .secrets.toml: `ai-assistant secrets set callbacks.langfuse.secret_key`
    [default.callbacks.langfuse]
    secret_key = "sk-lf-..."

Each model call is one trace named ``ai-assistant <surface>`` holding one generation (input,
output, model, usage, time to first token); a fallback is a trace of its own in the same
session, its metadata saying ``fallback_from``. The trace is tagged ``surface:<surface>``.
A score given through the gateway (``POST /api/chat/message/{id}/score``) becomes a Langfuse
score named ``feedback`` on that session, with its comment and the message id.

The folder is named after the plugin (``langfuse``) so that its section reads
``callbacks.langfuse``; it never shadows the ``langfuse`` package, because the host imports
plugins under private module names (``ai_assistant_plugin_langfuse``). ``handler.py`` beside
this file holds what needs langfuse; it is imported on the first turn only.

Langfuse is imported on the first turn, never at start-up: ``models list`` stays fast. Events
are sent in the background in batches, and langfuse sends what is left when the process exits
(its own exit handler), so a one-shot ``ai-assistant chat`` delivers its trace. The plugin has no
``shutdown`` hook on purpose: a bundled plugin with a lifecycle hook would make every command
start the host's event loop, traced or not; ``flush()`` sends early from a long-lived process.
"""

from __future__ import annotations

import sys

from ai_assistant import hookimpl
from ai_assistant.config import env_var_name

SECTION = "callbacks.langfuse"
DEFAULT_HOST = "https://cloud.langfuse.com"
DEFAULT_TIMEOUT = 5  # seconds, as langfuse has it
INSTALL_HINT = "install the extra: pip install 'ai-assistant[langfuse]'"
KEYS = {"public_key": "settings.toml", "secret_key": ".secrets.toml"}  # where each belongs


def _installed() -> bool:
    """Is langfuse importable? Found without importing it (start-up stays fast)."""
    import importlib.util

    try:
        return importlib.util.find_spec("langfuse") is not None
    except (ImportError, ValueError):
        return False


def _missing_key_problem(key: str) -> str:
    """``is not set, ...: set it ...`` (the key path goes before it)."""
    path = f"{SECTION}.{key}"
    how = f"set {key} under [default.{SECTION}] in {KEYS[key]}"
    if KEYS[key] == ".secrets.toml":
        how += f" (`ai-assistant secrets set {path}`)"
    how += f", or export {env_var_name(path)}"
    return f"is not set, so nothing is sent to Langfuse: {how}"


def _bad_host(host) -> str | None:
    if not isinstance(host, str) or not host.startswith(("https://", "http://")):
        return f'must be a URL: host = "{DEFAULT_HOST}"'
    return None


def _timeout(value) -> int | None:
    """Whole seconds, at least 1 (langfuse takes an int); None when unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return max(1, round(value))


def make_handler(options: dict, metadata: dict):
    """The factory: a Langfuse handler for one turn (langfuse is imported on the first)."""
    try:
        from .handler import make_handler
    except ImportError as exc:
        raise RuntimeError(f"langfuse cannot be imported ({exc}): {INSTALL_HINT}") from None
    return make_handler(options, metadata)


def flush() -> None:
    """Send what this plugin's clients still hold (blocking). Langfuse does it by itself when
    the process exits; call it to send sooner, from a long-lived process."""
    handler = sys.modules.get(f"{__name__}.handler")
    if handler is not None:
        handler.flush()


@hookimpl
def register_callbacks(config, registry):
    section = config.get(SECTION)
    if section is None:
        return
    if not isinstance(section, dict):
        registry.report(f"{SECTION} must be a table: [default.{SECTION}]")
        return
    if not _installed():
        registry.report(f"{SECTION} is configured but langfuse is not installed: {INSTALL_HINT}")
        return
    problems = [(key, _missing_key_problem(key)) for key in KEYS if not section.get(key)]
    host = section.get("host") or DEFAULT_HOST
    if _bad_host(host):
        problems.append(("host", _bad_host(host)))
    for key, problem in problems:
        registry.report(f"{SECTION}.{key} {problem}")
    if problems:
        return
    options = {
        "host": host.rstrip("/"),
        "public_key": str(section["public_key"]),
        "secret_key": str(section["secret_key"]),
        "timeout": _timeout(section.get("timeout", DEFAULT_TIMEOUT)) or DEFAULT_TIMEOUT,
    }
    registry.register(
        "langfuse",
        factory=lambda metadata: make_handler(options, metadata),
        host=options["host"],
    )


@hookimpl
def validate_config(config):
    section = config.get(SECTION)
    if section is None:
        return []
    if not isinstance(section, dict):
        return [(SECTION, f"must be a table: [default.{SECTION}]")]
    problems = []
    if _bad_host(section.get("host", DEFAULT_HOST)):
        problems.append((f"{SECTION}.host", _bad_host(section.get("host", DEFAULT_HOST))))
    if _timeout(section.get("timeout", DEFAULT_TIMEOUT)) is None:
        problems.append((f"{SECTION}.timeout", "must be a number of seconds above 0: timeout = 5"))
    for key in KEYS:
        value = section.get(key)
        if value is None or value == "":
            problems.append((f"{SECTION}.{key}", _missing_key_problem(key)))
        elif not isinstance(value, str):
            problems.append((f"{SECTION}.{key}", "must be a string"))
    if not _installed():
        problems.append((SECTION, f"langfuse is not installed: {INSTALL_HINT}"))
    return problems
