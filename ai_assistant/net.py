"""Loopback checks: local servers need no key, and a keyless gateway stays on loopback.

Loopback is decided from addresses, never from how a name starts: ``127.attacker.example`` is a
name anyone can point anywhere, so only IP literals in 127.0.0.0/8 or ::1 (also IPv4-mapped) and
the name ``localhost`` count.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def is_loopback_host(host: str) -> bool:
    """``localhost``, an address in 127.0.0.0/8, ``::1`` (``[::1]`` too), ``::ffff:127.x``."""
    host = host.strip().removeprefix("[").removesuffix("]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: it may resolve anywhere
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def is_loopback_url(url: Any) -> bool:
    """True for http://localhost..., http://127.x..., http://[::1]...: servers that need no key."""
    from urllib.parse import urlsplit

    try:
        host = urlsplit(str(url)).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)
