"""The chat service: which model answers, what is sent, what happens when a provider fails, and
what is stored. The CLI and the HTTP gateway both drive it; it prints nothing itself.

A reply streams token by token. A model that fails before its first token with a connection
error, a timeout, HTTP 429 or 5xx hands over to the next model in its ``chat.fallbacks`` list; an
authentication failure (401/403) never falls back. A failure after tokens arrived keeps them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from .config import Config, env_var_name
from .errors import AiAssistantError, ModelUnavailableError, UnknownModelError
from .host import Host
from .store import COMPLETE, FAILED, INTERRUPTED, STREAMING, Store, default_store_path

FLUSH_SECONDS = 0.5  # how often a streaming reply's text is saved, so a kill loses little


class ChatError(AiAssistantError):
    """The reply could not be produced (or broke off); ``reply`` holds what arrived."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        reply: Reply | None = None,
        failure: Failure | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.reply = reply
        self.failure = failure  # the provider error behind it, classified


class Failure:
    """A provider error, classified: may the next model be tried?"""

    def __init__(self, kind: str, description: str, fallback: bool) -> None:
        self.kind = kind  # auth, rate_limited, server_error, timeout, connection, request, error
        self.description = description
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"Failure({self.kind!r}, {self.description!r})"


_TIMEOUTS = {"APITimeoutError", "TimeoutException", "TimeoutError", "ReadTimeout", "Timeout"}
_CONNECTION = {
    "APIConnectionError",
    "ConnectError",
    "RemoteProtocolError",
    "ReadError",
    "NetworkError",
    "TransportError",
    "ConnectionError",
    "IncompleteRead",
}


def classify(exc: BaseException) -> Failure:
    """Sort an exception from any provider SDK by what it means for fallbacks (duck-typed, so
    no SDK is imported to look at it)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    detail = _short(exc)
    if status in (401, 403):
        return Failure("auth", f"HTTP {status}: the API key is missing or was rejected", False)
    if status == 429:
        return Failure("rate_limited", f"HTTP 429 rate limited{detail}", True)
    if isinstance(status, int) and status >= 500:
        return Failure("server_error", f"HTTP {status} server error{detail}", True)
    if names & _TIMEOUTS:
        return Failure("timeout", "timed out", True)
    if names & _CONNECTION:
        return Failure("connection", f"connection failed{detail}", True)
    if isinstance(status, int):
        return Failure("request", f"HTTP {status}{detail}", False)
    return Failure("error", f"{type(exc).__name__}{detail}", False)


def _short(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    text = " ".join(str(message or exc).split())
    return f": {text[:200]}" if text else ""


class Reply:
    """One assistant reply: who answered, what, how it ended."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.parts: list[str] = []
        self.status = STREAMING
        self.error: str | None = None
        self.failures: list[tuple[str, str]] = []  # (model id, why) for models that fell through
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.first_token_ms: int | None = None
        self.latency_ms: int | None = None
        self.message_id: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def __repr__(self) -> str:
        return f"Reply(model_id={self.model_id!r}, status={self.status!r}, {len(self.text)} chars)"


_SETTINGS: weakref.WeakKeyDictionary[Host, dict[str, Any]] = weakref.WeakKeyDictionary()


def chat_settings(host: Host) -> dict[str, Any]:
    """prompt.* and chat.* of ``host``, read once (the gateway needs them on every request)."""
    if host not in _SETTINGS:
        _SETTINGS[host] = _read_chat_settings(host)
    return _SETTINGS[host]


def _read_chat_settings(host: Host) -> dict[str, Any]:
    cfg = host.config
    return {
        "system": cfg.get("prompt.system") or None,
        "prefix": cfg.get("prompt.prefix") or "",
        "suffix": cfg.get("prompt.suffix") or "",
        "default_model": cfg.get("chat.default_model") or None,
        "fallbacks": {str(k): list(v) for k, v in (cfg.get("chat.fallbacks") or {}).items()},
    }


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


def open_store(source: Host | Config) -> Store:
    """The history database at ``storage.path`` (relative to the settings file's folder).
    Settings alone are enough: a command that only reads history imports no plugin."""
    config = source.config if isinstance(source, Host) else source
    configured = config.get("storage.path")
    path = config.root / configured if configured else default_store_path()
    return Store(Path(path).expanduser())


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content or ())


class Turn:
    """One reply with fallbacks: which models to try, what a chunk means, what a failure means.

    Shared by the blocking loop (``stream_turn``, the CLI) and the async one (``astream_turn``,
    the gateway), which differ only in how they iterate.
    """

    def __init__(
        self,
        host: Host,
        model_id: str,
        reply: Reply,
        on_notice: Callable[[str], None] | None = None,
        on_progress: Callable[[Reply], None] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.host = host
        self.reply = reply
        self.candidates = [model_id, *chat_settings(host)["fallbacks"].get(model_id, [])]
        self.on_notice = on_notice or (lambda message: None)
        self.on_progress = on_progress or (lambda reply: None)
        self.started = time.perf_counter()
        self._last_flush = self.started
        # what callbacks are told about the turn: see hookspecs.register_callbacks
        self.metadata = {
            "model_id": model_id,
            "conversation_id": None,
            "user": None,
            "surface": "python",
            **(metadata or {}),
        }
        self.handlers = (
            host.callbacks.handlers(self.metadata, self.on_notice) if len(host.callbacks) else []
        )

    def run_config(self, index: int) -> dict[str, Any]:
        """The LangChain run config for candidate ``index``: the callbacks, once per turn, with
        the turn's metadata (and which model this call is, when it is a fallback)."""
        if not self.handlers:
            return {}
        metadata = {**self.metadata, "called_model_id": self.candidates[index]}
        if index:
            metadata["fallback_from"] = self.candidates[index - 1]
        return {
            "config": {
                "callbacks": self.handlers,
                "metadata": metadata,
                "run_name": f"ai-assistant {self.metadata['surface']}",
                "tags": [f"surface:{self.metadata['surface']}"],
            }
        }

    def models(self) -> Iterator[tuple[int, Any]]:
        """(index, LangChain model) of each candidate in turn; an unusable fallback is skipped
        with a notice, an unusable first choice is an error."""
        for index, model_id in enumerate(self.candidates):
            self.reply.model_id = model_id
            try:
                chat_model = self.host.registry.get(model_id).get()
            except (ModelUnavailableError, UnknownModelError) as exc:
                if index == 0:
                    raise ChatError(str(exc), hint=exc.hint, reply=self.reply) from None
                self.reply.failures.append((model_id, str(exc)))
                self.on_notice(f"skipping fallback {model_id!r}: {exc}")
                continue
            yield index, chat_model

    def take(self, chunk: Any) -> str:
        """Account for one streamed chunk; its text (may be empty)."""
        reply = self.reply
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            reply.input_tokens = (reply.input_tokens or 0) + usage.get("input_tokens", 0)
            reply.output_tokens = (reply.output_tokens or 0) + usage.get("output_tokens", 0)
        text = _text_of(chunk.content)
        if text:
            if reply.first_token_ms is None:
                reply.first_token_ms = _ms_since(self.started)
            reply.parts.append(text)
            if time.perf_counter() - self._last_flush > FLUSH_SECONDS:
                self.on_progress(reply)
                self._last_flush = time.perf_counter()
        return text

    def failed(self, exc: Exception, index: int) -> None:
        """Raise ``ChatError`` unless the next candidate should be tried."""
        reply = self.reply
        model_id = self.candidates[index]
        failure = classify(exc)
        why = self.host.config.redact(failure.description)
        if reply.parts:
            raise ChatError(
                f"the reply from {model_id!r} broke off: {why}",
                hint="what arrived is kept in the history; ask again to retry",
                reply=reply,
                failure=failure,
            ) from None
        if failure.kind == "auth":
            model = self.host.registry.get(model_id)
            raise ChatError(
                f"model {model_id!r} was refused: {why}",
                hint=_key_hint(model),
                reply=reply,
                failure=failure,
            ) from None
        reply.failures.append((model_id, why))
        if failure.fallback and index + 1 < len(self.candidates):
            self.on_notice(
                f"model {model_id!r} failed ({why}); trying {self.candidates[index + 1]!r}"
            )
            return
        hint = None
        if index == 0 and failure.fallback:
            hint = f'to fall back, set chat.fallbacks = {{ "{model_id}" = ["other-id"] }}'
        raise ChatError(
            f"model {model_id!r} failed: {why}", hint=hint, reply=reply, failure=failure
        ) from None

    def answered(self) -> None:
        if self.reply.failures:
            failed = "; ".join(f"{m!r}: {why}" for m, why in self.reply.failures)
            self.on_notice(f"answered by {self.reply.model_id!r} (failed before it: {failed})")

    def exhausted(self) -> ChatError:
        return ChatError(
            "no model could answer: "
            + "; ".join(f"{m!r}: {why}" for m, why in self.reply.failures),
            reply=self.reply,
        )

    def settle(self, exc: BaseException | None) -> None:
        """Set the reply's final status from how the stream ended."""
        reply = self.reply
        reply.latency_ms = _ms_since(self.started)
        if exc is None:
            reply.status = COMPLETE
        elif isinstance(exc, KeyboardInterrupt):
            reply.status, reply.error = INTERRUPTED, "interrupted by the user"
        elif isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            reply.status, reply.error = INTERRUPTED, "the reader went away before the reply ended"
        else:
            reply.status, reply.error = FAILED, self.host.config.redact(str(exc))


def stream_turn(turn: Turn, messages: list[Any], **kwargs: Any) -> Iterator[str]:
    """The reply's text as it arrives, trying fallbacks as ``turn`` decides (blocking)."""
    for index, chat_model in turn.models():
        inner = chat_model.stream(messages, **kwargs, **turn.run_config(index))
        try:
            for chunk in inner:
                text = turn.take(chunk)
                if text:
                    yield text
        except Exception as exc:
            turn.failed(exc, index)
            continue
        finally:
            inner.close()  # a reader that stops early cancels the upstream request
        turn.answered()
        return
    raise turn.exhausted()


async def astream_turn(turn: Turn, messages: list[Any], **kwargs: Any) -> AsyncIterator[str]:
    """The same as ``stream_turn``, for an event loop."""
    for index, chat_model in turn.models():
        inner = chat_model.astream(messages, **kwargs, **turn.run_config(index))
        try:
            async for chunk in inner:
                text = turn.take(chunk)
                if text:
                    yield text
        except Exception as exc:
            turn.failed(exc, index)
            continue
        finally:
            await inner.aclose()
        turn.answered()
        return
    raise turn.exhausted()


async def ainvoke_turn(turn: Turn, messages: list[Any], **kwargs: Any) -> AsyncIterator[str]:
    """The whole reply in one piece, from one non-streaming call per model tried: cheaper than
    a stream when nobody reads the tokens as they come."""
    for index, chat_model in turn.models():
        try:
            message = await chat_model.ainvoke(messages, **kwargs, **turn.run_config(index))
        except Exception as exc:
            turn.failed(exc, index)
            continue
        text = turn.take(message)
        turn.answered()
        if text:
            yield text
        return
    raise turn.exhausted()


class Recorder:
    """Writes one exchange to the history: the new user messages, then the reply as it goes."""

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

    def start(self, model_id: str, user_texts: list[str], reply: Reply) -> None:
        if self.store is not None:
            self.conversation_id, reply.message_id = self.store.start_exchange(
                self.conversation_id, model_id, user_texts, system=self.system, owner=self.owner
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
            )


class Chat:
    """A conversation with one model at a time, optionally recorded in a ``Store``.

    >>> chat = Chat(load_host(), "echo")
    >>> "".join(chat.stream("hi"))
    'echo: hi'
    """

    def __init__(
        self,
        host: Host,
        model_id: str | None = None,
        *,
        store: Store | None = None,
        conversation_id: str | None = None,
        system: str | None = None,
        on_notice: Callable[[str], None] | None = None,
        surface: str = "python",
    ) -> None:
        self.host = host
        self.surface = surface  # for callbacks: "cli" or "python"
        self.settings = chat_settings(host)
        self.store = store
        self.on_notice = on_notice or (lambda message: None)
        self.history: list[tuple[str, str]] = []  # (role, content) already in the conversation
        self.conversation_id: str | None = None
        stored_system = None
        if conversation_id is not None:
            if store is None:
                raise AiAssistantError("continuing a conversation needs the history store")
            conv = store.conversation(conversation_id)
            self.conversation_id = conv["id"]
            stored_system = conv["system"]
            model_id = model_id or conv["model"]
            self.history = [(m["role"], m["content"]) for m in conv["messages"] if m["content"]]
        self.model_id = resolve_model_id(host, model_id)
        self.system = system if system is not None else stored_system or self.settings["system"]
        self.last_reply: Reply | None = None

    def switch_model(self, model_id: str) -> None:
        self.host.registry.get(model_id)
        self.model_id = model_id
        if self.store is not None and self.conversation_id is not None:
            self.store.set_conversation_model(self.conversation_id, model_id)

    def new_conversation(self) -> None:
        self.history = []
        self.conversation_id = None

    def build_messages(self, user_text: str) -> list[Any]:
        """The LangChain messages for the next turn: system, history, then the new message, each
        user message wrapped in ``prompt.prefix``/``prompt.suffix``."""
        return to_langchain(
            [*self.history, ("user", user_text)],
            self.system,
            self.settings["prefix"],
            self.settings["suffix"],
        )

    def stream(self, user_text: str) -> Iterator[str]:
        """Yield the reply's text as it arrives; ``last_reply`` describes it afterwards.

        Raises ``ChatError`` when no model could answer or the reply broke off. On
        ``KeyboardInterrupt`` (or a reader closing the generator) the partial reply is stored
        as interrupted and the interruption goes on up.
        """
        messages = self.build_messages(user_text)
        reply = Reply(self.model_id)
        self.last_reply = reply
        recorder = Recorder(self.store, self.conversation_id, system=self.system)
        recorder.start(self.model_id, [user_text], reply)
        self.conversation_id = recorder.conversation_id
        turn = Turn(
            self.host,
            self.model_id,
            reply,
            self.on_notice,
            recorder.progress,
            metadata={
                "conversation_id": self.conversation_id,
                "user": _os_user(),
                "surface": self.surface,
            },
        )
        try:
            yield from stream_turn(turn, messages)
        except BaseException as exc:
            turn.settle(exc)
            raise
        else:
            turn.settle(None)
        finally:
            recorder.finish(reply)
            self.history.append(("user", user_text))
            if reply.text:
                self.history.append(("assistant", reply.text))

    def send(self, user_text: str) -> Reply:
        """The whole reply at once (it still streams underneath)."""
        for _ in self.stream(user_text):
            pass
        assert self.last_reply is not None
        return self.last_reply


def to_langchain(
    turns: list[tuple[str, str]], system: str | None = None, prefix: str = "", suffix: str = ""
) -> list[Any]:
    """LangChain messages from (role, text) pairs: system first, each user text wrapped in
    ``prefix``/``suffix``. Roles: system, user, assistant."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    messages: list[Any] = [SystemMessage(system)] if system else []
    for role, content in turns:
        if role == "user":
            messages.append(HumanMessage(f"{prefix}{content}{suffix}"))
        elif role == "system":
            messages.append(SystemMessage(content))
        else:
            messages.append(AIMessage(content))
    return messages


def _key_hint(model: Any) -> str:
    plugin = model.plugin
    key = f"models.{plugin}.api_key"
    return f"check the key: `ai-assistant secrets set {key}`, or export {env_var_name(key)}"


def _os_user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return None


def _ms_since(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
