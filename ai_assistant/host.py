"""The host: settings, plugins and the model registry, loaded together once per process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import PluginError
from .plugins import Plugins
from .registry import (
    CallbackRegistry,
    EmbeddingsRegistry,
    IngestorRegistry,
    ModelRegistry,
    ToolRegistry,
    VectorStoreRegistry,
)

WARM_UP_SECONDS = 2.0  # the most a gateway's start-up waits for its models to warm up (~50 ms)


class Host:
    """Settings, plugins and registry of one process; ``load_host`` builds it."""

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        registry: ModelRegistry,
        strict: bool = False,
        callbacks: CallbackRegistry | None = None,
        tools: ToolRegistry | None = None,
        embeddings: EmbeddingsRegistry | None = None,
        ingestors: IngestorRegistry | None = None,
        vector_stores: VectorStoreRegistry | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.registry = registry  # the chat models
        self.callbacks = callbacks if callbacks is not None else CallbackRegistry(config.mask)
        self.tools = tools if tools is not None else ToolRegistry(config.mask)
        self.embeddings = embeddings if embeddings is not None else EmbeddingsRegistry(config.mask)
        self.ingestors = ingestors if ingestors is not None else IngestorRegistry(config.mask)
        self.vector_stores = (
            vector_stores if vector_stores is not None else VectorStoreRegistry(config.mask)
        )
        self.strict = strict

        self.started = False
        self._started: list[str] = []  # plugins whose startup succeeded, in start order
        self._loop_thread: Any = None  # the loop start_blocking started the host on
        self.mcp: Any = None  # the MCP servers (tools.mcp.MCPServers), once start_tools ran
        self.knowledge: Any = None  # knowledge.search.Knowledge, made on first search

    def __repr__(self) -> str:
        return f"Host({self.registry!r}, strict={self.strict})"

    @property
    def registries(self) -> dict[str, Any]:
        """Every registry, by the hook that fills it."""
        return {
            "register_models": self.registry,
            "register_embeddings": self.embeddings,
            "register_tools": self.tools,
            "register_ingestors": self.ingestors,
            "register_vector_stores": self.vector_stores,
            "register_callbacks": self.callbacks,
        }

    def contributions(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered, by kind (``{"models": [...], "tools": [...]}``), kinds
        it registered nothing of left out (``plugins list``)."""
        out: dict[str, list[str]] = {}
        for hook, registry in self.registries.items():
            ids = [item.id for item in registry.by_plugin(plugin)]
            if ids:
                out[hook.removeprefix("register_")] = ids
        return out

    def withdraw_failed(self) -> None:
        """Withdraw whatever a failed plugin registered, of every kind (a plugin that fails in
        one hook is withdrawn whole)."""
        for info in self.plugins.report:
            if info.status == "failed":
                for registry in self.registries.values():
                    registry.remove_plugin(info.name)

    @property
    def has_lifecycle(self) -> bool:
        """Does any plugin take part in start and stop? (If not, starting costs nothing.)"""
        hooks = self.plugins.pm.hook
        return bool(hooks.startup.get_hookimpls() or hooks.shutdown.get_hookimpls())

    async def start(self, build_models: bool = False) -> None:
        """Run the plugins' ``startup`` hooks, one plugin at a time; a plugin that fails is
        withdrawn. With ``build_models`` (the gateway), build every ready model now, in a
        thread, so the first request costs what the second does."""
        if self.started:
            return
        self.started = True
        config = {"config": self.config.settings}
        self._started = await self.plugins.acall_each("startup", lambda _: config)
        self.withdraw_failed()
        if build_models:
            import asyncio

            await self.start_tools()
            models = await asyncio.to_thread(self._build_ready_models)
            await self.warm_up(models)

    @property
    def has_mcp_servers(self) -> bool:
        return bool(self.config.value("mcp.servers"))

    async def start_tools(self) -> None:
        """Connect to the MCP servers in settings (once) and register their tools; held until
        ``stop``. Only what offers tools calls this, so a chat without tools (or ``models
        list``) starts no server and imports no MCP. A server that fails is reported on
        ``plugins`` (and in ``mcp.problems``); the other tools are unaffected."""
        if self.mcp is not None or not self.has_mcp_servers:
            return
        from .tools.mcp import MCPServers

        self.mcp = MCPServers(self)
        await self.mcp.start()

    def start_tools_blocking(self) -> list[str]:
        """``start_tools`` from synchronous code, on the background loop; the problems it met."""
        if self.mcp is None and self.has_mcp_servers:
            import asyncio

            from .loop import background_loop

            loop = self._loop_thread = background_loop()
            asyncio.run_coroutine_threadsafe(self.start_tools(), loop).result()
        return list(self.mcp.problems) if self.mcp is not None else []

    def _build_ready_models(self) -> list[Any]:
        """Every ready model, built (those that fail are left out: reported on use)."""
        built = []
        for model in self.registry:
            if model.status == "ready":
                try:
                    built.append(model.get())
                except Exception:  # noqa: BLE001 - reported when the model is asked for
                    continue
        return built

    async def warm_up(self, models: list[Any], timeout: float | None = None) -> dict[str, int]:
        """Do the first-use work of ``models``' providers now (``provider_kit.
        warm_up_chat_models``: offline copies of the models, so nothing is sent anywhere), so
        the first request costs what the second does. It runs on a thread of its own, with
        its own event loop: this loop is not blocked, and a warm-up that hangs is left behind
        after ``timeout`` (default ``WARM_UP_SECONDS``), cancelled there; it never raises.
        How many were warmed, skipped, failed and timed out (empty if it timed out)."""
        import asyncio
        import logging
        import threading

        timeout = WARM_UP_SECONDS if timeout is None else timeout
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[dict[str, int]] = loop.create_future()

        def settle(counts: dict[str, int]) -> None:
            if not finished.done():
                finished.set_result(counts)

        def run() -> None:
            counts: dict[str, int] = {}
            try:
                from .provider_kit import warm_up_chat_models

                counts = asyncio.run(warm_up_chat_models(models, timeout))
            except BaseException as exc:  # noqa: BLE001 - a warm-up never stops a start-up
                logging.getLogger("ai_assistant").debug("warm-up failed: %r", exc)
            with contextlib.suppress(RuntimeError):  # (the loop has closed meanwhile)
                loop.call_soon_threadsafe(settle, counts)

        # a daemon: a warm-up stuck in blocking code never holds the process at exit
        threading.Thread(target=run, name="ai-assistant warm-up", daemon=True).start()
        try:
            # (its own deadline, plus a little for the cancelled warm-ups to end)
            counts = await asyncio.wait_for(asyncio.shield(finished), timeout + 1)
        except TimeoutError:
            logging.getLogger("ai_assistant").info(
                "warming up the models took over %g s: left to finish in the background",
                timeout,
            )
            return {}
        from .provider_kit import ready_clients

        ready_clients(models)  # (for this loop, which the warm-up's thread could not do)
        return counts

    async def stop(self) -> None:
        """Close the MCP sessions and the knowledge store; run the plugins' ``shutdown`` hooks
        in the reverse order of start-up."""
        if self.knowledge is not None:
            import asyncio

            knowledge, self.knowledge = self.knowledge, None
            await asyncio.to_thread(knowledge.close)
        if self.mcp is not None:
            mcp, self.mcp = self.mcp, None
            await mcp.stop()
            for server in mcp.servers.values():
                self.tools.remove_plugin(server.source)
        if not self.started:
            return
        self.started = False
        config = {"config": self.config.settings}
        # the reverse of start-up; plugins with no startup hook after those
        await self.plugins.acall_each("shutdown", lambda _: config, first=self._started[::-1])

    def start_blocking(self) -> None:
        """``start`` from synchronous code (the CLI), on the process's background event loop
        (``ai_assistant.loop``), where chat turns run too: what plugins open at start-up stays
        usable from that loop for the whole command."""
        if self.started or not self.has_lifecycle:
            return
        import asyncio

        from .loop import background_loop

        loop = background_loop()
        self._loop_thread = loop
        asyncio.run_coroutine_threadsafe(self.start(), loop).result()

    def stop_blocking(self) -> None:
        if self._loop_thread is None:
            return
        import asyncio

        loop, self._loop_thread = self._loop_thread, None
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result()

    async def __aenter__(self) -> Host:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

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
    strict = config.strict if strict is None else strict
    host = Host(config, plugins, ModelRegistry(mask=config.mask), strict=strict)
    for hook, registry in host.registries.items():
        plugins.register(hook, registry)
    host.withdraw_failed()
    if config.get("knowledge.sources"):
        from .knowledge.tool import register as register_knowledge_tool

        register_knowledge_tool(host)
    return host
