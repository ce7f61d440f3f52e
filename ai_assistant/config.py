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

ENVVAR_PREFIX = "AI_ASSISTANT"
SETTINGS_FILE = "settings.toml"
SECRETS_FILE = ".secrets.toml"
LOCAL_FILE = "settings.local.toml"
DEFAULT_ENV = "development"
# Tables that make a settings.toml recognisably this project's (see ``is_own_settings_file``).
OWN_SECTIONS = ("plugins", "models", "chat")


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

    def __repr__(self) -> str:
        return f"Config(root={str(self.root)!r}, env={self.env!r})"

    def get(self, key: str, default: Any = None) -> Any:
        """The value at a dotted ``key``; ``default`` when a table on the way is not a table
        (``server = 5`` then ``server.port``): ``check_host_settings`` reports that one."""
        try:
            return self.settings.get(key, default)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):
            return default

    def as_dict(self) -> dict[str, Any]:
        """The merged settings with lower-case top-level keys (Dynaconf upper-cases them)."""
        data = self.settings.as_dict()
        return {k.lower(): v for k, v in data.items() if k.lower() not in _INTERNAL_KEYS}

    @property
    def secret_paths(self) -> set[str]:
        """Every key set in ``.secrets.toml``: masked wherever settings are shown."""
        if self._secret_paths is None:
            self._secret_paths = set()
            secrets_file = self.root / SECRETS_FILE
            if secrets_file in self.files:
                for env_table in _read_toml(secrets_file).values():
                    if isinstance(env_table, Mapping):
                        self._secret_paths.update(p.lower() for p in _leaf_paths(env_table))
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
        """The plugin directories the settings name, relative to the settings file. None by
        default: code is only imported from a folder somebody named."""
        dirs = name_list(self.get("plugins.dirs"))
        return [(self.root / d).resolve() for d in dirs]

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
    (``[default]``, ``[development]``, ...) holds a ``plugins``, ``models`` or ``chat`` key.
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


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            yield from _leaf_paths(value, path)
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
    root = main_file.parent if main_file else cwd

    candidates = [main_file, root / SECRETS_FILE, root / LOCAL_FILE] if main_file else []
    files = [p for p in candidates if p is not None and p.is_file()]
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
        settings_files=[str(p) for p in files],
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
    for name in dict.fromkeys(unset_variables):
        config.warnings.append(
            (
                f"environment variable {name}",
                "not set, so the settings that name it with @format {env[" + name + "]} "
                f"are unset (export {name}, or set the key in .secrets.toml)",
            )
        )
    problems = check_host_settings(config) if check else []
    if problems:
        raise ConfigError(
            "invalid settings:\n" + "\n".join(f"  {key}: {msg}" for key, msg in problems),
            hint="fix the keys above (see `ai-assistant config validate` for all checks)",
        )
    return config


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
        data = _read_toml(path)
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


_NAMES = 'a list of plugin names, like ["echo"]'
# (key, accepted types, what to write instead); a string is accepted where an environment
# variable may give a comma-separated list.
_HOST_KEYS: list[tuple[str, tuple[type, ...], str]] = [
    ("plugins", (Mapping,), "a table [default.plugins]"),
    ("plugins.dirs", (list, str), 'a list of directories, like ["contrib_providers"]'),
    ("plugins.enabled", (list, str), _NAMES),
    ("plugins.disabled", (list, str), _NAMES),
    ("plugins.strict", (bool,), "true or false"),
    ("models", (Mapping,), "a table of provider sections, like [default.models.echo]"),
    ("chat", (Mapping,), "a table [default.chat]"),
    ("chat.default_model", (str,), 'a model id, like "echo"'),
    ("chat.fallbacks", (Mapping,), 'a table of model id = [fallback ids], like { "a" = ["b"] }'),
    ("prompt", (Mapping,), "a table [default.prompt]"),
    ("prompt.system", (str,), "a string"),
    ("prompt.prefix", (str,), "a string"),
    ("prompt.suffix", (str,), "a string"),
    ("storage", (Mapping,), "a table [default.storage]"),
    ("storage.path", (str,), 'a file path, like "history.db"'),
    ("server", (Mapping,), "a table [default.server]"),
    ("server.host", (str,), 'an address, like "127.0.0.1"'),
    ("server.port", (int,), "a port number, like 8080"),
    ("server.workers", (int,), "a number of worker processes, like 2"),
    ("server.access_log", (bool,), "true or false"),
    ("server.store_completions", (bool,), "true or false"),
    ("server.api_keys", (Mapping,), 'a table of name = "key", in .secrets.toml'),
    ("server.limits", (Mapping,), "a table [default.server.limits]"),
    ("server.limits.max_body_bytes", (int,), "a number of bytes"),
    ("server.limits.max_messages", (int,), "a number of messages"),
    ("server.limits.max_prompt_chars", (int,), "a number of characters"),
    ("server.limits.request_timeout", (int, float), "a number of seconds"),
]
# (least, greatest) accepted for the host's numeric keys; None: no bound
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "server.port": (1, 65535),
    "server.workers": (1, None),
    "server.limits.max_body_bytes": (1, None),
    "server.limits.max_messages": (1, None),
    "server.limits.max_prompt_chars": (1, None),
    "server.limits.request_timeout": (0.001, None),
}


def range_problem(key: str, value: Any) -> str | None:
    """Why a number is out of range for ``key`` (``must be between 1 and 65535``), or None."""
    least, greatest = _RANGES.get(key, (None, None))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if least is not None and greatest is not None and not least <= value <= greatest:
        return f"must be between {least} and {greatest}"
    if least is not None and value < least:
        return f"must be {'at least 1' if least == 1 else 'more than 0'}"
    if greatest is not None and value > greatest:
        return f"must be at most {greatest}"
    return None


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

    for key, types, expected in _HOST_KEYS:
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wrong(key, value, expected)
        elif problem := range_problem(key, value):
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
