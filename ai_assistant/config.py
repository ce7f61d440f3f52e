"""Layered settings: find the files, build the Dynaconf object, check the host's keys, mask secrets.

Layers, later wins: ``settings.toml`` < ``.secrets.toml`` < ``settings.local.toml`` <
``AI_ASSISTANT_*`` environment variables; inside each file ``[default]`` < the active environment
(``[development]`` unless ``--env``/``AI_ASSISTANT_ENV`` says otherwise). Tables merge key by key
(a key in ``.secrets.toml`` never wipes the model list in ``settings.toml``); arrays are extended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .masking import collect_secret_values, is_secret_key, mask_tree, redact
from .schema import KEYS

ENVVAR_PREFIX = "AI_ASSISTANT"
SETTINGS_FILE = "settings.toml"
SECRETS_FILE = ".secrets.toml"
LOCAL_FILE = "settings.local.toml"  # read by Dynaconf itself, after the others
DEFAULT_ENV = "development"
# Tables that make a settings.toml recognisably this project's (see ``is_own_settings_file``).
OWN_SECTIONS = ("plugins", "models", "chat", "mcp", "tools", "embeddings", "knowledge")


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/ai-assistant`` (``~/.config/ai-assistant`` when unset): the user-level
    settings, used from any folder."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "ai-assistant"


def env_var_name(key_path: str) -> str:
    """``models.openai.api_key`` -> ``AI_ASSISTANT_MODELS__OPENAI__API_KEY``."""
    return f"{ENVVAR_PREFIX}_" + "__".join(part.upper() for part in key_path.split("."))


def name_list(value: Any) -> list[str]:
    """A list of names from a TOML array or a comma/space separated string (an env var).
    Anything else gives no names (``check_host_settings`` reports it)."""
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


class Config:
    """The loaded settings, where they came from, and what in them is secret."""

    def __init__(
        self,
        settings: Any,
        root: Path,
        files: list[Path],
        env: str,
        skipped: list[Path] | None = None,
    ) -> None:
        self.settings = settings  # the Dynaconf object handed to plugins
        self.root = root
        self.files = files
        self.env = env
        self.skipped = skipped or []  # settings.toml files passed over: not this project's
        self.warnings: list[tuple[str, str]] = []  # (file or key, message) for every command
        self._secret_paths: set[str] | None = None
        self._secret_values: set[str] | None = None
        self._raw: dict[Path, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Config(root={str(self.root)!r}, env={self.env!r})"

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted ``key``; ``default`` when a table on the way is not a table
        (``server = 5`` then ``server.port``): ``check_host_settings`` reports that one."""
        try:
            return self.settings.get(key, default)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            return default

    def value(self, key: str) -> Any:
        """A host key's value, or its declared default (``schema.KEYS``) when it is unset or
        invalid (``config validate`` reports the invalid ones)."""
        spec = KEYS[key]
        value = self.get(key)
        if value is None or not spec.type_ok(value) or spec.range_problem(value):
            import copy

            return copy.deepcopy(spec.default)
        return value

    def raw(self, path: Path) -> dict[str, Any]:
        """One settings file as written (read once)."""
        if path not in self._raw:
            self._raw[path] = _read_toml(path)
        return self._raw[path]

    def _environment_tables(self, path: Path) -> list[Mapping[str, Any]]:
        """The ``[default]`` and active environment tables of one file."""
        wanted = ("default", self.env)
        return [
            table
            for name, table in self.raw(path).items()
            if str(name).lower() in wanted and isinstance(table, Mapping)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The merged settings with lower-case top-level keys (Dynaconf upper-cases them)."""
        data = self.settings.as_dict()
        return {k.lower(): v for k, v in data.items() if k.lower() not in _INTERNAL_KEYS}

    @property
    def secret_paths(self) -> set[str]:
        """Every key set in ``.secrets.toml``: masked wherever settings are shown."""
        if self._secret_paths is None:
            self._secret_paths = set()
            for path in self.files:
                if path.name.startswith(".secrets."):
                    for env_table in self.raw(path).values():
                        if isinstance(env_table, Mapping):
                            self._secret_paths.update(
                                p.lower() for p in leaf_paths(env_table, empty_tables=True)
                            )
        return self._secret_paths

    @property
    def secret_values(self) -> set[str]:
        if self._secret_values is None:
            self._secret_values = collect_secret_values(self.as_dict(), self.secret_paths)
        return self._secret_values

    def masked(self) -> dict[str, Any]:
        return mask_tree(self.as_dict(), self.secret_values, self.secret_paths)

    def mask(self, data: Any) -> Any:
        """A copy of ``data`` (a model's display info, say) fit to show: values under secret
        keys, configured secret values and URL credentials masked, nested ones too."""
        return mask_tree(data, self.secret_values)

    def redact(self, text: str) -> str:
        return redact(text, self.secret_values)

    def plugin_dirs(self) -> list[Path]:
        """The plugin directories the settings name, each relative to the file naming it (an
        environment variable's relative to the settings folder). None by default: code is only
        imported from a folder somebody named."""
        dirs = []
        for path in self.files:
            for table in self._environment_tables(path):
                plugins = table.get("plugins")
                if isinstance(plugins, Mapping):
                    dirs += [path.parent / d for d in name_list(plugins.get("dirs"))]
        raw = os.environ.get(env_var_name("plugins.dirs"))
        if raw:
            from dynaconf.utils.parse_conf import parse_conf_data

            dirs += [self.root / d for d in name_list(parse_conf_data(raw, tomlfy=True))]
        return list(dict.fromkeys(d.expanduser().resolve() for d in dirs))

    @property
    def enabled_plugins(self) -> list[str]:
        return name_list(self.get("plugins.enabled"))

    @property
    def disabled_plugins(self) -> list[str]:
        return name_list(self.get("plugins.disabled"))

    @property
    def strict(self) -> bool:
        return self.get("plugins.strict", False) is True

    def origin(self, key_path: str) -> str | None:
        """The file (or environment variable) that last set ``key_path``, for error messages."""
        from dynaconf.utils.inspect import get_history

        try:
            history = get_history(self.settings, key_path)
        except Exception:  # noqa: BLE001 - only a nicety for messages
            return None
        if not history:
            return None
        last = history[-1]
        if last.get("loader") == "env_global":
            return f"environment variable {env_var_name(key_path)}"
        return last.get("identifier")


# Keys Dynaconf or our own switches put in the settings that are not user configuration.
_INTERNAL_KEYS = {"env", "load_dotenv", "settings_file", "settings_files"}


def is_own_settings_file(path: Path) -> bool:
    """Is ``path`` recognisably this project's settings? ``settings.toml`` is a name many
    Dynaconf projects use, so a file is adopted only when one of its environment tables
    (``[default]``, ``[development]``, ...) holds a ``plugins``, ``models``, ``chat``, ``mcp`` or
    ``tools`` key.
    A file that cannot be parsed is adopted, so that its error is reported rather than hidden.
    """
    try:
        data = _read_toml(path)
    except ConfigError:
        return True
    return any(
        isinstance(table, Mapping) and any(k in table for k in OWN_SECTIONS)
        for table in data.values()
    )


def find_settings_file(start: Path, skipped: list[Path] | None = None) -> Path | None:
    """The nearest ``settings.toml`` of this project in ``start`` or a parent directory; files
    that are not this project's (``is_own_settings_file``) are appended to ``skipped``."""
    for directory in (start, *start.parents):
        candidate = directory / SETTINGS_FILE
        if candidate.is_file():
            if is_own_settings_file(candidate):
                return candidate
            if skipped is not None:
                skipped.append(candidate)
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid TOML: {exc}",
            hint="fix the syntax at that line (a TOML table is [name], a string is quoted)",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
            hint="save the file as UTF-8 (TOML files must be UTF-8)",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def leaf_paths(
    data: Mapping[str, Any], prefix: str = "", *, empty_tables: bool = False
) -> Iterable[str]:
    """Every dotted key path to a value in ``data`` (and to an empty table, if asked)."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and (value or not empty_tables):
            yield from leaf_paths(value, path, empty_tables=empty_tables)
        else:
            yield path


def load_config(
    settings_path: str | os.PathLike[str] | None = None,
    env: str | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Config:
    """Load the settings and (if ``check``) the host's own keys; raises ``ConfigError`` naming
    the file or key at fault."""
    cwd = Path.cwd() if cwd is None else cwd
    skipped: list[Path] = []
    if settings_path is not None:
        main_file = Path(settings_path).expanduser()
        if not main_file.is_absolute():
            main_file = cwd / main_file
        if not main_file.is_file():
            raise ConfigError(
                f"settings file not found: {settings_path}",
                hint="check the path given to --settings, or leave it out to use ./settings.toml",
            )
    else:
        main_file = find_settings_file(cwd, skipped)
    user_file = user_config_dir() / SETTINGS_FILE
    if not user_file.is_file():
        user_file = None
    root = (main_file or user_file or cwd / SETTINGS_FILE).parent
    files = layer_files([user_file, main_file])
    env_name = (env or os.environ.get(f"{ENVVAR_PREFIX}_ENV") or DEFAULT_ENV).lower()

    from dynaconf import Dynaconf
    from dynaconf.utils import parse_conf

    unset_variables: list[str] = []
    parse_conf.converters["@format"] = _format_converter(unset_variables)
    settings = Dynaconf(
        envvar_prefix=ENVVAR_PREFIX,
        environments=True,
        env_switcher=f"{ENVVAR_PREFIX}_ENV",
        env=env_name,
        # Dynaconf reads each file's *.local.toml after all of them by itself
        settings_files=[str(p) for p in files if ".local." not in p.name],
        root_path=str(root),
        merge_enabled=True,
        load_dotenv=False,
    )
    config = Config(settings=settings, root=root, files=files, env=env_name, skipped=skipped)
    try:
        # Dynaconf reads files on first access, and resolves @format values when they are
        # read: both now, to name a bad file or an unset variable
        settings.as_dict()
    except ValueError as exc:  # Dynaconf's TOML errors do not say which file
        for path in files:
            _read_toml(path)  # raises ConfigError naming the file and line
        raise ConfigError(f"cannot load settings: {exc}") from None
    except (parse_conf.DynaconfParseError, parse_conf.DynaconfFormatError) as exc:
        raise _unparsable_value(files, exc) from None
    _coerce_environment_secrets(config)
    config.warnings.extend(_exposed_secrets_files(files))
    config.warnings.extend(_tables_outside_environments(config))
    for name in dict.fromkeys(unset_variables):
        config.warnings.append(
            (
                f"environment variable {name}",
                "not set, so the settings that name it with @format {env[" + name + "]} "
                f"are unset (export {name}, or set the key in .secrets.toml)",
            )
        )
    problems = check_host_settings(config) if check else []
    # the gateway's own keys stop only `serve` (server_problems): any other command warns
    for key, message in [p for p in problems if p[0].startswith(SERVER_ONLY)]:
        config.warnings.append((key, f"{message}; `serve` will not start until it is fixed"))
    problems = [p for p in problems if not p[0].startswith(SERVER_ONLY)]
    if problems:
        raise ConfigError(
            "invalid settings:\n" + "\n".join(f"  {key}: {msg}" for key, msg in problems),
            hint="fix the keys above (see `ai-assistant config validate` for all checks)",
        )
    return config


def layer_files(settings_files: Iterable[Path | None]) -> list[Path]:
    """The files read, in the order they are laid on each other (later wins): each settings
    file and the ``.secrets.toml`` beside it, then the ``*.local.toml`` of each, which Dynaconf
    reads after all the others. Only files that exist; a folder reached twice counts once."""
    folders = list(dict.fromkeys(p.parent for p in settings_files if p is not None))
    names = [
        (settings_file.name if settings_file else SETTINGS_FILE, SECRETS_FILE)
        for settings_file in settings_files
        if settings_file is not None
    ]
    main = [folder / name for folder, pair in zip(folders, names, strict=False) for name in pair]
    local = [p.with_name(p.name.replace(".toml", ".local.toml")) for p in main]
    return [p for p in main + local if p.is_file()]


def _tables_outside_environments(config: Config) -> list[tuple[str, str]]:
    """Tables like ``[models.x]`` (not ``[default.models.x]``): Dynaconf takes ``models`` for
    an environment's name and ignores them, so a model would silently disappear."""
    top_keys = {path for path in KEYS if "." not in path}
    found = []
    for path in config.files:
        for key, value in config.raw(path).items():
            if str(key).lower() in top_keys:
                children = list(value) if isinstance(value, Mapping) else []
                tables = (
                    [f"{key}.{child}" for child in children]
                    if children and all(isinstance(value[c], Mapping) for c in children)
                    else [str(key)]
                )
                for table in tables:
                    found.append(
                        (
                            str(path),
                            f"[{table}] is outside an environment, so it is ignored: "
                            f"write [default.{table}]",
                        )
                    )
            elif not isinstance(value, Mapping) and not str(key).lower().startswith("dynaconf"):
                found.append(
                    (
                        str(path),
                        f"{key} is outside an environment, so it is ignored: put it under "
                        "[default]",
                    )
                )
    return found


def _format_converter(unset_variables: list[str]) -> Callable[[str], Any]:
    """Dynaconf's ``@format`` converter, except that a value made from environment variables
    alone (``@format {env[OPENAI_KEY]}``) is resolved at once, and one naming an unset variable
    becomes unset, with the variable recorded, instead of failing every command: a model then
    shows as ``missing secret``. Values that refer to other settings (``{this...}``) stay lazy.
    """
    from dynaconf.utils.parse_conf import Lazy, _format_formatter

    def convert(value: str) -> Any:
        if "this" in value:
            return Lazy(value)
        try:
            return _format_formatter(value, env=os.environ)
        except KeyError as exc:
            unset_variables.append(str(exc.args[0]))
            return None
        except (AttributeError, IndexError, ValueError):
            return Lazy(value)  # Dynaconf reports it, naming the value's template

    return convert


def _unparsable_value(files: list[Path], exc: Exception) -> ConfigError:
    """Name the environment variable (or else the files) holding a value Dynaconf cannot parse
    (broken ``@json``, a bad ``@format``), never the value: it may be a secret."""
    from dynaconf.utils.parse_conf import parse_conf_data

    prefix = ENVVAR_PREFIX + "_"
    for name, raw in sorted(os.environ.items()):
        if name.startswith(prefix) and raw.startswith("@"):
            try:
                parse_conf_data(raw, tomlfy=True)
            except Exception:  # noqa: BLE001 - any failure names this variable
                return ConfigError(
                    f"environment variable {name}: cannot parse its value ({type(exc).__name__})",
                    hint="check the value after its @json/@int/... marker, or unset it",
                )
    where = ", ".join(str(p) for p in files) or "the environment"
    return ConfigError(
        f"cannot resolve a @-marked value in {where}: {type(exc).__name__}",
        hint="check the values that start with @format, @json, @int, ... in those files",
    )


def _coerce_environment_secrets(config: Config) -> None:
    """A secret from the environment is text, whatever it looks like: Dynaconf reads
    ``AI_ASSISTANT_..._API_KEY=918273645501`` as an integer (and ``true`` as a boolean), so
    such a value is set back to the variable's own text before any plugin sees it."""
    prefix = ENVVAR_PREFIX + "_"
    for name, raw in os.environ.items():
        if not name.startswith(prefix) or raw.startswith("@"):
            continue  # an explicit @int/@json marker means what it says
        key_path = name[len(prefix) :].lower().replace("__", ".")
        if not any(is_secret_key(part) for part in key_path.split(".")):
            continue
        value = config.get(key_path)
        if value is not None and not isinstance(value, (str, Mapping, list)):
            config.settings.set(key_path, raw)


def _exposed_secrets_files(files: list[Path]) -> list[tuple[str, str]]:
    """A ``.secrets.toml`` that the group or others may read is reported on every command."""
    warnings = []
    for path in files:
        if path.name != SECRETS_FILE or os.name != "posix":
            continue
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            warnings.append(
                (
                    str(path),
                    f"holds secrets but is readable by others (mode {mode:03o}): "
                    f"run chmod 600 {path}",
                )
            )
    return warnings


def defined_environments(config: Config) -> set[str]:
    """Environment names that have a table in any settings file."""
    names: set[str] = set()
    for path in config.files:
        data = config.raw(path)
        names.update(k.lower() for k, v in data.items() if isinstance(v, Mapping))
    return names


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return {str: "a string", int: "an integer", float: "a number"}.get(type(value), "a value")


SERVER_ONLY = "server."  # keys only the gateway reads


def server_problems(config: Config) -> list[tuple[str, str]]:
    """The problems with the gateway's own keys (``server.*``): `serve` refuses to start on
    them, other commands only warn."""
    return [p for p in check_host_settings(config) if p[0].startswith(SERVER_ONLY)]


def check_host_settings(config: Config) -> list[tuple[str, str]]:
    """Every problem with the keys the host itself reads, as ``(key path, message)`` pairs.

    A message names the expected type and where the bad value was set, never the value itself
    (Dynaconf's validator messages print it, and it may be a secret).
    """
    problems: list[tuple[str, str]] = []

    def where(key: str) -> str:
        origin = config.origin(key)
        return f" (set in {origin})" if origin else ""

    def wrong(key: str, value: Any, expected: str) -> None:
        problems.append((key, f"must be {expected}, not {_type_name(value)}{where(key)}"))

    for key, spec in KEYS.items():
        value = config.get(key)
        if value is None:
            continue
        if not spec.type_ok(value):
            wrong(key, value, spec.expected)
        elif problem := spec.range_problem(value):
            problems.append((key, problem + where(key)))
    for key in _non_string_secrets(config.as_dict()):
        problems.append(
            (key, f'must be a string: quote it, like {key.rsplit(".", 1)[-1]} = "..."{where(key)}')
        )
    fallbacks = config.get("chat.fallbacks")
    if isinstance(fallbacks, Mapping):
        for model_id, chain in fallbacks.items():
            if not (isinstance(chain, list) and all(isinstance(m, str) for m in chain)):
                wrong(f"chat.fallbacks.{model_id}", chain, 'a list of model ids, like ["echo"]')
    models = config.get("models")
    if isinstance(models, Mapping):
        for provider, section in models.items():
            if not isinstance(section, Mapping):
                wrong(f"models.{provider}", section, f"a table [default.models.{provider}]")
    return problems


def _non_string_secrets(data: Any, path: str = "", inside_secret: bool = False) -> list[str]:
    """Key paths of secret settings that hold a number or a boolean: a key is text, and a
    provider given an integer fails with an error that would print it."""
    found: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            found += _non_string_secrets(value, child, inside_secret or is_secret_key(str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _non_string_secrets(value, f"{path}[{i}]", inside_secret)
    elif inside_secret and data is not None and not isinstance(data, str):
        found.append(path)
    return found


def masked_value(config: Config, key: str | None) -> Any:
    """The masked settings, or the masked value at a dotted ``key``."""
    data = config.masked()
    if not key:
        return data
    node: Any = data
    for part in key.split("."):
        if isinstance(node, Mapping):
            match = next((k for k in node if str(k).lower() == part.lower()), None)
            if match is not None:
                node = node[match]
                continue
        raise ConfigError(f"no setting {key!r}", hint="run `ai-assistant config show` to see all")
    return node
