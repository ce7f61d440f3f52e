"""Read and change a ``.secrets.toml`` in place, keeping its other content and comments.

Used by ``ai-assistant secrets set|list|unset``. A key path is dotted (``models.openai_compatible
.api_key``) and lives under an environment table (``[default]`` unless another is named), written
as nested tables: ``[default.models.openai_compatible]`` ``api_key = "..."``. The file is written
to a temporary file of mode 0600 in the same folder, then moved over the old one, so it is never
readable by others, not even for a moment, and never half written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import leaf_paths
from .errors import AiAssistantError

DEFAULT_TABLE = "default"
MODE = 0o600
KEY_PATH_FORM = "dotted names of letters, digits, _ and -, like models.openai_compatible.api_key"

_PART = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY_PATH = re.compile(rf"{_PART}(\.{_PART})*")


def check_key_path(key_path: str) -> list[str]:
    """The parts of a dotted key path; raises ``AiAssistantError`` saying the form when bad."""
    if not _KEY_PATH.fullmatch(key_path or ""):
        raise AiAssistantError(
            f"invalid key path {key_path!r}: use {KEY_PATH_FORM}",
            hint="run `ai-assistant secrets list` to see the keys set",
        )
    parts = key_path.split(".")
    if parts[0].lower() == DEFAULT_TABLE and len(parts) > 1:
        rest = ".".join(parts[1:])
        raise AiAssistantError(
            f"key path {key_path!r} starts with the environment table {parts[0]!r}",
            hint=f"give the path below it: `ai-assistant secrets set {rest}` writes "
            f"[{DEFAULT_TABLE}.{'.'.join(parts[1:-1])}] (--env NAME for another environment)",
        )
    return parts


def _parse(path: Path) -> Any:
    """The file as a tomlkit document (an empty one when it does not exist)."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except UnicodeDecodeError:
        raise AiAssistantError(
            f"{path}: not UTF-8 text", hint="save the file as UTF-8 (TOML files must be UTF-8)"
        ) from None
    except OSError as exc:
        raise AiAssistantError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return tomlkit.parse(text)
    except ParseError as exc:  # its message has the line and column, never a value
        raise AiAssistantError(
            f"{path}: invalid TOML: {exc}",
            hint="fix the syntax at that line, then run the command again",
        ) from None


def _find(container: Any, part: str) -> str | None:
    """The key in ``container`` that is ``part``, ignoring case (Dynaconf does)."""
    if part in container:
        return part
    return next((k for k in container if str(k).lower() == part.lower()), None)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, mode 0600 from the first byte (mkstemp's mode)."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def target(path: Path) -> Path:
    """The file actually written: a symlinked ``.secrets.toml`` (a dotfiles checkout) is kept a
    link, and the file it points to is changed."""
    return path.resolve() if path.is_symlink() else path


def set_secret(path: Path, key_path: str, value: str, env: str = DEFAULT_TABLE) -> bool:
    """Set ``key_path`` to ``value`` under ``[env]`` in ``path`` (created if need be), keeping
    everything else. Returns True when the key was already set there (now replaced)."""
    import tomlkit

    parts = check_key_path(key_path)
    if not isinstance(value, str) or not value.strip():
        raise AiAssistantError(f"no value given for {key_path}: nothing written")
    path = target(path)
    doc = _parse(path)
    node: Any = doc
    walked = []
    created = False
    for i, part in enumerate([env, *parts[:-1]]):
        walked.append(part)
        key = _find(node, part)
        if key is None:
            leaf = i == len(parts) - 1  # the table that gets the value itself
            table = tomlkit.table(is_super_table=not leaf)
            node[part] = table
            key, created = part, leaf
        node = node[key]
        if not isinstance(node, Mapping):
            raise AiAssistantError(
                f"cannot set {key_path}: {'.'.join(walked)} in {path} is a value, not a table",
                hint=f"edit {path} and remove or rename {'.'.join(walked)}",
            )
    last = _find(node, parts[-1])
    replaced = last is not None
    if last is not None and isinstance(node[last], Mapping):
        raise AiAssistantError(
            f"cannot set {key_path}: it is a table in {path}, not a value",
            hint=f"set one of the keys inside it, like {key_path}.<name>",
        )
    node[last or parts[-1]] = value
    if created:
        node.add(tomlkit.nl())  # a blank line between the new table and what follows
    _write(path, _text(doc))
    return replaced


def _text(doc: Any) -> str:
    """The document's text, ending in one newline (tomlkit leaves blank lines at the end when
    a table is added or removed there)."""
    import tomlkit

    text = tomlkit.dumps(doc).rstrip()
    return text + "\n" if text else ""


def unset_secret(path: Path, key_path: str, env: str = DEFAULT_TABLE) -> bool:
    """Remove ``key_path`` from ``[env]`` in ``path``, and the tables it leaves empty. Returns
    False (and writes nothing) when it is not set there."""
    parts = check_key_path(key_path)
    path = target(path)
    if not path.is_file():
        return False
    doc = _parse(path)
    chain: list[tuple[Any, str]] = []  # (container, key in it), outermost first
    node: Any = doc
    for part in [env, *parts]:
        if not isinstance(node, Mapping):
            return False
        key = _find(node, part)
        if key is None:
            return False
        chain.append((node, key))
        node = node[key]
    if isinstance(node, Mapping):
        return False  # a table, not one key: unset its keys one by one
    for container, key in reversed(chain):
        del container[key]
        if len(container) or container is doc:
            break
    _write(path, _text(doc))
    return True


def keys_in(path: Path) -> list[tuple[str, str, list[str]]]:
    """``(environment, key path, variables)`` for every value set in ``path``, in file order
    (empty strings count as unset); ``variables`` are the environment variables a value takes
    its text from (``"@format {env[OPENAI_API_KEY]}"``), never the value itself."""
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return []
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AiAssistantError(f"{path}: invalid TOML: {exc}") from None
    found = []
    for env, table in data.items():
        if isinstance(table, Mapping):
            for key_path in leaf_paths(table):
                value = _value_at(table, key_path)
                if value not in (None, ""):
                    found.append((env, key_path, format_variables(value)))
    return found


_ENV_REFERENCE = re.compile(r"""\{env\[['"]?(\w+)['"]?\]""")


def format_variables(value: Any) -> list[str]:
    """The environment variables an ``@format`` value names: ``{env[NAME]}``."""
    if isinstance(value, str) and value.lstrip().startswith("@format"):
        return list(dict.fromkeys(_ENV_REFERENCE.findall(value)))
    return []


def _value_at(data: Mapping[str, Any], key_path: str) -> Any:
    node: Any = data
    for part in key_path.split("."):
        node = node[part]
    return node


__all__ = [
    "DEFAULT_TABLE",
    "KEY_PATH_FORM",
    "check_key_path",
    "format_variables",
    "keys_in",
    "set_secret",
    "unset_secret",
]
