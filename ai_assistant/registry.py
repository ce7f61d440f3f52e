"""The model registry: chat models by id, each attributed to the plugin that registered it.

A model holds a factory, not a client: nothing is built (and no provider SDK imported) until
first use, so listing thousands of models stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .config import env_var_name
from .errors import ModelUnavailableError, UnknownModelError, close_matches
from .masking import mask_tree

READY = "ready"
MISSING_SECRET = "missing secret"


class Model:
    """One registered chat model: its id, owner, display info, and how to build it."""

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

    def fix_hint(self) -> str | None:
        """How to make a model with a missing secret usable."""
        if not self.missing_secrets:
            return None
        key = self.missing_secrets[0]
        *section, leaf = key.split(".")
        table = "default." + ".".join(section)
        return f"set {leaf} under [{table}] in .secrets.toml, or export {env_var_name(key)}"

    def get(self) -> Any:
        """The LangChain chat model, built on first call and cached."""
        if self._instance is None:
            if self.missing_secrets:
                raise ModelUnavailableError(
                    f"model {self.id!r} needs {', '.join(self.missing_secrets)}, which is not set",
                    hint=self.fix_hint(),
                )
            assert self._factory is not None
            try:
                self._instance = self._factory()
            except Exception as exc:
                raise ModelUnavailableError(
                    f"model {self.id!r} (plugin {self.plugin!r}) could not be built: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return self._instance

    def describe(self) -> dict[str, Any]:
        """What ``models list``/``models show`` print: never a secret, never a client."""
        out: dict[str, Any] = {"id": self.id, "plugin": self.plugin, "status": self.status}
        out.update(self.info)
        if self.missing_secrets:
            out["missing"] = list(self.missing_secrets)
            out["fix"] = self.fix_hint()
        return out

    def __repr__(self) -> str:
        return f"Model(id={self.id!r}, plugin={self.plugin!r}, status={self.status!r})"


class ModelRegistry:
    """All registered models, by id. Plugins see it through a ``PluginRegistry``."""

    def __init__(self, mask: Callable[[Any], Any] = mask_tree) -> None:
        self._models: dict[str, Model] = {}
        # makes a model's display info safe to show: secrets (nested too) and URL credentials
        self.mask = mask

    def __len__(self) -> int:
        return len(self._models)

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def __repr__(self) -> str:
        return f"ModelRegistry({len(self._models)} models)"

    def ids(self) -> list[str]:
        return list(self._models)

    def add(self, model: Model) -> Model | None:
        """Add ``model``; returns the model already holding its id (and adds nothing) if any."""
        existing = self._models.get(model.id)
        if existing is None:
            self._models[model.id] = model
        return existing

    def remove_plugin(self, plugin: str) -> None:
        """Withdraw every model a plugin registered (used when that plugin fails)."""
        self._models = {k: m for k, m in self._models.items() if m.plugin != plugin}

    def get(self, model_id: str) -> Model:
        """The model registered as ``model_id``; an error suggesting close ids if there is none."""
        try:
            return self._models[model_id]
        except KeyError:
            raise UnknownModelError(
                f"unknown model {model_id!r}", hint=self.suggest(model_id)
            ) from None

    def suggest(self, model_id: str) -> str:
        close = close_matches(model_id, self._models, n=3)
        if close:
            return "did you mean " + ", ".join(repr(c) for c in close) + "?"
        if not self._models:
            return "no models are registered: configure a provider section in settings.toml"
        return "run `ai-assistant models list` to see the registered ids"

    def for_plugin(self, plugin: str) -> PluginRegistry:
        return PluginRegistry(self, plugin)


class PluginRegistry:
    """The registry as one plugin sees it: everything it registers is attributed to it."""

    def __init__(self, registry: ModelRegistry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin
        self.problems: list[str] = []

    def __repr__(self) -> str:
        return f"PluginRegistry(plugin={self.plugin!r})"

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
    ) -> Model | None:
        """Register a chat model under ``id``; see ``hookspecs.register_models``.

        Returns the ``Model``, or ``None`` when the id was already taken (the problem is
        recorded against this plugin and shown by ``plugins list``; nothing is raised so the
        plugin's other models still register).
        """
        if not isinstance(id, str) or not id.strip():
            raise ValueError(
                f"registry.register(): model id must be a non-empty string, not {id!r}"
            )
        if (factory is None) == (model is None):
            raise ValueError(f"registry.register({id!r}): give exactly one of factory= or model=")
        if factory is not None and not callable(factory):
            raise ValueError(f"registry.register({id!r}): factory must be a callable")
        safe_info = self._registry.mask(info)
        entry = Model(
            id,
            self.plugin,
            factory=factory,
            instance=model,
            info=safe_info,
            missing_secrets=missing_secrets,
        )
        existing = self._registry.add(entry)
        if existing is None:
            return entry
        if existing.plugin == self.plugin:
            self.report(f"model id {id!r} registered twice; the first one is kept")
        else:
            self.report(
                f"model id {id!r} is already registered by plugin {existing.plugin!r}; "
                f"kept {existing.plugin!r}'s (give one of them another id)"
            )
        return None
