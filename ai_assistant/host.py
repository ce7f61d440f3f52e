"""The host: settings, plugins and the model registry, loaded together once per process."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import PluginError
from .plugins import Plugins
from .registry import ModelRegistry


class Host:
    """Settings, plugins and registry of one process; ``load_host`` builds it."""

    def __init__(
        self, config: Config, plugins: Plugins, registry: ModelRegistry, strict: bool = False
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.registry = registry
        self.strict = strict

    def __repr__(self) -> str:
        return f"Host({self.registry!r}, strict={self.strict})"

    def get_model(self, model_id: str) -> Any:
        """The LangChain chat model registered as ``model_id`` (built on first use)."""
        return self.registry.get(model_id).get()

    def check_strict(self) -> None:
        """In strict mode, any plugin failure or problem is an error."""
        if self.strict and self.plugins.messages():
            raise PluginError(
                "strict mode: plugin problems:\n"
                + "\n".join(f"  {line}" for line in self.plugins.messages()),
                hint="fix or disable the plugins above, or turn off --strict/plugins.strict",
            )


def load_host(
    settings: str | os.PathLike[str] | None = None,
    env: str | None = None,
    plugins_dirs: Iterable[str | os.PathLike[str]] = (),
    strict: bool | None = None,
    cwd: Path | None = None,
    check_settings: bool = True,
    config: Config | None = None,
) -> Host:
    """Load settings (unless a loaded ``config`` is given), import the enabled plugins and
    register their models.

    Plugin failures are recorded on ``host.plugins`` (and raised only when ``strict``);
    a settings problem raises ``ConfigError``.
    """
    if config is None:
        config = load_config(settings, env=env, cwd=cwd, check=check_settings)
    plugins = Plugins(config, extra_dirs=[Path(d) for d in plugins_dirs])
    plugins.load()
    registry = ModelRegistry(mask=config.mask)
    plugins.register("register_models", registry)
    return Host(config, plugins, registry, strict=config.strict if strict is None else strict)
