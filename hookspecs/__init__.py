"""The plugin contract: every hook a plugin may implement, documented for plugin authors.

A plugin is a Python module (a file in a plugins directory, a package folder, or an installed
distribution with an entry point in the ``ai_assistant`` group) whose functions are marked with
``ai_assistant.hookimpl``::

    from ai_assistant import hookimpl

    @hookimpl
    def register_models(config, registry):
        section = config.get("models.my_provider") or {}
        for m in section.get("models", []):
            registry.register(
                m["model_name"], factory=lambda m=m: build(m), endpoint=m["endpoint"]
            )

Rules that hold for every hook:

- An implementation may take any subset of a hook's arguments, by name. An argument the hook
  does not define makes the plugin fail to load, with that argument named.
- A marked function whose name is not a hook below (``register_model``) makes the plugin fail to
  load, with the closest hook name suggested. A function marked with another project's marker is
  ignored by pluggy, so the host reports an unmarked ``register_models`` too.
- Each plugin's implementation is called on its own: an exception fails that plugin only, and is
  shown by ``ai-assistant plugins list`` with a one-line reason. Everything else keeps working.
- Once published, a hook's arguments may be added to, never renamed or removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Iterable

    import click

    from ai_assistant.registry import PluginRegistry

PROJECT_NAME = "ai_assistant"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_models(config: Any, registry: PluginRegistry) -> None:
    """Register this plugin's chat models.

    Called once per plugin when the host starts, after configuration is loaded.

    :param config: the whole settings object (Dynaconf). Read your own section, by convention
        ``config.get("models.<plugin name>")``; keys are case-insensitive. It may be absent: then
        register nothing.
    :param registry: the host's model registry, bound to this plugin so every model is
        attributed to it. Call ``registry.register(id, *, factory=None, model=None,
        missing_secrets=(), **info)`` once per model:

        - ``id``: what users type (``ai-assistant chat -m ID``). An id another plugin already
          registered is refused (the first stays) and reported against this plugin; your other
          models still register.
        - ``factory``: a zero-argument callable returning a LangChain ``BaseChatModel``. It is
          called on first use and its result cached, so import your SDK *inside* it: listing
          models must never import ``langchain_openai``. Or ``model``: a ready instance.
          Exactly one of the two.
        - ``missing_secrets``: key paths of secrets this model needs that are not set (for
          example ``["models.my_provider.api_key"]``). The model is still listed, with status
          ``missing secret``, and using it raises an error saying where to set the key.
        - ``info``: display fields shown by ``models list``/``models show`` (``model_name``,
          ``endpoint``, ...). Never a secret.

    Return value: ignored.
    """


@hookspec
def register_tools(config: Any, registry: PluginRegistry) -> None:
    """Register tools that chats may offer to models.

    Called once per plugin when the host starts, like ``register_models``. Call
    ``registry.register(tool, *, name=None, description=None, timeout=None)`` once per tool:

    - ``tool``: a LangChain ``BaseTool`` (``@tool``-decorated, a ``StructuredTool``, your own
      subclass), or a plain function with type hints and a docstring, which LangChain's
      ``tool`` turns into one on first use (so registering it imports nothing). A function may
      be ``async def``; a plain one runs in a thread, so it may block.
    - ``name``: defaults to the tool's own name (a function's ``__name__``). It must match
      ``^[a-zA-Z0-9_-]{1,64}$`` (OpenAI's rule: no dots or spaces); another name is refused and
      reported against this plugin. A name another plugin (or an MCP server, ``mcp:<server>``)
      already registered is refused too, naming both; your other tools still register.
    - ``description``: what the model is told the tool does (default: the tool's description,
      or the first paragraph of the function's docstring).
    - ``timeout``: seconds one call may take (default ``tools.timeout``; ``tools.timeouts``
      in settings overrides both). A call that times out or raises is not an error for the
      chat: the model gets a result saying what went wrong.

    A chat offers only the tools its settings or flags name (``chat.tools``, ``-T``), and asks
    before running those matching ``tools.require_approval``. Import heavy libraries inside
    the tool, never at the top of the plugin file. Return value: ignored.
    """


@hookspec
def register_embeddings(config: Any, registry: PluginRegistry) -> None:
    """Register embeddings models (LangChain ``Embeddings``) that knowledge sources may use.

    Called once per plugin when the host starts, exactly like ``register_models``: call
    ``registry.register(id, *, factory=None, model=None, missing_secrets=(), **info)`` once
    per model. ``factory`` returns a ``langchain_core.embeddings.Embeddings`` on first use
    (import your SDK inside it); ``info`` is shown by ``ai-assistant embeddings list`` (give
    ``dimension=`` when you know it). By convention a provider reads
    ``config.get("embeddings.<plugin name>")``, shaped like its ``models`` section. Knowledge
    sources name the id in ``knowledge.embeddings`` (or a source's own ``embeddings``).
    Return value: ignored.
    """


@hookspec
def register_ingestors(config: Any, registry: PluginRegistry) -> None:
    """Register ingestors: what reads a knowledge source's documents.

    Called once per plugin when the host starts. Call ``registry.register(id, ingest, **info)``
    where ``ingest(source)`` returns (or yields) ``ai_assistant.knowledge.Document`` objects:
    ``id`` (unique in the source: a relative path, a URL, an entity ref), ``content`` (text),
    and ``metadata`` (``path`` or ``url``, ``title``, ``updated`` as ISO 8601, anything else
    worth filtering on). ``source`` is an ``ai_assistant.knowledge.IngestSource``: its
    ``name``, its settings table ``options`` (``[default.knowledge.sources.<name>]``), the
    folder relative paths are taken from (``root``), and ``skip(what, why)`` /
    ``warn(what, why)`` to report a document left out or read imperfectly.

    Yield every document the source has, each time: the host compares content hashes, embeds
    only what changed, and deletes what you no longer yield (so an ingestor that fails part-way
    deletes nothing). A source names its ingestor with ``ingestor = "<id>"``. Return value:
    ignored.
    """


@hookspec
def register_vector_stores(config: Any, registry: PluginRegistry) -> None:
    """Register vector stores: where knowledge chunks and their vectors are kept.

    Called once per plugin when the host starts. Call ``registry.register(id, open, *,
    schemes=(...), default=False, **info)`` where ``open(url)`` returns an
    ``ai_assistant.storage.vectors.base.VectorStore`` for ``knowledge.store = "<scheme>://..."``.
    ``schemes`` are the URL schemes the store takes; ``default=True`` makes it the store used
    when ``knowledge.store`` is a plain file path or unset (the bundled embedded store is).
    Import the database driver inside ``open``. Return value: ignored.
    """


@hookspec
def register_callbacks(config: Any, registry: PluginRegistry) -> None:
    """Register LangChain callback handlers that see every model call, on every surface.

    Called once per plugin when the host starts, like ``register_models``. Call
    ``registry.register(id, handler)`` with a ``langchain_core.callbacks.BaseCallbackHandler``
    shared by all turns, or ``registry.register(id, factory=make)`` where ``make(metadata)``
    returns a handler for one turn. ``metadata`` (also passed to LangChain as the run's
    ``metadata``, with ``run_name`` ``"ai-assistant <surface>"``) holds:

    - ``model_id``: the model asked for; ``conversation_id``: the stored conversation, or None;
    - ``user``: who asked (the API key's name on the gateway, the OS user on the CLI);
    - ``surface``: ``"cli"``, ``"python"``, ``"openai"`` (``/v1``) or ``"api"`` (``/api``).

    A factory that raises is skipped for that turn (the reply goes on) and reported. Import
    tracing SDKs inside the factory or the handler's module function, never at the top of the
    plugin file. Return value: ignored.

    Feedback: a handler that also has a method ``on_score(message_id, score, comment, metadata)``
    (plain or ``async``) is handed every score stored by ``POST /api/chat/message/{id}/score``,
    after the score is saved: ``message_id`` is the scored assistant message, ``score`` a float,
    ``comment`` a string or None, and ``metadata`` the scored turn's ``model_id`` and
    ``conversation_id``, the scoring ``user`` (API key name), ``surface`` ``"api"`` and
    ``message_id``. For this a factory is called with that ``metadata``. A plain ``on_score``
    runs in a thread (it may call an SDK that blocks); one that raises is logged and changes
    nothing.
    """


@hookspec
def validate_config(config: Any) -> Iterable[tuple[str, str]] | None:
    """Check this plugin's settings for ``ai-assistant config validate``.

    Called only by ``config validate`` (never on start-up). Return every problem at once, each as
    a ``(key_path, message)`` pair: ``("models.my_provider.models[0].endpoint", "is required:
    add endpoint = \\"https://...\\"")``. A message says how to fix it and never quotes a secret.
    Return ``None`` or an empty list when the section is fine.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the ``ai-assistant`` command line.

    Called when the CLI starts, with the root command group::

        @hookimpl
        def register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hi")

    A command whose name is already taken is refused and reported against this plugin.
    """


@hookspec
def startup(config: Any) -> Any:
    """Open what this plugin holds for the host's lifetime (a connection pool, a session).

    Called once when the host starts (``async with host:``, which ``serve`` and every CLI command
    that uses plugins do), after every ``register_*`` hook. May be a plain function or an
    ``async def``; keep blocking work out of an async one (``asyncio.to_thread``). An exception
    fails this plugin only: what it registered is withdrawn and its ``shutdown`` is not called.
    """


@hookspec
def shutdown(config: Any) -> Any:
    """Close what ``startup`` opened. Called once when the host stops, in the reverse order of
    start-up, only for plugins whose ``startup`` succeeded (or that have none). May be
    ``async def``. An exception is reported against this plugin; the others still shut down.
    """
