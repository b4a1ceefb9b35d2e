"""Forward-auth: the same pipeline answers ``/oauth2/auth`` for nginx ``auth_request`` and Traefik
ForwardAuth. 202 with the identity headers (for ``auth_request_set``), 401 or 403.

The original method and URI come from the ingress: ``X-Forwarded-Method``/``X-Forwarded-Uri``
(Traefik) or ``X-Original-Method``/``X-Original-URI`` (nginx). They are believed only from
peers on ``trusted_proxies`` (oauth2-proxy CVE-2026-40575: ``GET /admin`` with
``X-Forwarded-Uri: /public``); from anyone else the request is refused. Only here are those
headers read; on the proxy path they never take part in a decision (CVE-2025-54576).
"""

from __future__ import annotations

from typing import Any

from gatekeeper.errors import BadRequest
from gatekeeper.paths import canonical_path
from gatekeeper.request import RequestView

PATH = "/oauth2/auth"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def original_request(scope: dict[str, Any], peer_trusted: bool) -> RequestView:
    """A view of the request the ingress is asking about; 400 when it did not say."""
    if not peer_trusted:
        raise BadRequest("forward-auth answers only peers on trusted_proxies",
                         code="untrusted_forward_auth")
    headers = scope["headers"]
    uri = _first(headers, (b"x-forwarded-uri", b"x-original-uri", b"x-original-url"))
    if uri is None:
        raise BadRequest("forward-auth needs X-Forwarded-Uri or X-Original-URI", code="no_original_uri")
    method = (_first(headers, (b"x-forwarded-method", b"x-original-method")) or b"GET").upper()
    method_text = method.decode("latin-1")
    if method_text not in _METHODS:
        raise BadRequest("unknown original method", code="bad_original_method")
    raw_path, _, query = uri.partition(b"?")
    original = dict(scope, method=method_text, raw_path=raw_path, query_string=query)
    return RequestView(original, canonical_path(raw_path))


def _first(headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]) -> bytes | None:
    for wanted in names:
        for name, value in headers:
            if name == wanted:
                return value
    return None
