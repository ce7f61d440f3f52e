"""Registries of what plugins contribute, by kind (models, tools, callbacks; embeddings and
ingestors will use the same mechanism), each item attributed to the plugin that registered it.

An item holds a factory, not a client: nothing is built (and no provider SDK imported) until
first use, so listing thousands of models stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .config import env_var_name
from .errors import (
    AiAssistantError,
    ModelUnavailableError,
    UnknownItemError,
    UnknownModelError,
    close_matches,
)
from .masking import mask_tree, redact

READY = "ready"
MISSING_SECRET = "missing secret"

# OpenAI's rule for a function name, which every provider that calls tools accepts
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_NAME_RULE = "1 to 64 characters, each a letter, digit, '_' or '-'"


class Contribution:
    """One registered item: its id, owner, display info, and how to build it."""

    kind = "item"  # what users call it: "model", "tool", ...
    __slots__ = ("id", "plugin", "info", "missing_secrets", "_factory", "_instance")

    def __init__(
        self,
        id: str,
        plugin: str,
        factory: Callable[[], Any] | None = None,
        instance: Any = None,
        info: dict[str, Any] | None = None,
        missing_secrets: Iterable[str] = (),
    ) -> None:
        self.id = id
        self.plugin = plugin
        self.info = info or {}
        self.missing_secrets = tuple(missing_secrets)
        self._factory = factory
        self._instance = instance

    @property
    def status(self) -> str:
        return MISSING_SECRET if self.missing_secrets else READY

    @property
    def built(self) -> bool:
        return self._instance is not None

    def fix_hint(self) -> str | None:
        """How to make an item with a missing secret usable."""
        if not self.missing_secrets:
            return None
        key = self.missing_secrets[0]
        return f"run `ai-assistant secrets set {key}`, or export {env_var_name(key)}"

    def get(self) -> Any:
        """The item itself, built on first call and cached."""
        if self._instance is None:
            if self.missing_secrets:
                raise ModelUnavailableError(
                    f"{self.kind} {self.id!r} needs {', '.join(self.missing_secrets)}, "
                    "which is not set",
                    hint=self.fix_hint(),
                )
            assert self._factory is not None
            try:
                self._instance = self._factory()
            except Exception as exc:
                raise ModelUnavailableError(
                    f"{self.kind} {self.id!r} (plugin {self.plugin!r}) could not be built: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return self._instance

    def describe(self) -> dict[str, Any]:
        """What ``list``/``show`` commands print: never a secret, never a client."""
        out: dict[str, Any] = {"id": self.id, "plugin": self.plugin, "status": self.status}
        out.update(self.info)
        if self.missing_secrets:
            out["missing"] = list(self.missing_secrets)
            out["fix"] = self.fix_hint()
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, plugin={self.plugin!r})"


class Model(Contribution):
    """One registered chat model; ``get()`` gives the LangChain chat model."""

    kind = "model"
    __slots__ = ()


class Callback(Contribution):
    """One registered callback: a LangChain callback handler, or a factory that makes one for a
    turn from the turn's metadata (model id, conversation id, user, surface)."""

    kind = "callback"
    __slots__ = ()

    def handler_for(self, metadata: dict[str, Any]) -> Any:
        if self._instance is not None:
            return self._instance
        assert self._factory is not None
        return self._factory(metadata)


class Tool(Contribution):
    """One registered tool; ``get()`` gives the LangChain ``BaseTool`` (a plain function is
    turned into one on first use). ``info`` holds its ``description`` and, if given, its
    ``timeout`` in seconds."""

    kind = "tool"
    __slots__ = ()

    @property
    def description(self) -> str:
        return str(self.info.get("description") or "")

    @property
    def timeout(self) -> float | None:
        timeout = self.info.get("timeout")
        return float(timeout) if timeout is not None else None


class Embeddings(Contribution):
    """One registered embeddings model; ``get()`` gives the LangChain ``Embeddings``."""

    kind = "embeddings model"
    __slots__ = ()


class Ingestor(Contribution):
    """One registered ingestor; ``get()`` gives its ``ingest(source)`` callable."""

    kind = "ingestor"
    __slots__ = ()


class VectorStoreKind(Contribution):
    """One registered vector store; ``info["schemes"]`` are the URL schemes it opens, and
    ``open(url)`` gives a ``VectorStore``."""

    kind = "vector store"
    __slots__ = ()

    @property
    def schemes(self) -> tuple[str, ...]:
        return tuple(self.info.get("schemes") or ())

    @property
    def is_default(self) -> bool:
        return bool(self.info.get("default"))

    def open(self, url: str) -> Any:
        opener = self.get()
        try:
            return opener(url)
        except AiAssistantError:
            raise
        except Exception as exc:
            raise ModelUnavailableError(
                f"vector store {self.id!r} (plugin {self.plugin!r}) could not open "
                f"{redact(url)}: {type(exc).__name__}: {redact(str(exc))}"
            ) from exc


class Registry:
    """Every registered item of one kind, by id. Plugins see it through a ``PluginRegistry``."""

    def __init__(
        self,
        kind: str,
        item_class: type[Contribution] = Contribution,
        mask: Callable[[Any], Any] = mask_tree,
        unknown_error: type[UnknownItemError] = UnknownItemError,
        view_class: type[PluginRegistry] | None = None,
    ) -> None:
        self.kind = kind  # "model", "tool", ...
        self.item_class = item_class
        self.view_class = view_class or PluginRegistry
        # makes an item's display info safe to show: secrets (nested too) and URL credentials
        self.mask = mask
        self._unknown_error = unknown_error
        self._items: dict[str, Contribution] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items.values())

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._items)} {self.kind}s)"

    def ids(self) -> list[str]:
        return list(self._items)

    def add(self, item: Contribution) -> Contribution | None:
        """Add ``item``; returns the item already holding its id (and adds nothing) if any."""
        existing = self._items.get(item.id)
        if existing is None:
            self._items[item.id] = item
        return existing

    def remove_plugin(self, plugin: str) -> None:
        """Withdraw every item a plugin registered (used when that plugin fails)."""
        self._items = {k: m for k, m in self._items.items() if m.plugin != plugin}

    def by_plugin(self, plugin: str) -> list[Contribution]:
        return [item for item in self._items.values() if item.plugin == plugin]

    def get(self, item_id: str) -> Any:
        """The item registered as ``item_id``; an error suggesting close ids if there is none."""
        try:
            return self._items[item_id]
        except KeyError:
            raise self._unknown_error(
                f"unknown {self.kind} {item_id!r}", hint=self.suggest(item_id)
            ) from None

    def suggest(self, item_id: str) -> str:
        close = close_matches(item_id, self._items, n=3)
        if close:
            return "did you mean " + ", ".join(repr(c) for c in close) + "?"
        if not self._items:
            return f"no {self.kind}s are registered: configure a provider section in settings.toml"
        return f"run `ai-assistant {self.kind}s list` to see the registered ids"

    def for_plugin(self, plugin: str) -> PluginRegistry:
        return self.view_class(self, plugin)


class ModelRegistry(Registry):
    """The chat models, by id."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__("model", Model, mask, UnknownModelError)


class ToolRegistry(Registry):
    """The tools chats may offer, by name (plugins' tools and MCP servers' tools alike)."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__("tool", Tool, mask, view_class=PluginToolRegistry)

    def suggest(self, item_id: str) -> str:
        close = close_matches(item_id, self.ids(), n=3)
        if close:
            return "did you mean " + ", ".join(repr(c) for c in close) + "?"
        return "run `ai-assistant tools list` to see the registered tools"

    def matching(self, patterns: Iterable[str]) -> list[Tool]:
        """The tools whose names match any of ``patterns`` (shell-style: ``files_*``, ``*``),
        in registration order."""
        import fnmatch

        patterns = [p for p in patterns if p]
        return [t for t in self if any(fnmatch.fnmatchcase(t.id, p) for p in patterns)]


class EmbeddingsRegistry(Registry):
    """The embeddings models knowledge sources may use, by id."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__("embeddings model", Embeddings, mask)

    def suggest(self, item_id: str) -> str:
        close = close_matches(item_id, self.ids(), n=3)
        if close:
            return "did you mean " + ", ".join(repr(c) for c in close) + "?"
        return "run `ai-assistant embeddings list` to see the registered embeddings models"


class IngestorRegistry(Registry):
    """The ingestors knowledge sources may name (``ingestor = "files"``), by id."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__("ingestor", Ingestor, mask, view_class=PluginIngestorRegistry)

    def suggest(self, item_id: str) -> str:
        close = close_matches(item_id, self.ids(), n=3)
        known = ", ".join(repr(i) for i in self.ids()) or "none"
        if close:
            return "did you mean " + ", ".join(repr(c) for c in close) + "?"
        return f"the registered ingestors are: {known}"


class VectorStoreRegistry(Registry):
    """The vector stores knowledge may use, by id; ``for_url`` picks one by URL scheme."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__(
            "vector store", VectorStoreKind, mask, view_class=PluginVectorStoreRegistry
        )

    def for_url(self, url: str | None) -> VectorStoreKind:
        """The store that opens ``url``: by its scheme (``postgresql://``), or the default
        store for a file path or no URL at all."""
        from .errors import ConfigError

        scheme = ""
        if url and "://" in url:
            scheme = url.split("://", 1)[0].lower()
        for store in self:
            if scheme and scheme in store.schemes:
                return store
            if not scheme and store.is_default:
                return store
        known = sorted({s for store in self for s in store.schemes})
        if scheme:
            raise ConfigError(
                f"knowledge.store: no vector store opens {scheme}:// URLs",
                hint="the registered stores take: "
                + (", ".join(f"{s}://" for s in known) or "none")
                + "; a plain file path uses the embedded store",
            )
        raise ConfigError(
            "knowledge.store: no default vector store is registered",
            hint="enable the bundled vector_stores plugin, or set knowledge.store to a URL",
        )


class CallbackRegistry(Registry):
    """The callback handlers every turn gets, by id."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        super().__init__("callback", Callback, mask, view_class=PluginCallbackRegistry)

    def handlers(
        self, metadata: dict[str, Any], on_problem: Callable[[str], None] | None = None
    ) -> list[Any]:
        """A handler from each callback for one turn; a factory that fails is skipped (and
        reported to ``on_problem``) so that it never stops the turn."""
        handlers = []
        for callback in self:
            try:
                handlers.append(callback.handler_for(metadata))
            except Exception as exc:  # noqa: BLE001 - a broken callback never stops a reply
                if on_problem is not None:
                    on_problem(
                        f"callback {callback.id!r} (plugin {callback.plugin!r}) was skipped: "
                        f"{type(exc).__name__}: {exc}"
                    )
        return handlers


class PluginRegistry:
    """A registry as one plugin sees it: everything it registers is attributed to it."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin
        self.problems: list[str] = []

    def __repr__(self) -> str:
        return f"PluginRegistry(kind={self._registry.kind!r}, plugin={self.plugin!r})"

    def _check_id(self, id: object) -> None:
        """An id is a non-empty string: anything else is the plugin's bug (it fails, named)."""
        if not isinstance(id, str) or not id.strip():
            raise ValueError(
                f"registry.register(): {self._registry.kind} id must be a non-empty string, "
                f"not {id!r}"
            )

    def report(self, problem: str) -> None:
        """Record a non-fatal problem against this plugin (shown by ``plugins list``)."""
        self.problems.append(problem)

    def register(
        self,
        id: str,
        *,
        factory: Callable[[], Any] | None = None,
        model: Any = None,
        missing_secrets: Iterable[str] = (),
        **info: Any,
    ) -> Contribution | None:
        """Register an item under ``id``; see ``hookspecs.register_models``.

        Returns the item, or ``None`` when the id was already taken (the problem is recorded
        against this plugin and shown by ``plugins list``; nothing is raised so the plugin's
        other items still register).
        """
        self._check_id(id)
        if (factory is None) == (model is None):
            raise ValueError(f"registry.register({id!r}): give exactly one of factory= or model=")
        if factory is not None and not callable(factory):
            raise ValueError(f"registry.register({id!r}): factory must be a callable")
        return self._add(id, factory, model, missing_secrets, info)

    def _add(
        self,
        id: str,
        factory: Callable[..., Any] | None,
        instance: Any,
        missing_secrets: Iterable[str],
        info: dict[str, Any],
    ) -> Contribution | None:
        """Add one item attributed to this plugin; a taken id is reported, not raised."""
        kind = self._registry.kind
        entry = self._registry.item_class(
            id,
            self.plugin,
            factory=factory,
            instance=instance,
            info=self._registry.mask(info),
            missing_secrets=missing_secrets,
        )
        existing = self._registry.add(entry)
        if existing is None:
            return entry
        if existing.plugin == self.plugin:
            self.report(f"{kind} id {id!r} registered twice; the first one is kept")
        else:
            self.report(
                f"{kind} id {id!r} is already registered by plugin {existing.plugin!r}; "
                f"kept {existing.plugin!r}'s (give one of them another id)"
            )
        return None


class PluginCallbackRegistry(PluginRegistry):
    """The callback registry as one plugin sees it."""

    def register(  # type: ignore[override]
        self,
        id: str,
        handler: Any = None,
        *,
        factory: Callable[[dict[str, Any]], Any] | None = None,
        **info: Any,
    ) -> Contribution | None:
        """Register a LangChain callback handler under ``id``, or a ``factory(metadata)`` that
        makes one for each turn; see ``hookspecs.register_callbacks``."""
        self._check_id(id)
        if (factory is None) == (handler is None):
            raise ValueError(f"registry.register({id!r}): give exactly one of handler or factory=")
        if factory is not None and not callable(factory):
            raise ValueError(f"registry.register({id!r}): factory must be a callable")
        return self._add(id, factory, handler, (), info)


def _describe_function(function: Callable[..., Any]) -> str:
    doc = (getattr(function, "__doc__", None) or "").strip()
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip()


class PluginToolRegistry(PluginRegistry):
    """The tool registry as one plugin sees it."""

    def register(  # type: ignore[override]
        self,
        tool: Any,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        artifact: bool = False,
        **info: Any,
    ) -> Contribution | None:
        """Register a LangChain ``BaseTool``, or a plain typed function (turned into one with
        LangChain's ``tool`` on first use); see ``hookspecs.register_tools``. A name that does
        not fit the rule, or is taken, is reported against this plugin (nothing raised). With
        ``artifact``, the function returns ``(text for the model, artifact)``; an artifact
        ``{"sources": [...]}`` becomes the reply's cited sources."""
        is_base_tool = hasattr(tool, "ainvoke") and hasattr(tool, "args_schema")
        if not is_base_tool and not callable(tool):
            raise ValueError(
                f"registry.register(): a tool is a LangChain BaseTool or a function, not {tool!r}"
            )
        name = name or getattr(tool, "name", None) or getattr(tool, "__name__", None)
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            self.report(f"tool name {name!r} is refused: a tool name is {TOOL_NAME_RULE}")
            return None
        if description is None:
            description = (
                str(getattr(tool, "description", "") or "")
                if is_base_tool
                else _describe_function(tool)
            )
        info = {"description": description, **info}
        if timeout is not None:
            info["timeout"] = timeout
        if is_base_tool:
            return self._add(name, None, tool, (), info)

        def build() -> Any:
            from langchain_core.tools import tool as make_tool

            return make_tool(  # type: ignore[call-overload]
                name,
                description=description or name,
                response_format="content_and_artifact" if artifact else "content",
            )(tool)

        return self._add(name, build, None, (), info)


class PluginIngestorRegistry(PluginRegistry):
    """The ingestor registry as one plugin sees it."""

    def register(  # type: ignore[override]
        self, id: str, ingest: Callable[[Any], Any], **info: Any
    ) -> Contribution | None:
        """Register ``ingest(source)`` under ``id``; see ``hookspecs.register_ingestors``."""
        self._check_id(id)
        if not callable(ingest):
            raise ValueError(f"registry.register({id!r}): ingest must be a callable")
        return self._add(id, None, ingest, (), info)


class PluginVectorStoreRegistry(PluginRegistry):
    """The vector store registry as one plugin sees it."""

    def register(  # type: ignore[override]
        self,
        id: str,
        open: Callable[[str], Any],
        *,
        schemes: Iterable[str] = (),
        default: bool = False,
        **info: Any,
    ) -> Contribution | None:
        """Register ``open(url)`` under ``id``; see ``hookspecs.register_vector_stores``."""
        self._check_id(id)
        if not callable(open):
            raise ValueError(f"registry.register({id!r}): open must be a callable")
        schemes = [str(s).lower().removesuffix("://") for s in schemes]
        return self._add(id, None, open, (), {"schemes": schemes, "default": bool(default), **info})
