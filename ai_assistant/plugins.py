"""Plugin discovery, enable/disable, loading with failure isolation, and the per-plugin report.

Plugins come from installed distributions (entry point group ``ai_assistant``) and from plugin
directories (each ``*.py`` file and package folder). Each is imported and each hook is called on
its own, so one broken plugin is reported by name and never hides the others.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .errors import did_you_mean
from .hookspecs import PROJECT_NAME

if TYPE_CHECKING:
    from .config import Config
    from .registry import PluginRegistry, Registry

ENTRY_POINT_GROUP = "ai_assistant"
# What a plugin's code may raise that is its own failure, not the command's: even
# KeyboardInterrupt and SystemExit (a real Ctrl-C reaches the main thread between plugin calls;
# cancellation, GeneratorExit and CancelledError, still goes through)
PLUGIN_FAILURES = (Exception, KeyboardInterrupt, SystemExit)
# a plugin whose import takes longer delays every command: it gets a warning naming it
SLOW_IMPORT_SECONDS = 0.5
LOADED = "loaded"
DISABLED = "disabled"
FAILED = "failed"


class PluginInfo:
    """One row of ``ai-assistant plugins list``. (A plain class: a dataclass costs start-up.)"""

    def __init__(
        self,
        name: str,
        source: str,  # "entry point" or "directory"
        location: str,  # "module:attr" of an entry point, or the file/folder path
        distribution: str | None = None,
        version: str | None = None,
        path: Path | None = None,
        load: Callable[[], Any] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.location = location
        self.distribution = distribution
        self.version = version
        self.path = path
        self.load = load
        self.hooks: list[str] = []
        self.status = LOADED
        self.reason: str | None = None  # why it failed or is disabled
        self.problems: list[str] = []  # contained, non-fatal (a duplicate model id)
        self.load_seconds: float | None = None  # how long its import took

    def __repr__(self) -> str:
        return f"PluginInfo(name={self.name!r}, status={self.status!r})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "status": self.status,
            "reason": self.reason,
            "problems": list(self.problems),
            "load_ms": None if self.load_seconds is None else round(self.load_seconds * 1000, 1),
        }


def bundled_plugins_dir() -> Path:
    """``contrib_providers/``, shipped inside the wheel as ``ai_assistant.contrib_providers``."""
    spec = importlib.util.find_spec("ai_assistant.contrib_providers")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    return (Path(__file__).resolve().parent.parent / "contrib_providers").resolve()


def _hook_specs(pm: pluggy.PluginManager) -> dict[str, list[str]]:
    return {
        name: list(caller.spec.argnames)
        for name, caller in vars(pm.hook).items()
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None
    }


def _positional_args(function: Callable[..., Any]) -> list[str]:
    """The arguments pluggy passes to a hookimpl: those without a default."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in kinds and p.default is p.empty
    ]


def _where(exc: BaseException, path: Path | None) -> str:
    """`` (file.py line N)`` for the deepest frame inside the plugin's own files."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({Path(exc.filename).name} line {exc.lineno})"
    if path is None:
        return ""
    import traceback

    root = path if path.is_dir() else path.parent
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(root))
    ]
    if not frames:
        return ""
    return f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})"


def describe_exception(exc: BaseException, path: Path | None = None) -> str:
    """One line: ``ValueError: bad endpoint (my_provider.py line 12)``."""
    message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    message = " ".join(str(message).split())
    text = type(exc).__name__ + (f": {message}" if message else "")
    return text + _where(exc, path)


def _import_path(name: str, path: Path) -> ModuleType:
    """Import a plugin file or package folder under a private module name."""
    module_name = f"ai_assistant_plugin_{name}"
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            module_name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _scan_directory(directory: Path) -> list[tuple[str, Path]]:
    """(name, path) for every ``*.py`` file and package folder, skipping ``_private`` ones."""
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.suffix == ".py" and entry.is_file():
            found.append((entry.stem, entry))
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            found.append((entry.name, entry))
    return found


def _distributions_with_group(group: str) -> list[Any]:
    """Installed distributions declaring entry points in ``group``, first on sys.path winning.

    Same result as ``importlib.metadata.entry_points(group=...)`` for distributions installed on
    sys.path, but only the few whose ``entry_points.txt`` names the group are parsed: the stdlib
    parses every installed distribution's, which costs several ms of every command's start-up.
    """
    import os
    from importlib.metadata import PathDistribution

    marker = f"[{group}]"
    seen: set[str] = set()
    found = []
    for directory in sys.path:
        try:
            entries = os.listdir(directory or ".")
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            # "Name-1.0.dist-info": the first on sys.path shadows later copies, as in the stdlib
            key = entry.rsplit(".", 1)[0].split("-", 1)[0].lower().replace("-", "_")
            if key in seen:
                continue
            seen.add(key)
            meta = Path(directory or ".", entry)
            try:
                text = (meta / "entry_points.txt").read_text(encoding="utf-8")
            except OSError:
                continue
            if marker in text:
                found.append(PathDistribution(meta))
    return found


def _bad_validate_result(what: str) -> str:
    return (
        f"validate_config returned {what}: it must return a list of (key path, message) "
        "pairs, or nothing"
    )


class Plugins:
    """Finds, filters, imports and calls plugins; keeps a report of each one."""

    def __init__(
        self,
        config: Config,
        extra_dirs: Iterable[Path] = (),
    ) -> None:
        self.config = config
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.specs = _hook_specs(self.pm)
        self.plugins: dict[str, PluginInfo] = {}  # by name: the plugin that holds the name
        self.report: list[PluginInfo] = []  # every plugin found, in load order
        self.warnings: list[tuple[str, str]] = []  # (settings key, message)
        self._extra_dirs = [Path(d).resolve() for d in extra_dirs]

    # -- discovery ---------------------------------------------------------------------------

    def _candidates(self) -> list[PluginInfo]:
        candidates: list[PluginInfo] = []
        seen_paths: set[Path] = set()
        configured = self.config.plugin_dirs()
        directories = [bundled_plugins_dir(), *configured, *self._extra_dirs]
        for directory in directories:
            if directory in seen_paths:
                continue
            seen_paths.add(directory)
            if not directory.is_dir():
                if directory in configured and self.config.get("plugins.dirs") is not None:
                    self.warnings.append(
                        (
                            "plugins.dirs",
                            f"directory not found: {directory} (create it or remove "
                            "it from plugins.dirs)",
                        )
                    )
                continue
            for name, path in _scan_directory(directory):
                resolved = path.resolve()
                if resolved in seen_paths:
                    continue
                seen_paths.add(resolved)
                candidates.append(
                    PluginInfo(
                        name=name,
                        source="directory",
                        location=str(path),
                        path=path,
                        load=lambda name=name, path=path: _import_path(name, path),
                    )
                )
        candidates.extend(self._entry_point_candidates())
        return candidates

    def _entry_point_candidates(self) -> list[PluginInfo]:
        found = []
        for dist in _distributions_with_group(ENTRY_POINT_GROUP):
            for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
                found.append(
                    PluginInfo(
                        name=ep.name,
                        source="entry point",
                        location=ep.value,
                        distribution=dist.name,
                        version=dist.version,
                        load=ep.load,
                    )
                )
        return found

    # -- loading -----------------------------------------------------------------------------

    def load(self) -> None:
        """Discover and import every enabled plugin; failures are recorded, never raised."""
        enabled = self.config.enabled_plugins
        disabled = self.config.disabled_plugins
        candidates = self._candidates()
        known = {c.name for c in candidates}
        for setting, names in (("plugins.enabled", enabled), ("plugins.disabled", disabled)):
            for unknown in (n for n in names if n not in known):
                self.warnings.append(
                    (setting, f"unknown plugin {unknown!r}{did_you_mean(unknown, known)}")
                )
        for info in candidates:
            self.report.append(info)
            if info.name in self.plugins:
                first = self.plugins[info.name]
                info.status = FAILED
                info.reason = f"name already used by the plugin at {first.location}; rename one"
                continue
            self.plugins[info.name] = info
            if info.name in disabled:
                info.status, info.reason = DISABLED, "listed in plugins.disabled"
            elif enabled and info.name not in enabled:
                info.status, info.reason = DISABLED, "not listed in plugins.enabled"
            else:
                self._import(info)

    def _import(self, info: PluginInfo) -> None:
        assert info.load is not None
        started = time.perf_counter()
        try:
            module = info.load()
        except BaseException as exc:  # SystemExit, even KeyboardInterrupt: the plugin's failure
            action = "cannot load entry point" if info.source == "entry point" else "import failed"
            self._fail(info, f"{action}: {describe_exception(exc, info.path)}")
            return
        finally:
            info.load_seconds = time.perf_counter() - started
        if info.load_seconds > SLOW_IMPORT_SECONDS:
            info.problems.append(
                f"import took {info.load_seconds:.1f} s, which every command waits for "
                "(import heavy libraries inside the functions that use them, or disable it)"
            )
        if info.version is None:
            version = getattr(module, "__version__", None)
            info.version = str(version) if version is not None else None
        problem = self._check_hooks(module)
        if problem:
            self._fail(info, problem)
            return
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # pluggy's own validation, e.g. a misused hookwrapper
            self._fail(info, f"rejected by the plugin manager: {describe_exception(exc)}")
            return
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(module) or ())

    def _check_hooks(self, module: Any) -> str | None:
        """Why a module's hook functions cannot work, or None if they can."""
        for attr in dir(module):
            function = getattr(module, attr, None)
            if not callable(function):
                continue
            opts = self.pm.parse_hookimpl_opts(module, attr)
            marked = opts is not None
            if opts and (opts.get("wrapper") or opts.get("hookwrapper")):
                return (
                    f"{attr}() is a hook wrapper, which is not supported: each plugin's hook is "
                    "called on its own (so one failure stays with its plugin), so a wrapper "
                    "would never wrap another plugin; implement the hook plainly"
                )
            if not marked:
                if attr in self.specs and inspect.isfunction(function):
                    return (
                        f"{attr}() is not marked as a hook: decorate it with @hookimpl "
                        "(from ai_assistant import hookimpl)"
                    )
                continue
            if attr not in self.specs:
                return f"implements unknown hook {attr!r}{did_you_mean(attr, self.specs)}"
            extra = [a for a in _positional_args(function) if a not in self.specs[attr]]
            if extra:
                return (
                    f"{attr}() takes {', '.join(repr(a) for a in extra)}, which the hook "
                    f"does not provide (it provides: {', '.join(self.specs[attr])})"
                )
        return None

    def _fail(self, info: PluginInfo, reason: str) -> None:
        info.status = FAILED
        info.reason = self.config.redact(reason)
        plugin = self.pm.get_plugin(info.name)
        if plugin is not None:
            self.pm.unregister(plugin)

    # -- calling hooks -----------------------------------------------------------------------

    def call_each(
        self,
        hook: str,
        kwargs_for: Callable[[str], dict[str, Any]],
        only: str | None = None,
    ) -> dict[str, Any]:
        """Call ``hook`` through pluggy one plugin at a time (or only plugin ``only``):
        ``tryfirst`` implementations first, ``trylast`` ones last, the others in the order the
        plugins were found (so the first plugin to register an id keeps it). A plugin that
        raises is marked failed, the others go on. Returns each plugin's result by name."""
        caller = getattr(self.pm.hook, hook)
        impls = self._ordered_impls(hook)
        everyone = [impl.plugin for impl in impls]
        results: dict[str, Any] = {}
        for impl in impls:
            name = self.pm.get_name(impl.plugin)
            if only is not None and name != only:
                continue
            info = self.plugins[name]
            if info.status == FAILED:
                continue
            kwargs = kwargs_for(name)
            others = [p for p in everyone if p is not impl.plugin]
            only_this = self.pm.subset_hook_caller(hook, remove_plugins=others)
            try:
                answers = only_this(**{arg: kwargs[arg] for arg in caller.spec.argnames})
            except PLUGIN_FAILURES as exc:
                self._fail(info, f"{hook} raised {describe_exception(exc, info.path)}")
                continue
            results[name] = answers[0] if answers else None
        return results

    async def acall_each(
        self,
        hook: str,
        kwargs_for: Callable[[str], dict[str, Any]],
        first: Iterable[str] = (),
    ) -> list[str]:
        """``call_each`` for hooks that may be ``async def``: each plugin's answer is awaited
        before the next plugin is called, and a failure while awaiting is that plugin's. The
        plugins named in ``first`` are called first, in that order. Returns the names of the
        plugins that answered without failing, in call order."""
        import inspect

        names = [self.pm.get_name(impl.plugin) for impl in self._ordered_impls(hook)]
        leading = [n for n in first if n in names]
        succeeded = []
        for name in leading + [n for n in names if n not in leading]:
            answers = self.call_each(hook, kwargs_for, only=name)
            if name not in answers:
                continue  # raised, and is now marked failed
            if inspect.isawaitable(answers[name]):
                try:
                    await answers[name]
                except PLUGIN_FAILURES as exc:
                    info = self.plugins[name]
                    self._fail(info, f"{hook} raised {describe_exception(exc, info.path)}")
                    continue
            succeeded.append(name)
        return succeeded

    def _ordered_impls(self, hook: str) -> list[Any]:
        found = getattr(self.pm.hook, hook).get_hookimpls()
        return [
            *(i for i in found if i.tryfirst),
            *(i for i in found if not i.tryfirst and not i.trylast),
            *(i for i in found if i.trylast),
        ]

    def register(self, hook: str, registry: Registry) -> None:
        """Call a ``register_*`` hook with each plugin's view of ``registry``: what a plugin
        registers is attributed to it, and a plugin that fails is withdrawn whole."""
        bound: dict[str, PluginRegistry] = {}

        def kwargs_for(name: str) -> dict[str, Any]:
            bound[name] = registry.for_plugin(name)
            return {"config": self.config.settings, "registry": bound[name]}

        self.call_each(hook, kwargs_for)
        for name, plugin_registry in bound.items():
            info = self.plugins[name]
            if info.status == FAILED:
                registry.remove_plugin(name)  # a half-registered plugin is withdrawn whole
            else:
                info.problems.extend(self.config.redact(p) for p in plugin_registry.problems)

    def validate_config(self) -> list[tuple[str, str]]:
        """Each plugin's ``(key path, message)`` problems. A plugin whose answer is not a list
        of such pairs (or that raises while giving it) gets one finding of its own; what it
        gave before that still counts, and the other plugins' findings are unaffected."""
        problems: list[tuple[str, str]] = []
        results = self.call_each("validate_config", lambda _: {"config": self.config.settings})
        for name, result in results.items():
            where = f"plugin {name}"
            if result is None:
                continue
            if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
                problems.append((where, _bad_validate_result(type(result).__name__)))
                continue
            iterator = iter(result)
            while True:
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                except Exception as exc:  # a generator that fails midway
                    reason = describe_exception(exc, self.plugins[name].path)
                    problems.append((where, f"validate_config raised {reason}"))
                    break
                if isinstance(item, str):
                    problems.append((where, item))
                elif isinstance(item, tuple) and len(item) == 2:
                    problems.append((str(item[0]), str(item[1])))
                else:
                    problems.append((where, _bad_validate_result(f"an item {type(item).__name__}")))
        return [(key, self.config.redact(message)) for key, message in problems]

    # -- the report --------------------------------------------------------------------------

    def messages(self) -> list[str]:
        """One line per failure, problem and warning, for stderr."""
        lines = [f"{key}: {message}" for key, message in self.warnings]
        for info in self.report:
            if info.status == FAILED:
                lines.append(f"plugin {info.name!r} failed: {info.reason}")
            lines.extend(f"plugin {info.name!r}: {problem}" for problem in info.problems)
        return lines
