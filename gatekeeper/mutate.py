"""What the app receives: strip every spoofable header, then inject gatekeeper's own.

Strip before inject (oauth2-proxy ``pkg/middleware/headers.go``): a client-sent copy of an
identity header is removed in every spelling an app could fold into the same name — any case,
``_`` and ``.`` for ``-`` (CVE-2025-64484, Traefik GHSA-x677). Hop-by-hop headers go too
(RFC 9110 §7.6.1), including those named in ``Connection`` — except our own, which the client
cannot delete that way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from gatekeeper.authn.bearer import claim_at
from gatekeeper.errors import InvalidToken
from gatekeeper.lru import LRU
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import strip_session_cookies
from gatekeeper.settings import Settings, fold_header_name

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"proxy-authorization", b"proxy-authenticate",
})
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                       b"x-forwarded-port", b"forwarded", b"x-real-ip"})
# Headers some apps route by instead of the request line (Symfony, IIS URL Rewrite, ingress
# conventions): the policy decided on the path, so the app must not be told another one.
URL_OVERRIDES = frozenset({b"x-original-url", b"x-rewrite-url", b"x-original-uri",
                           b"x-forwarded-uri", b"x-forwarded-path", b"x-forwarded-prefix",
                           b"x-forwarded-method", b"x-original-method",
                           b"x-http-method-override", b"x-http-method", b"x-method-override"})
# Framing is decided by gatekeeper for the upstream hop, never copied.
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})
ACCESS_TOKEN_HEADER = "X-Auth-Request-Access-Token"
_SET_BY_GATEKEEPER = frozenset({b"date", b"x-request-id"})
_IDENTITY_CACHE_SIZE = 10000
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")


def _fold(name: bytes) -> bytes:
    return name.lower().replace(b"_", b"-").replace(b".", b"-")


class HeaderPolicy:
    """Built once from settings; applied to every request."""

    def __init__(self, settings: Settings) -> None:
        self._identity = [(name.encode("ascii"), claim) for name, claim in settings.headers.items()]
        self._protected = frozenset(
            fold_header_name(n).encode() for n in [*settings.headers, ACCESS_TOKEN_HEADER]
        ) | {b"x-request-id"}
        self._pass_authorization = settings.pass_authorization_header
        # Gatekeeper's own cookies never reach the app: they hold tokens, and a large session
        # makes apps answer 431 (a long-standing oauth2-proxy complaint).
        self._session_cookie = (settings.session.cookie_name if settings.oidc is not None else None)
        self._pass_access_token = settings.pass_access_token
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self._trusted_cache: dict[str, bool] = {}
        # Principals are cached per token, so a hot token's headers are built once. Bounded in
        # bytes too: a value may hold the access token, and its key keeps the claims alive.
        self._identity_cache: LRU[Principal, list[tuple[bytes, bytes]]] = LRU(_IDENTITY_CACHE_SIZE)

    # -- identity ------------------------------------------------------------------------
    def identity_headers(self, principal: Principal, token: str | None) -> list[tuple[bytes, bytes]]:
        """The identity headers for an authenticated principal; refuse unsafe claim values."""
        if principal.via == "anonymous":
            return []
        cached = self._identity_cache.get(principal)
        if cached is not None:
            return cached
        headers: list[tuple[bytes, bytes]] = []
        for name, claim in self._identity:
            value = _claim_text(principal, claim)
            if value is None:
                continue
            if _UNSAFE_VALUE.search(value):
                raise InvalidToken(f"claim {claim} holds control characters", code="unsafe_claim")
            headers.append((name, value.encode("utf-8")))
        if self._pass_access_token and token is not None:
            headers.append((ACCESS_TOKEN_HEADER.encode(), token.encode("ascii")))
        self._identity_cache.put(principal, headers)
        return headers

    # -- the outgoing request ------------------------------------------------------------
    def upstream_headers(
        self,
        request: RequestView,
        identity: Sequence[tuple[bytes, bytes]],
        request_id: str,
        host: bytes,
    ) -> list[tuple[bytes, bytes]]:
        """Client headers minus hop-by-hop, spoofable and framing ones; then ours."""
        named_in_connection: set[bytes] = set()
        for name, value in request.headers:
            if name == b"connection":
                for token in value.split(b","):
                    token = token.strip().lower()
                    if token and _fold(token) not in self._protected:
                        named_in_connection.add(token)
        trusted_peer = self.is_trusted(request.client)
        out: list[tuple[bytes, bytes]] = [(b"host", host)]
        forwarded_for = b""
        for name, value in request.headers:
            if (name in HOP_BY_HOP or name in FRAMING or name in named_in_connection
                    or name in URL_OVERRIDES):
                continue
            if _fold(name) in self._protected:
                continue
            if name in FORWARDED:
                if trusted_peer and name == b"x-forwarded-for":
                    forwarded_for = value if not forwarded_for else forwarded_for + b", " + value
                elif trusted_peer and name != b"forwarded" and name != b"x-real-ip":
                    out.append((name, value))
                continue
            if name == b"authorization" and not self._pass_authorization:
                continue
            if name == b"cookie" and self._session_cookie is not None:
                out.extend(strip_session_cookies([(name, value)], self._session_cookie))
                continue
            out.append((name, value))
        client = request.client.encode("ascii", "replace")
        out.append((b"x-forwarded-for", forwarded_for + b", " + client if forwarded_for else client))
        if not trusted_peer or request.header(b"x-forwarded-proto") is None:
            out.append((b"x-forwarded-proto", request.scheme.encode("ascii")))
        if not trusted_peer or request.header(b"x-forwarded-host") is None:
            out.append((b"x-forwarded-host", request.header(b"host") or host))
        out.append((b"x-request-id", request_id.encode("ascii")))
        out.extend(identity)
        return out

    def is_trusted(self, client: str) -> bool:
        if not self._trusted:
            return False
        known = self._trusted_cache.get(client)
        if known is None:
            try:
                address = ipaddress.ip_address(client)
                known = any(address in network for network in self._trusted)
            except ValueError:
                known = False
            if len(self._trusted_cache) < 10000:
                self._trusted_cache[client] = known
        return known


def _claim_text(principal: Principal, claim: str) -> str | None:
    if claim == "roles":
        return ",".join(principal.roles) if principal.roles else None
    if claim == "sub":
        return principal.subject
    return _as_text(claim_at(principal.claims, claim))


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ",".join(str(v) for v in value) if value else None
    return None


def strip_response_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's response headers minus hop-by-hop ones and those its Connection names.

    ``Date`` and ``X-Request-Id`` go too: gatekeeper (or its server) sets its own, and two
    would be a duplicate.
    """
    named: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            named.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return [
        (name, value) for name, value in headers
        if (lower := name.lower()) not in HOP_BY_HOP and lower not in named
        and lower not in _SET_BY_GATEKEEPER
    ]

