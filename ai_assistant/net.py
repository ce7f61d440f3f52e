"""Loopback checks: local servers need no key, and a keyless gateway stays on loopback."""

from __future__ import annotations

from typing import Any


def is_loopback_host(host: str) -> bool:
    """localhost, 127.x.x.x, ::1."""
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def is_loopback_url(url: Any) -> bool:
    """True for http://localhost..., http://127.x..., http://[::1]...: servers that need no key."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(str(url)).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)
