"""Forward-auth: the same pipeline answers ``/oauth2/auth`` for nginx ``auth_request``, Traefik
ForwardAuth, Caddy ``forward_auth`` and Envoy ``ext_authz``. 202 with the identity headers (for
``auth_request_set``), 401 or 403.

Which request is asked about comes from exactly one source per front proxy (``forward_auth:``,
see gatekeeper/settings/forward_auth.py and docs/forward-auth.md), and is believed only from
peers on ``trusted_proxies`` (oauth2-proxy CVE-2026-40575: ``GET /admin`` with
``X-Forwarded-Uri: /public``). The answer must be about what the proxy will serve, so a check is
refused (400) when it is ambiguous:
- the configured header is missing, empty, or present twice (nginx ``auth_request`` copies every
  client header into its subrequest: a client's copy next to the proxy's own is a conflict);
- any other header that some hop reads as "the real URI / method" (``X-Original-URL``,
  ``X-HTTP-Method-Override``…, in any case and with ``_`` or ``.`` for ``-``) says otherwise;
- the URI is not one the canonicalizer accepts for a proxied request (gatekeeper/paths.py), or
  its query holds a raw ``#``, space, control or non-ASCII byte (RFC 3986 §3.4);
- its path holds a dot segment or ``//``: the proxy forwards the client's bytes, not gatekeeper's
  canonical path, and apps route ``/admin/../public/x`` under ``/admin`` (``path_as_sent``);
- the method is not an upper-case standard method (RFC 9110 §9.1: methods are case-sensitive),
  or the query names another one (``_method=DELETE``: ``refuse_method_override``).
Only here are those headers read; on the proxy path they never take part (CVE-2025-54576).

An absolute original URI (ingress-nginx's ``X-Original-URL``) also gives the request's host, in
place of the check's own ``Host`` and any ``X-Forwarded-Host`` (which ``auth_request`` may have
copied from the client), and its scheme unless the proxy sends ``X-Forwarded-Proto``: a DPoP
proof's ``htu`` is checked against them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gatekeeper.edge.method_override import refuse_method_override
from gatekeeper.errors import BadRequest
from gatekeeper.exchange import Exchange
from gatekeeper.headernames import fold
from gatekeeper.paths import check_query, path_as_sent
from gatekeeper.settings.forward_auth import METHOD_CARRIERS, URI_CARRIERS, ForwardAuthSettings

PATH = "/oauth2/auth"
_PATH_BYTES = PATH.encode("ascii")
_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS", b"TRACE",
                      b"CONNECT"})
# Absolute-form (ingress-nginx's X-Original-URL is ``$scheme://$http_host$request_uri``): an
# http(s) scheme and a plain host[:port], no userinfo, then the path, which must follow: the
# Host is the client's, and nginx accepts ``app.example:80?`` (routing it as app.example), so a
# '?' there would make ``/admin/x`` the query of the path ``/``.
_ABSOLUTE = re.compile(rb"(?i:https?)://(?:[A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
                       rb"(?=/)")


_ORIGIN_HEADERS = frozenset({b"host", b"x-forwarded-host"})


def _bad(reason: str, code: str) -> BadRequest:
    return BadRequest(f"forward-auth: {reason}", code=code)


class ForwardAuth:
    """Reads the original request of a forward-auth check; built once from the settings."""

    def __init__(self, settings: ForwardAuthSettings, is_trusted: Callable[[str], bool]) -> None:
        self._is_trusted = is_trusted  # trusted_proxies (gatekeeper/mutate.py)
        uri_header, method_header = settings.sources()
        self._uri_name = _wire_name(uri_header)
        self._method_name = _wire_name(method_header)
        # Folded names (the one folding function) of every carrier, configured one included.
        self._uri_carriers = _folded(URI_CARRIERS, uri_header)
        self._method_carriers = _folded(METHOD_CARRIERS, method_header)

    def handles(self, scope: dict[str, Any]) -> bool:
        """Is this a forward-auth check? Envoy asks at ``/oauth2/auth`` + the original path."""
        path: str = scope["path"]
        return path == PATH or (self._uri_name is None and path.startswith(PATH + "/"))

    def original(self, scope: dict[str, Any], request_id: str, started: float) -> Exchange:
        """The exchange about the request the front proxy asks about (this check's id, start and
        cookie jar); 400 when it is not certain, or the peer is not a trusted proxy."""
        client = scope.get("client")
        if not self._is_trusted(client[0] if client else ""):
            raise _bad("answers only peers on trusted_proxies", "untrusted_forward_auth")
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        uri = (_own_target(scope) if self._uri_name is None
               else _only(headers, self._uri_name, "uri"))
        method = (str(scope.get("method", "")).encode("latin-1") if self._method_name is None
                  else _only(headers, self._method_name, "method"))
        _agree(headers, self._uri_carriers, self._uri_name, uri, "uri")
        _agree(headers, self._method_carriers, self._method_name, method, "method")
        if method not in _METHODS:
            raise _bad("unknown original method", "bad_original_method")
        raw_path, query = split_uri(uri)
        path = path_as_sent(raw_path)
        check_query(query)
        refuse_method_override(query)
        # No TLS extension: a client certificate here is the front proxy's, not the caller's.
        original = dict(scope, method=method.decode("ascii"), path=path, raw_path=raw_path,
                        query_string=query, extensions={})
        absolute = _ABSOLUTE.match(uri)
        if absolute is not None:
            # The proxy wrote the URL the client used (ingress-nginx: $scheme://$http_host…):
            # its host is the request's — a DPoP proof's htu names it (RFC 9449 §4.3) — not
            # this check's own Host, nor an X-Forwarded-Host that auth_request copied from the
            # client. Its scheme too, unless the trusted peer sends X-Forwarded-Proto: behind a
            # load balancer that ends TLS, nginx's $scheme is http while the client used https
            # (a client's copy could only swap http and https for the same host and path).
            scheme, _, authority = absolute.group().partition(b"://")
            original["scheme"] = scheme.decode("ascii").lower()
            original["headers"] = [(key, value) for key, value in headers
                                   if key not in _ORIGIN_HEADERS] + [(b"host", authority)]
        return Exchange(original, path, request_id, started)


def split_uri(uri: bytes) -> tuple[bytes, bytes]:
    """(raw path, query) of an origin-form or http(s) absolute-form URI with a path; 400 else.

    ``//host/x`` is refused: a URL parser reads it as another host (RFC 3986 §4.2), a server as a
    path. Path and query are checked by the caller (path_as_sent, check_query)."""
    if not uri.startswith(b"/"):
        absolute = _ABSOLUTE.match(uri)
        if absolute is None:
            raise _bad("original URI is neither a path nor an http(s) URL", "bad_original_uri")
        uri = uri[absolute.end():]
    if uri.startswith(b"//"):
        raise _bad("original URI starts with '//' (scheme-relative)", "bad_original_uri")
    raw_path, _, query = uri.partition(b"?")
    return raw_path, query


def _folded(names: tuple[str, ...], configured: str | None) -> frozenset[bytes]:
    return frozenset(fold(n.encode("ascii")) for n in (*names, *([configured] if configured else [])))


def _wire_name(name: str | None) -> bytes | None:
    return name.lower().encode("ascii") if name is not None else None  # ASGI lower-cases names


def _only(headers: list[tuple[bytes, bytes]], name: bytes, what: str) -> bytes:
    values = [value for key, value in headers if key == name]
    if not values or not values[0]:
        raise _bad(f"no original {what} in {name.decode()}", f"no_original_{what}")
    if len(values) > 1:
        raise _bad(f"{name.decode()} sent more than once", f"duplicate_original_{what}")
    return values[0]


def _agree(headers: list[tuple[bytes, bytes]], carriers: frozenset[bytes], source: bytes | None,
           value: bytes, what: str) -> None:
    """Every other carrier of the URI (or method), in any spelling, must say the same thing."""
    for key, other in headers:
        if key != source and other != value and fold(key) in carriers:
            raise _bad(f"{key.decode('latin-1')} disagrees with the configured source",
                       f"conflicting_original_{what}")


def _own_target(scope: dict[str, Any]) -> bytes:
    """Envoy ext_authz (http_service, path_prefix /oauth2/auth): the original target follows."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")
    if not raw.startswith(_PATH_BYTES + b"/"):
        raise _bad(f"no original path after {PATH}", "no_original_uri")
    query: bytes = scope.get("query_string", b"")
    return raw[len(_PATH_BYTES):] + (b"?" + query if query else b"")
