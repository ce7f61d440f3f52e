"""Helpers for provider plugins: read a ``models.<provider>`` section (or an
``embeddings.<provider>`` one, shaped the same) into per-model settings.

A section holds defaults for all its models plus a ``models`` array; each entry may override a
default (a per-model ``api_key``, ``timeout``...). ``ProviderSection.read`` gives one ``ModelEntry``
per usable entry and a problem line for each broken one; ``ProviderSection.validate`` gives every
problem as ``(key path, message)`` for ``ai-assistant config validate``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import did_you_mean
from .net import is_loopback_url  # noqa: F401 - re-exported for provider plugins

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "an array",
}


class Option:
    """One key a provider reads: on the section (the default for every model), on a model
    entry, or both."""

    def __init__(
        self,
        name: str,
        types: tuple[type, ...] = (str,),
        *,
        required: bool = False,
        secret: bool = False,
        section: bool = True,
        per_model: bool = True,
        default: Any = None,
        minimum: float | None = None,
    ) -> None:
        self.name = name
        self.types = types
        self.required = required
        self.secret = secret
        self.section = section
        self.per_model = per_model
        self.default = default
        self.minimum = minimum  # the least number accepted (a delay, a timeout)

    def __repr__(self) -> str:
        return f"Option({self.name!r})"

    def allowed_at(self, level: str) -> bool:
        """May this key appear at ``level`` ("section" or "model")?"""
        return self.section if level == "section" else self.per_model

    def expected(self) -> str:
        return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in self.types)


class ModelEntry:
    """One model's settings, section defaults merged with its own entry."""

    def __init__(self, id: str, options: dict[str, Any]) -> None:
        self.id = id
        self.options = options
        self.missing_secrets: list[str] = []

    def __repr__(self) -> str:
        return f"ModelEntry({self.id!r})"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _lower_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    # Dynaconf keys are case-insensitive; an environment variable arrives upper-case.
    return {str(k).lower(): v for k, v in data.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class ProviderSection:
    """The shape of one provider's settings section: ``[default.<kind>.<provider>]``.

    ``kind`` is ``"models"`` (chat models) or ``"embeddings"``. ``secrets_from`` names another
    kind whose section of the same provider lends its section-level secrets (``api_key``) to
    entries that have none of their own: ``secrets_from="models"`` lets embeddings use the key
    already set for the provider's chat models. ``always`` are entries registered even with no
    section at all (a model that needs no settings); a configured entry with the same id updates
    one key by key.
    """

    def __init__(
        self,
        provider: str,
        options: list[Option],
        id_from: str = "model_name",
        secret_optional: Any = None,
        *,
        kind: str = "models",
        secrets_from: str | None = None,
        always: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> None:
        self.provider = provider
        self.options = {o.name: o for o in options}
        self.id_from = id_from
        # secret_optional(entry_options) -> True when this model can run without its secret
        # (a local server); otherwise an unset secret makes the model "missing secret".
        self.secret_optional = secret_optional
        self.kind = kind
        self.secrets_from = secrets_from
        self.always = [dict(entry) for entry in always]

    @property
    def path(self) -> str:
        return f"{self.kind}.{self.provider}"

    def _section(self, config: Any, path: str | None = None) -> dict[str, Any] | None:
        section = config.get(path or self.path)
        return _lower_keys(section) if isinstance(section, Mapping) else None

    def _lent_secrets(self, config: Any) -> dict[str, Any]:
        """The section-level secrets of the ``secrets_from`` section (a per-model key there
        belongs to that model's endpoint and is never lent)."""
        if not self.secrets_from:
            return {}
        other = self._section(config, f"{self.secrets_from}.{self.provider}") or {}
        return {
            name: other[name]
            for name, option in self.options.items()
            if option.secret and other.get(name) not in (None, "")
        }

    def _type_problems(self, data: Mapping[str, Any], prefix: str, level: str) -> list[tuple]:
        problems = []
        for key, value in data.items():
            if key == "models" and level == "section":
                continue
            option = self.options.get(key)
            if option is None or not option.allowed_at(level):
                names = [n for n, o in self.options.items() if o.allowed_at(level)]
                hint = did_you_mean(key, names) or f"; known keys here: {', '.join(sorted(names))}"
                problems.append((f"{prefix}.{key}", "unknown key" + hint))
            elif value is not None and not (
                isinstance(value, option.types)
                and not (isinstance(value, bool) and bool not in option.types)
            ):
                problems.append((f"{prefix}.{key}", f"must be {option.expected()}"))
            elif option.minimum is not None and _is_number(value) and value < option.minimum:
                problems.append((f"{prefix}.{key}", f"must be at least {option.minimum:g}"))
        return problems

    def _entries(self, config: Any) -> tuple[list[ModelEntry], list[tuple[str, str]]]:
        section = self._section(config)
        if section is None:
            raw = config.get(self.path)
            if raw is not None:
                table = f"[default.{self.path}]"
                return [], [(self.path, f"must be a table {table}, not {type(raw).__name__}")]
            if not self.always:
                return [], []
            section = {}
        problems = self._type_problems(section, self.path, "section")
        raw_models = section.get("models") or []
        if not isinstance(raw_models, list):
            problems.append(
                (
                    f"{self.path}.models",
                    f'must be an array of tables, like models = [{{ {self.id_from} = "..." }}]',
                )
            )
            return [], problems
        defaults = {k: v for k, v in section.items() if k != "models"}
        lent = self._lent_secrets(config)
        entries: list[ModelEntry] = []
        for key_path, own in self._model_tables([*self.always, *raw_models], problems):
            entry_problems = self._type_problems(own, key_path, "model")
            merged = {name: o.default for name, o in self.options.items() if o.default is not None}
            merged.update(_plain(defaults))
            merged.update(_plain(own))
            for option in self.options.values():
                if option.required and merged.get(option.name) in (None, ""):
                    entry_problems.append(
                        (f"{key_path}.{option.name}", f'is required: add {option.name} = "..."')
                    )
            problems.extend(entry_problems)
            if entry_problems:
                continue
            for name, value in lent.items():
                if merged.get(name) in (None, ""):
                    merged[name] = value
            model_id = str(merged.get("id") or merged.get(self.id_from))
            entry = ModelEntry(model_id, merged)
            for option in self.options.values():
                unset = option.secret and merged.get(option.name) in (None, "")
                if unset and not (self.secret_optional and self.secret_optional(merged)):
                    entry.missing_secrets.append(f"{self.path}.{option.name}")
            entries.append(entry)
        return entries, problems

    def _model_tables(
        self, raw_models: list[Any], problems: list[tuple[str, str]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(key path, table)`` per model. A later entry with the id of an earlier one (from
        settings.local.toml, say: the layers' arrays are joined) updates that entry key by
        key, so a later layer can point a model at another endpoint."""
        tables: dict[Any, tuple[str, dict[str, Any]]] = {}
        for i, raw in enumerate(raw_models, start=-len(self.always)):
            # the ``always`` entries come first, with no index of the user's
            key_path = f"{self.path}.models[{i}]" if i >= 0 else self.path
            if not isinstance(raw, Mapping):
                problems.append((key_path, f'must be a table, like {{ {self.id_from} = "..." }}'))
                continue
            own = _lower_keys(raw)
            model_id = own.get("id") or own.get(self.id_from)
            key = model_id if isinstance(model_id, str) and model_id else i
            if key in tables:
                first_path, first = tables[key]
                # an ``always`` entry's problems are the configured entry's
                path = key_path if first_path == self.path else first_path
                tables[key] = (path, {**first, **own})
            else:
                tables[key] = (key_path, own)
        return list(tables.values())

    def read(self, config: Any, registry: Any = None) -> list[ModelEntry]:
        """The usable model entries; each broken one is reported to ``registry`` (if given)."""
        entries, problems = self._entries(config)
        if registry is not None:
            for key, message in problems:
                if message.startswith("unknown key"):
                    continue  # only `config validate` nags about unknown keys
                skipped = "; this model is skipped" if ".models[" in key else ""
                registry.report(f"{key}: {message}{skipped}")
        return entries

    def validate(self, config: Any) -> list[tuple[str, str]]:
        return self._entries(config)[1]

    def register(self, config: Any, registry: Any, build: Any, *shown: str) -> None:
        """Register every usable entry with ``factory=build(entry.options)`` deferred to first
        use, showing the ``shown`` fields in ``models list`` (or ``embeddings list``)."""
        from functools import partial

        for entry in self.read(config, registry):
            registry.register(
                entry.id,
                factory=partial(build, entry.options),
                missing_secrets=entry.missing_secrets,
                **display_info(entry, *shown),
            )

    register_models = register  # the name chat providers have used


# Keys every OpenAI-protocol provider accepts, passed to the LangChain constructor as they are.
COMMON_OPTIONS = [
    Option("id", section=False),
    Option("timeout", (int, float), minimum=0),
    Option("max_retries", (int,), minimum=0),
    Option("default_headers", (dict,)),
    Option("temperature", (int, float), minimum=0),
    Option("max_tokens", (int,), minimum=1),
    # ask for token usage on streamed replies (stream_options); off for servers that reject it
    Option("stream_usage", (bool,), default=True),
]
_PASS_THROUGH = tuple(o.name for o in COMMON_OPTIONS if o.name != "id")


def chat_openai(
    options: Mapping[str, Any],
    *,
    base_url: str,
    api_key: str | None,
    azure: bool = False,
    **extra: Any,
) -> Any:
    """A LangChain chat model for an OpenAI-protocol endpoint: ``OpenAIChatModel``
    (``ai_assistant.openai_chat``: Chat Completions on httpx2, no SDK to import), or with
    ``azure=True`` langchain_openai's ``AzureChatOpenAI`` (deployments, API versions, Azure AD),
    imported here, on first use."""
    kwargs = {k: options[k] for k in _PASS_THROUGH if options.get(k) is not None}
    kwargs.update(extra)
    if azure:
        from langchain_openai import AzureChatOpenAI

        return AzureChatOpenAI(azure_endpoint=base_url, api_key=api_key, **kwargs)
    from .openai_chat import OpenAIChatModel

    # (servers on loopback, llama.cpp, vLLM, Ollama, take no key: none is sent)
    return OpenAIChatModel(base_url=base_url, api_key=api_key, **kwargs)


# Keys every OpenAI-protocol embeddings provider accepts ([default.embeddings.<provider>]).
EMBEDDINGS_OPTIONS = [
    Option("id", section=False),
    Option("timeout", (int, float), minimum=0),
    Option("max_retries", (int,), minimum=0),
    Option("default_headers", (dict,)),
    # the vector length, for models that can shorten theirs (text-embedding-3-*): sent as the
    # API's `dimensions`; leave it unset for models that cannot (the API refuses it)
    Option("dimension", (int,), minimum=1),
    # texts per request (LangChain's chunk_size); some local servers take few at once
    Option("batch_size", (int,), minimum=1),
    # send token arrays, splitting texts longer than the model's context (LangChain's
    # default): tiktoken downloads its encodings from the internet on first use, and most
    # servers other than OpenAI's take only text, so it is off unless asked for or on OpenAI
    Option("check_embedding_ctx_length", (bool,)),
]


def openai_embeddings(
    options: Mapping[str, Any],
    *,
    base_url: str,
    api_key: str | None,
    azure: bool = False,
    tokens_by_default: bool = False,
    **extra: Any,
) -> Any:
    """Build ``OpenAIEmbeddings`` (or ``AzureOpenAIEmbeddings``), imported here on first use.

    Unless ``check_embedding_ctx_length`` is on (by default only where ``tokens_by_default``:
    OpenAI's own API), texts go as plain strings and vectors come back as JSON floats, which
    every OpenAI-compatible server understands and which needs no network beyond the server
    (no tiktoken download)."""
    kwargs: dict[str, Any] = {
        k: options[k]
        for k in ("timeout", "max_retries", "default_headers")
        if options.get(k) is not None
    }
    if options.get("dimension") is not None:
        kwargs["dimensions"] = options["dimension"]
    if options.get("batch_size") is not None:
        kwargs["chunk_size"] = options["batch_size"]
    tokens = options.get("check_embedding_ctx_length")
    if not (tokens_by_default if tokens is None else tokens):
        kwargs["check_embedding_ctx_length"] = False
        kwargs["model_kwargs"] = {"encoding_format": "float"}
    kwargs.update(extra)
    if azure:
        from langchain_openai import AzureOpenAIEmbeddings

        return AzureOpenAIEmbeddings(azure_endpoint=base_url, api_key=api_key, **kwargs)
    from langchain_openai import OpenAIEmbeddings

    # Servers on loopback ignore the key, but the SDK insists on one.
    return OpenAIEmbeddings(base_url=base_url, api_key=api_key or "not-needed", **kwargs)


def display_info(entry: ModelEntry, *keys: str) -> dict[str, Any]:
    """The entry's non-secret fields worth showing in ``models list``/``models show``."""
    return {k: entry.options[k] for k in keys if entry.options.get(k) not in (None, "")}


def settings_path(config: Any, value: str | os.PathLike[str]) -> Path:
    """A path from the settings, relative to the folder of the settings file in use (``~``
    expanded), the way the host reads ``storage.path``."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    root = config.get("ROOT_PATH_FOR_DYNACONF") or "."
    return (Path(root) / path).resolve()


# -- warming up (the gateway, at start-up) ---------------------------------------------------
#
# A model's first call does work its later calls do not: the SDK builds its response models
# (pydantic), LangChain imports its tracers and sets up its callback manager, the HTTP stack
# imports anyio's backend. ``warm_up_chat_models`` does that work at start-up, through
# throwaway copies of the models whose HTTP client answers from memory: nothing is sent.

_USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}


def _canned_reply(lib: Any, request: Any) -> Any:
    """What the in-memory transport answers: a chat completion (or its stream) of "ok"."""
    import json
    import time

    if not request.url.path.endswith("/chat/completions"):
        return lib.Response(404, json={"error": {"message": "not here", "type": "not_found"}})
    body = json.loads(request.content or b"{}")
    model, created = body.get("model") or "warm-up", int(time.time())
    if not body.get("stream"):
        message = {"role": "assistant", "content": "ok"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        completion = {"id": "chatcmpl-warm-up", "object": "chat.completion", "model": model}
        completion.update(created=created, choices=[choice], usage=_USAGE)
        return lib.Response(200, json=completion)
    head = {"id": "chatcmpl-warm-up", "object": "chat.completion.chunk", "created": created}
    head["model"] = model
    deltas = [({"role": "assistant", "content": ""}, None), ({"content": "ok"}, None)]
    events = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        for delta, finish in [*deltas, ({}, "stop")]
    ]
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**head, "choices": [], "usage": _USAGE})
    text = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
    return lib.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def offline_copy(model: Any) -> tuple[Any, Any] | None:
    """``(copy, client)``: a copy of ``model`` that is the same but for its HTTP client,
    ``client``, whose transport answers every request from memory. For ``OpenAIChatModel`` and
    LangChain's ``BaseChatOpenAI`` (``ChatOpenAI``, ``AzureChatOpenAI``); ``None`` for any
    other model, or one whose credentials would be fetched over the network (a key callback, a
    token provider, workload identity)."""
    import sys

    own = sys.modules.get("ai_assistant.openai_chat")
    if own is not None and isinstance(model, own.OpenAIChatModel):
        lib = own.httpx2
        own.prepare_transport()  # (what the in-memory one leaves for the first real request)
        client = lib.AsyncClient(transport=lib.MockTransport(lambda r: _canned_reply(lib, r)))
        return model.model_copy(update={"http_async_client": client}), client
    base = sys.modules.get("langchain_openai.chat_models.base")
    if base is None or not isinstance(model, base.BaseChatOpenAI):
        return None  # (langchain_openai not even imported: no model of its kind was built)
    root = getattr(model, "root_async_client", None)
    if root is None or not isinstance(getattr(root, "api_key", None), str):
        return None
    for fetches_credentials in ("_azure_ad_token_provider", "_workload_identity_auth"):
        if getattr(root, fetches_credentials, None) is not None:
            return None
    # the HTTP library the SDK is built on (httpx, or its successor httpx2)
    classes = type(getattr(root, "_client", None)).__mro__
    async_client = next((c for c in classes if c.__name__ == "AsyncClient"), None)
    if async_client is None:
        return None
    lib = sys.modules[async_client.__module__.partition(".")[0]]
    client = lib.AsyncClient(transport=lib.MockTransport(lambda r: _canned_reply(lib, r)))
    offline = root.with_options(http_client=client)
    copy = model.model_copy(
        update={
            "root_async_client": offline,
            "async_client": offline.chat.completions,
            "http_async_client": client,
        }
    )
    return copy, client


def ready_clients(models: list[Any]) -> None:
    """When any of ``models`` is an ``OpenAIChatModel``, make the HTTP client they share on
    the running event loop now, rather than on the first request (about 1 ms). Nothing is
    connected. Call it after ``warm_up_chat_models``, which imports what it needs and makes
    the TLS context; it never raises (the first request would make the client instead)."""
    import sys

    own = sys.modules.get("ai_assistant.openai_chat")
    if own is not None and any(isinstance(m, own.OpenAIChatModel) for m in models):
        with contextlib.suppress(Exception):
            own.ready_client()


async def _warm_up(model: Any) -> bool:
    """One call and one stream of ``model``'s offline copy (or of an offline LangChain model,
    for LangChain's own first-use work, when ``model`` is ``None``); whether it was warmed."""
    from langchain_core.messages import HumanMessage

    client = None
    if model is None:
        from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

        def fresh() -> Any:
            return GenericFakeChatModel(messages=iter(["ok"]))

        models = [fresh(), fresh()]
    else:
        made = offline_copy(model)
        if made is None:
            return False
        copy, client = made
        models = [copy, copy]
    try:
        messages = [HumanMessage("warm-up")]
        await models[0].ainvoke(messages)
        async for _chunk in models[1].astream(messages):
            pass
    finally:
        if client is not None:
            await client.aclose()
    return True


async def warm_up_chat_models(models: list[Any], timeout: float) -> dict[str, int]:
    """Warm up the providers of ``models`` (built LangChain chat models): one call and one
    stream through an offline copy of each kind of model (``offline_copy``), and LangChain's
    own first call; concurrently, for at most ``timeout`` seconds (what is left is cancelled).
    Nothing is sent anywhere, and no tracing is on meanwhile. How many were warmed, skipped
    (no offline copy), failed and timed out, as ``{"warmed": n, ...}``. What the warm-up's
    HTTP client logs (its thread's records) is dropped: it would read as calls to the models'
    servers."""
    counts = dict.fromkeys(("warmed", "skipped", "failed", "timed out"), 0)
    quiet = _QuietThread()  # ("HTTP Request: POST ..." would read as a call to the server)
    for name in _HTTP_LOGGERS:
        logging.getLogger(name).addFilter(quiet)
    try:
        await _warm_up_all(models, timeout, counts)
    finally:
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).removeFilter(quiet)
    return counts


_HTTP_LOGGERS = ("httpx", "httpx2", "openai", "openai._base_client")


class _QuietThread(logging.Filter):
    """Drops what one thread (the warm-up's) logs, whatever other threads log meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


async def _warm_up_all(models: list[Any], timeout: float, counts: dict[str, int]) -> None:
    import asyncio
    import importlib

    with contextlib.suppress(ImportError):  # what the HTTP stack imports on its first connection
        importlib.import_module("anyio._backends._asyncio")
    try:
        from langsmith.run_helpers import tracing_context
    except ImportError:  # pragma: no cover - langsmith comes with langchain_core
        tracing = contextlib.nullcontext()
    else:
        tracing = tracing_context(enabled=False)  # (LANGSMITH_TRACING must see nothing)
    kinds: dict[Any, Any] = {}  # one model of each kind: the work is per class, not per model
    for model in models:
        # but for one thing: LangChain serializes each model (for its callbacks) once, on its
        # first call, into a cached property
        with contextlib.suppress(Exception):
            if isinstance(getattr(type(model), "_serialized", None), functools.cached_property):
                model._serialized  # noqa: B018 - made here, kept on the model
        kinds.setdefault((type(model), bool(getattr(model, "stream_usage", False))), model)
    with tracing:
        tasks = [asyncio.ensure_future(_warm_up(m)) for m in [None, *kinds.values()]]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1)
    for task in tasks:
        if task in pending or task.cancelled():
            counts["timed out"] += 1
        elif task.exception() is not None:
            counts["failed"] += 1
        else:
            counts["warmed" if task.result() else "skipped"] += 1
