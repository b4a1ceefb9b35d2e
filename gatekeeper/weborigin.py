"""Web origins (RFC 6454, "The Web Origin Concept"): parsing and serializing
``scheme://host[:port]`` for http and https, and the one-label wildcard patterns of the ``cors``
rules. Values only: the settings validate ``session.allowed_origins`` and ``cors`` with them,
and the origin check (origin.py) and the CORS rules (cors.py) compare with them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


# -- origin patterns (the ``cors`` rules' ``https://*.example.com``) ---------------------------

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?")
_PATTERN = re.compile(r"(https?)://\*\.([a-z0-9.\-]+)(?::([0-9]{1,5}))?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class OriginPattern:
    """``scheme://*.base[:port]``: the scheme and the port exact, ``*`` exactly one whole label
    left of ``base`` (as a TLS certificate's wildcard, RFC 9525 §6.3): ``https://*.example.com``
    matches ``https://app.example.com`` and nothing else that ends in ``example.com`` —
    neither ``https://example.com`` nor ``https://a.b.example.com``, and never a suffix match
    (``https://evilexample.com``) or another port or scheme."""

    scheme: str
    base: str  # ".example.com": lower case, with its leading dot
    port: int

    def matches(self, origin: str) -> bool:
        """``origin`` as ``parse_origin`` returns it (lower case, no default port)."""
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme != self.scheme or rest.startswith("["):  # an IPv6 literal: no label
            return False
        host, _, port = rest.partition(":")
        if port and not port.isdigit():
            return False
        if (int(port) if port else _DEFAULT_PORTS[scheme]) != self.port:
            return False
        label = host[: -len(self.base)] if host.endswith(self.base) else ""
        return _LABEL.fullmatch(label) is not None


def parse_origin_pattern(value: str) -> OriginPattern | None:
    """``scheme://*.host[:port]`` with ``host`` two labels or more, none of them all digits at
    the end (not an IP address) — else None. Only ASCII: a browser sends an IDN host in its
    punycode form (``xn--…``), so that is the form to write."""
    match = _PATTERN.fullmatch(value)
    if match is None:
        return None
    scheme, base, port = match.groups()
    labels = base.lower().split(".")
    if len(labels) < 2 or labels[-1].isdigit() or not all(_LABEL.fullmatch(x) for x in labels):
        return None
    if serialize_origin(scheme, "x." + base, port) is None:  # a port out of range
        return None
    number = _DEFAULT_PORTS[scheme.lower()] if port is None else int(port)
    return OriginPattern(scheme.lower(), "." + ".".join(labels), number)
