"""Which settings are secrets, and how to keep their values out of anything shown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

# A key whose last component matches is a secret wherever it appears.
_SECRET_KEY = re.compile(
    r"(^|[_-])(api[_-]?keys?|keys?|secrets?|token|passwords?|passwd|credentials?|authorization)$",
    re.IGNORECASE,
)
_MIN_SECRET_LEN = 4


def is_secret_key(key: str) -> bool:
    """True for ``api_key``, ``API_KEY``, ``server.api_keys``, ``Authorization``, ``password``..."""
    return bool(_SECRET_KEY.search(str(key)))


def _child(path: str, key: Any, inside_secret: bool, secret_paths: set[str]) -> tuple[str, bool]:
    """The path of ``key`` under ``path``, and whether what it holds is secret: it sits inside
    a secret, its name looks secret, or it was set in ``.secrets.toml``."""
    child = f"{path}.{key}" if path else str(key)
    return child, inside_secret or is_secret_key(key) or child.lower() in secret_paths


def collect_secret_values(data: Any, secret_paths: set[str] | None = None) -> set[str]:
    """Every string value stored under a secret key (or under one of ``secret_paths``)."""
    found: set[str] = set()
    secret_paths = {p.lower() for p in secret_paths or ()}

    def walk(value: Any, path: str, inside_secret: bool) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, *_child(path, k, inside_secret, secret_paths))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", inside_secret)
        elif inside_secret and isinstance(value, str) and len(value) >= _MIN_SECRET_LEN:
            found.add(value)

    walk(data, "", False)
    return found


def mask_tree(data: Any, secrets: Iterable[str] = (), secret_paths: set[str] | None = None) -> Any:
    """A copy of ``data`` with secret values replaced by ``MASK`` (empty ones left visible).

    A value is masked when its key looks secret, when its path is in ``secret_paths`` (keys read
    from ``.secrets.toml``), or when it contains a known secret value (a header built from a key).
    """
    secret_paths = {p.lower() for p in secret_paths or ()}
    secrets = [s for s in secrets if s]

    def walk(value: Any, path: str, inside_secret: bool) -> Any:
        if isinstance(value, Mapping):
            return {
                k: walk(v, *_child(path, k, inside_secret, secret_paths)) for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{path}[{i}]", inside_secret) for i, v in enumerate(value)]
        if inside_secret and value not in (None, ""):
            return MASK
        if isinstance(value, str):
            return redact(value, secrets)
        return value

    return walk(data, "", False)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a known secret value replaced by ``MASK``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LEN and secret in text:
            text = text.replace(secret, MASK)
    return text
