"""The URL a DPoP proof's ``htu`` must name (RFC 9449 §4.2, §4.3 step 9), and the one normal form
both sides are compared in.

Three parties believe three URLs: the client used ``https://api.example/x`` at a front proxy,
the proxy called gatekeeper at ``http://10.0.0.5:8080/x``, and the app may believe something
else again. The proof names the client's URL, so that is the one rebuilt here: the scheme and
host the request carries, or a trusted proxy's ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` —
from peers on ``trusted_proxies`` only (a client that could choose them could make a proof for
one site pass at another). The path is the raw path as received, never a decoded or
re-normalised one, so the app's URL and the proof's agree byte for byte.

Normal form (RFC 3986 §6.2.2, §6.2.3, as §4.3 asks): scheme and host lower-cased, the
scheme's default port dropped, an empty path is ``/``, percent-escapes upper-cased and those of
unreserved characters decoded; query and fragment removed. An ``htu`` with userinfo, or that is
not an absolute http(s) URL, normalises to None and never matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from gatekeeper.request import RequestView

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST = re.compile(r"(?:[a-z0-9\-._~]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def _escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _path(path: str) -> str:
    return _ESCAPE.sub(_escape, path) or "/"


def _authority(scheme: str, host: str) -> str | None:
    host = host.strip().lower()
    if not _HOST.fullmatch(host):
        return None
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if colon and name:
        if port == _DEFAULT_PORTS[scheme]:
            return name
        return f"{name}:{int(port)}"
    return host


def normalise(url: str) -> str | None:
    """``url`` in the normal form, or None if it is not an absolute http(s) URL without userinfo."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.netloc:
        return None
    authority = _authority(scheme, parts.netloc)
    if authority is None:
        return None
    return f"{scheme}://{authority}{_path(parts.path)}"


def request_url(request: RequestView, is_trusted: Callable[[str], bool]) -> str | None:
    """The request's external URL in the normal form; None when it names no single host."""
    scheme = request.scheme.lower()
    hosts = request.header_values(b"host")
    if len(hosts) > 1:
        return None  # RFC 9112 §3.2: one Host
    host = hosts[0].decode("latin-1") if hosts else None
    if is_trusted(request.client):
        protos = request.header_values(b"x-forwarded-proto")
        forwarded_hosts = request.header_values(b"x-forwarded-host")
        if len(protos) > 1 or len(forwarded_hosts) > 1:
            return None  # two answers to one question: no single URL (as peers.py refuses them)
        if protos:
            scheme = protos[0].decode("latin-1").strip().lower()  # unknown or a list: refused below
        if forwarded_hosts:
            host = forwarded_hosts[0].decode("latin-1")  # empty or a list: refused below
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    authority = _authority(scheme, host)
    if authority is None:
        return None
    return f"{scheme}://{authority}{_path(request.raw_path.decode('latin-1'))}"
