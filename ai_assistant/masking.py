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


def secret_text(value: Any) -> str | None:
    """The text a secret value shows as when printed, whatever its type (an API key that the
    environment or TOML gave as a number is still a key); None for values that carry nothing
    (None, booleans)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return None


def collect_secret_values(data: Any, secret_paths: set[str] | None = None) -> set[str]:
    """The text of every value stored under a secret key (or under one of ``secret_paths``),
    numbers included."""
    found: set[str] = set()
    secret_paths = {p.lower() for p in secret_paths or ()}

    def walk(value: Any, path: str, inside_secret: bool) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, *_child(path, k, inside_secret, secret_paths))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]", inside_secret)
        elif inside_secret:
            text = secret_text(value)
            if text is not None:
                found.update(f for f in shown_forms(text) if len(f) >= _MIN_SECRET_LEN)

    walk(data, "", False)
    return found


def shown_forms(secret: str) -> set[str]:
    """``secret`` as it may appear in a message: itself, without the whitespace around it (as
    it is used: a key read from a file ends in a line break), and escaped, as Python and the
    HTTP libraries print text and bytes with control characters (``'sk-...\\n'``)."""
    forms = {secret, secret.strip()}
    if not secret.isprintable():
        forms.add(secret.encode("unicode_escape").decode("ascii"))
        forms.add(repr(secret.encode("utf-8", "backslashreplace"))[2:-1])
    return forms


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
        if not isinstance(value, bool) and secret_text(value) in secrets:
            return MASK
        return value

    return walk(data, "", False)


# scheme://user:password@ or scheme://token@ in a URL, wherever it appears in a text
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")


# ?password=...&X-Amz-Signature=...#access_token=... in a URL's query or fragment (libpq, cloud
# storage, OAuth and many SDKs put credentials there): any parameter whose name holds one of
# these words, as a whole name or a part of one (client_secret, sslpassword, apiKey)
_URL_SECRET_PARAM = re.compile(
    r"(?P<name>[?&;#][\w.-]*?(?:pass|pwd|token|key|secret|sig|credential|auth)[\w.-]*=)"
    r"[^&;#\s\"']+",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    # like pip and git: the user name stays readable when there is a password to hide
    return match["scheme"] + (f"{user}:{MASK}@" if colon and user else f"{MASK}@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every occurrence of a known secret value, and the credentials of every
    URL (``https://user:password@host``, ``?password=...``), replaced by ``MASK``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LEN and secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _URL_USERINFO.sub(_mask_userinfo, text)
    if "=" in text:
        text = _URL_SECRET_PARAM.sub(lambda m: m["name"] + MASK, text)
    return text
