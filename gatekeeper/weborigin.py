"""Web origins (RFC 6454, "The Web Origin Concept"): parsing and serializing
``scheme://host[:port]`` for http and https. Values only: the settings validate
``session.allowed_origins`` with them and the origin check (origin.py) compares with them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(r"(https?)://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", re.IGNORECASE)


def serialize_origin(scheme: str, host: str, port: str | None) -> str | None:
    """RFC 6454 §6.1: lower case, the default port dropped; None for a port out of range."""
    scheme, host = scheme.lower(), host.lower()
    number = _DEFAULT_PORTS[scheme] if port is None else int(port)
    if not 0 < number < 65536:
        return None
    return f"{scheme}://{host}" + ("" if number == _DEFAULT_PORTS[scheme] else f":{number}")


def parse_origin(value: str) -> str | None:
    """``scheme://host[:port]`` normalised (lower case, default port dropped); None when
    ``value`` is not exactly an http(s) origin (``null``, a path, user info, another scheme)."""
    match = _ORIGIN.fullmatch(value)
    return None if match is None else serialize_origin(*match.groups())


def origin_of_url(url: str) -> str | None:
    """The origin of an absolute http(s) URL (a ``Referer``, a configured redirect URL)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return serialize_origin(parts.scheme, host, None if port is None else str(port))
