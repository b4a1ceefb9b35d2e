"""Where a cookie-authenticated request comes from: cross-site request forgery and cross-site
WebSocket hijacking, defence in depth beyond ``SameSite=Lax``.

``SameSite=Lax`` keeps the session cookie off a cross-*site* POST, but a *site* is the registrable
domain: a page on another subdomain or another port of the same host is the same site, and its
forms, fetches and WebSocket handshakes carry the cookie. A WebSocket handshake is a GET, so Lax
never stops it, and browsers apply no CORS to it (the server must check ``Origin``, RFC 6455
§10.2). So a request authenticated by the session cookie that can change something — any method
but GET, HEAD, OPTIONS, and any upgrade — must come from our own origin or a configured one
(``session.allowed_origins``); otherwise 403. A bearer token in the ``Authorization`` header is not
ambient authority and is unaffected; one read from a cookie (``auth.token_sources: cookie:NAME``)
is, and is judged like the session, and so is a client certificate that authenticates alone.

What browsers send, and what it means here (Fetch §3.1 ``Origin``, Fetch Metadata §2.4):
- ``Origin`` on every WebSocket handshake and every non-GET/HEAD request. ``null`` (sandboxed
  frames, ``data:`` pages, a cross-origin redirect, ``Referrer-Policy: no-referrer`` on a form)
  names nobody: refused. Exactly ``scheme://host[:port]``: a path, a trailing ``/``, user info,
  two values, are no browser's — refused. Scheme and host compare case-insensitively and a
  default port equals none (RFC 6454 §6.1); any other scheme or port is another origin.
- ``Sec-Fetch-Site`` (cross-site, same-site, same-origin, none) on requests to a secure context.
  Without ``Origin``: ``same-origin`` and ``none`` (typed by the user) pass, anything else is
  refused; with our own ``Origin`` it must not contradict it (``cross-site``, ``same-site``).
- Neither: the ``Referer``'s origin, when there is one. None of the three: not a browser that
  could be forged (curl with a copied cookie), or one so old that SameSite is all there is.

Our own origins: those of the configured redirect URLs, and the request's ``Host`` (which a page
cannot choose for the browser) with https, or with the scheme the request arrived on.

A ``cors`` rule with ``allow_credentials`` (cors.py) lets its origins' pages send cookie
requests to its paths with its methods: such an origin passes here for exactly those, so a
CORS grant is never refused by this check, and this check never widens one. It differs from
``session.allowed_origins`` in scope: that list is for every path and method (forms posted by a
partner's pages) and for WebSocket handshakes, where CORS does not apply; a CORS rule without
credentials lets no cookie request through (a browser sends cookies in CORS mode only with
credentials, so one that came along was sent by a form or a no-cors fetch: forgery).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.weborigin import origin_of_url, parse_origin, serialize_origin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_AUTHORITY = re.compile(r"([a-z0-9.\-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?", re.IGNORECASE)

# Reason codes of a refusal (a fixed set: they become metric labels).
ORIGIN_NOT_ALLOWED = "origin_not_allowed"
CROSS_SITE_REQUEST = "cross_site_request"
ORIGIN_AMBIGUOUS = "origin_ambiguous"


def by_cookie(principal: Principal, request: RequestView) -> bool:
    """Did a cookie the browser adds by itself authenticate this request? A session, or a bearer
    token that is not the one in the Authorization header (a page cannot set that header on
    another origin's request without CORS). A client certificate is ambient too: a browser
    that holds one presents it to any page's request (``tls.client_auth: principal``)."""
    if principal.via == "session" or principal.via == "certificate":
        return True
    if principal.via != "bearer" or principal.token is None:
        return False
    for value in request.header_values(b"authorization"):
        scheme, _, rest = value.strip().partition(b" ")
        if scheme.lower() == b"bearer" and rest.strip() == principal.token.encode("latin-1"):
            return False
    return True


def needs_origin_check(request: RequestView) -> bool:
    """Can this request change something? Any method but GET/HEAD/OPTIONS, and any handshake
    (a WebSocket's is a GET; forward-auth sees it by its ``Sec-WebSocket-Key``)."""
    return (request.method not in SAFE_METHODS or request.header(b"sec-websocket-key") is not None
            or request.header(b"upgrade") is not None)


class CredentialedOrigins(Protocol):
    """The ``cors`` rules as this check asks them (cors.py ``CorsPolicy``)."""

    def allows_credentials(self, request: RequestView, origin: str) -> bool: ...


class OriginCheck:
    """``own``: our origins (the redirect URLs'); ``allowed``: other origins allowed to send
    cookie-authenticated unsafe requests (``session.allowed_origins``); ``cors``: the CORS
    rules, whose credentialed origins pass for their paths and methods."""

    def __init__(self, own: Iterable[str], allowed: Iterable[str],
                 cors: CredentialedOrigins | None = None) -> None:
        self._own = frozenset(o for o in (origin_of_url(url) for url in own) if o)
        self._allowed = frozenset(o for o in (parse_origin(v) for v in allowed) if o)
        self._cors = cors

    def refusal(self, request: RequestView) -> str | None:
        """None when the request may go on, else the reason code of a 403."""
        if not needs_origin_check(request):
            return None
        origins = request.header_values(b"origin")
        sites = request.header_values(b"sec-fetch-site")
        if len(origins) > 1 or len(sites) > 1:
            return ORIGIN_AMBIGUOUS  # which one would the app's framework read?
        site = sites[0].strip().lower() if sites else None
        if origins:
            origin = parse_origin(origins[0].decode("latin-1"))
            if origin is not None and (origin in self._allowed or (
                    self._cors is not None and self._cors.allows_credentials(request, origin))):
                return None  # a partner's page: cross-site by design
            if origin is None or origin not in self._own_for(request):
                return ORIGIN_NOT_ALLOWED
            # Our own origin, but the browser says another site started it: do not guess.
            return CROSS_SITE_REQUEST if site in (b"cross-site", b"same-site") else None
        if site is not None:
            return None if site in (b"same-origin", b"none") else CROSS_SITE_REQUEST
        referer = request.header_values(b"referer")
        if referer:
            origin = origin_of_url(referer[0].decode("latin-1")) if len(referer) == 1 else None
            if origin is None or not (origin in self._allowed or origin in self._own_for(request)):
                return ORIGIN_NOT_ALLOWED
        return None

    def _own_for(self, request: RequestView) -> frozenset[str]:
        hosts = request.header_values(b"host")
        match = _AUTHORITY.fullmatch(hosts[0].decode("latin-1")) if len(hosts) == 1 else None
        if match is None:
            return self._own
        host, port = match.groups()
        # Behind a TLS-terminating proxy gatekeeper sees http while the browser used https.
        schemes = {"https", "http" if request.scheme in ("http", "ws") else "https"}
        found = {serialize_origin(scheme, host, port) for scheme in schemes}
        return self._own | {o for o in found if o}
