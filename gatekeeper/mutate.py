"""What the app receives: strip every spoofable header, then inject gatekeeper's own.

Strip before inject (oauth2-proxy ``pkg/middleware/headers.go``). Every strip list — identity,
hop-by-hop (RFC 9110 §7.6.1) and those ``Connection`` names, framing, forwarding claims, other
auth proxies' identity headers and URL/method overrides — compares names folded by
``headernames.fold``, so no spelling an app could read as the same name gets through
(CVE-2025-64484, Traefik GHSA-x677). ``Connection`` cannot delete our own headers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.cookies import strip_cookies
from gatekeeper.errors import InvalidToken
from gatekeeper.headernames import (
    FORWARDED_FROM_TRUSTED,
    HOP_BY_HOP,
    NEVER_FORWARDED,
    fold,
    is_foreign_trace,
    never_from_client,
)
from gatekeeper.lru import LRU
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import owns
from gatekeeper.settings import HeaderSettings
from gatekeeper.tokens.claims import claim_at, is_list_member
from gatekeeper.tracecontext import TraceContext

ACCESS_TOKEN_HEADER = "X-Auth-Request-Access-Token"
_SET_BY_GATEKEEPER = frozenset({b"date", b"x-request-id"})
_IDENTITY_CACHE_SIZE = 10000
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")
_NAMES_KEPT = 1024  # header names (and Connection values) whose handling is kept per policy

# What upstream_headers does with a client header (HeaderPolicy._kind): sentinels, compared by
# identity in the loop.
_KEEP, _DROP, _HOST, _CONNECTION, _COOKIE, _FROM_TRUSTED = (object() for _ in range(6))


class HeaderPolicy:
    """Built once from the header section (``Settings.header_section()``); applied to every request."""

    def __init__(self, settings: HeaderSettings) -> None:
        self._identity = [(name.encode("ascii"), claim) for name, claim in settings.headers.items()]
        # Ours, so every client copy goes (and Connection cannot name them). The assertion's
        # header is among them even when its name is no other auth proxy's.
        ours = [*settings.headers, ACCESS_TOKEN_HEADER]
        if settings.assertion_header is not None:
            ours.append(settings.assertion_header)
        if settings.certificate_header is not None:
            ours.append(settings.certificate_header)
        ours.extend(settings.exchange_headers)
        self._protected = frozenset(fold(n.encode("ascii")) for n in ours) | {b"x-request-id"}
        self._pass_authorization = settings.pass_authorization_header
        # Gatekeeper's own cookies never reach the app: they hold tokens, and a large session
        # makes apps answer 431 (a long-standing oauth2-proxy complaint).
        self._session_cookie = settings.session_cookie
        # Without pass_authorization_header the app gets no caller's token as sent: a token read
        # from a cookie (``cookie:NAME``) is that token too (RFC 6750 §5.3: bearer tokens go
        # only where they must). Compared folded, as bearer.py reads them.
        self._token_cookies = (frozenset() if settings.pass_authorization_header else
                               frozenset(fold(n.encode("latin-1")) for n in settings.token_cookies))
        self._pass_access_token = settings.pass_access_token
        self._strip_foreign_traces = settings.strip_foreign_traces
        self._trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self._trusted_cache: dict[str, bool] = {}
        # Principals are cached per token, so a hot token's headers are built once. Bounded in
        # bytes too: a value may hold the access token, and its key keeps the claims alive.
        self._identity_cache: LRU[Principal, list[tuple[bytes, bytes]]] = LRU(_IDENTITY_CACHE_SIZE)
        self._kinds: dict[bytes, object] = {}  # client header name → what is done with it
        self._connection_values: dict[bytes, frozenset[bytes]] = {}
        self._response_fates: dict[bytes, object] = {}  # app's header name → _KEEP, _DROP…
        self._response_connection_values: dict[bytes, frozenset[bytes]] = {}

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
            # Control characters could split the header; white space at either end is dropped by
            # every HTTP parser (RFC 9110 §5.5) and by an app's strip(): " alice" would reach
            # the app as "alice", whom a revocation or the app's own rules name.
            if _UNSAFE_VALUE.search(value) or value != value.strip():
                raise InvalidToken(f"claim {claim} holds control characters or white space at "
                                   "an end", code="unsafe_claim")
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
        trace: TraceContext | None = None,
    ) -> list[tuple[bytes, bytes]]:
        """Client headers minus hop-by-hop, spoofable and framing ones; then ours.

        Every comparison is on folded names (``headernames.fold``): ``X_Forwarded_For``,
        ``x.original.url`` and ``Connection: x_foo`` mean to an app what their canonical
        spellings mean. One pass over the raw list: what a name is (``_kind``) depends on the
        name alone, so it is worked out once per name and kept.
        """
        out: list[tuple[bytes, bytes]] = [(b"host", host)]
        kinds = self._kinds
        client_host: bytes | None = None
        named: frozenset[bytes] = frozenset()  # what Connection names: dropped, below
        trusted_peer: bool | None = None
        forwarded_for = b""
        kept: set[bytes] = set()  # forwarding headers kept from a trusted proxy
        for name, value in request.headers:
            kind = kinds.get(name)
            if kind is None:
                kind = self._kind(name)
            if kind is _KEEP:
                out.append((name, value))
            elif kind is _DROP:
                continue
            elif kind is _HOST:
                if client_host is None:
                    client_host = value
            elif kind is _CONNECTION:
                named = named | self._connection_names(value)
            elif kind is _COOKIE:
                out.extend(strip_cookies([(name, value)], self._owned_cookie))
            else:  # _FROM_TRUSTED: X-Forwarded-For/-Proto/-Host/-Port, canonical spelling
                if trusted_peer is None:
                    trusted_peer = self.is_trusted(request.client)
                if trusted_peer:
                    kept.add(name)
                    if name == b"x-forwarded-for":
                        forwarded_for = value if not forwarded_for else forwarded_for + b", " + value
                    else:
                        out.append((name, value))
        if named:  # rare: Connection names a header that would otherwise pass (RFC 9110 §7.6.1)
            out[1:] = [(n, v) for n, v in out[1:] if fold(n) not in named]
            kept -= named
            if b"x-forwarded-for" in named:
                forwarded_for = b""
        client = request.client.encode("ascii", "replace")
        out.append((b"x-forwarded-for", forwarded_for + b", " + client if forwarded_for else client))
        if b"x-forwarded-proto" not in kept:
            out.append((b"x-forwarded-proto", request.scheme.encode("ascii")))
        if b"x-forwarded-host" not in kept:
            out.append((b"x-forwarded-host", client_host or host))
        out.append((b"x-request-id", request_id.encode("ascii")))
        out.extend(identity)
        if trace is not None:
            out.extend(trace.headers())
        return out

    def _kind(self, name: bytes) -> object:
        """What ``upstream_headers`` does with a client header called ``name`` (kept per name,
        up to a bound: a client making up names gets them worked out each time)."""
        folded = fold(name)
        if name == b"host":
            kind = _HOST  # not forwarded (ours is), but X-Forwarded-Host says what it was
        elif folded == b"connection":
            kind = _CONNECTION
        elif (folded in NEVER_FORWARDED or folded in self._protected
              or (self._strip_foreign_traces and is_foreign_trace(folded))):
            kind = _DROP
        elif never_from_client(folded):
            # From a trusted proxy, X-Forwarded-For/-Proto/-Host/-Port in their canonical
            # spelling only (ASGI names are lower case: ``name == folded`` means exactly that).
            kind = _FROM_TRUSTED if name == folded and folded in FORWARDED_FROM_TRUSTED else _DROP
        elif name == b"authorization":
            kind = _KEEP if self._pass_authorization else _DROP
        elif name == b"cookie" and (self._session_cookie is not None or self._token_cookies):
            kind = _COOKIE
        else:
            kind = _KEEP
        if len(self._kinds) < _NAMES_KEPT:
            self._kinds[name] = kind
        return kind

    def _owned_cookie(self, name: bytes) -> bool:
        """Is the cookie ``name`` gatekeeper's (a session chunk or login state) or, when the
        token is not passed on, one a bearer token is read from?"""
        return ((self._session_cookie is not None
                 and owns(name, self._session_cookie.encode("latin-1")))
                or (bool(self._token_cookies) and fold(name) in self._token_cookies))

    def _connection_names(self, value: bytes) -> frozenset[bytes]:
        """The folded names a Connection value lists that would otherwise be forwarded (ours are
        never among them: ``Connection`` cannot delete gatekeeper's own headers)."""
        names = self._connection_values.get(value)
        if names is None:
            names = frozenset(
                named for token in value.split(b",")
                if (named := fold(token.strip())) and named not in self._protected
                and named not in NEVER_FORWARDED)
            if len(self._connection_values) < _NAMES_KEPT:
                self._connection_values[value] = names
        return names

    def response_headers(self, headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``strip_response_headers`` in one pass, each name's fate worked out once and kept."""
        out: list[tuple[bytes, bytes]] = []
        fates = self._response_fates
        named: frozenset[bytes] = frozenset()
        for name, value in headers:
            fate = fates.get(name)
            if fate is None:
                fate = _response_fate(name)
                if len(fates) < _NAMES_KEPT:
                    fates[name] = fate
            if fate is _KEEP:
                out.append((name, value))
            elif fate is _CONNECTION:
                named = named | self._response_connection_names(value)
        if named:  # rare: the app's Connection names a header it sent (RFC 9110 §7.6.1)
            out = [(n, v) for n, v in out if fold(n) not in named]
        return out

    def _response_connection_names(self, value: bytes) -> frozenset[bytes]:
        """The folded names an app's Connection value lists, less those dropped anyway
        (``Connection: keep-alive`` names nothing left to remove)."""
        names = self._response_connection_values.get(value)
        if names is None:
            names = frozenset(
                named for token in value.split(b",")
                if (named := fold(token.strip())) and _response_fate(named) is _KEEP)
            if len(self._response_connection_values) < _NAMES_KEPT:
                self._response_connection_values[value] = names
        return names

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
        return principal.subject  # issuer-namespaced (subjects.py): one identity per issuer
    if claim == "iss":
        return principal.issuer or None  # the issuer that verified it, not a copied claim
    if claim == "email" and not email_verified(principal.claims):
        return None
    return _as_text(claim_at(principal.claims, claim))


def email_verified(claims: Mapping[str, Any]) -> bool:
    """OIDC Core §5.1: ``email_verified`` false means the provider did not check that address;
    many let users type in any (the "nOAuth" takeover of apps keyed on e-mail). Only a claim
    that is absent, ``true`` or ``"true"`` (some providers send strings) lets it through."""
    verified = claims.get("email_verified", True)
    return verified is True or verified == "true"


def _as_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        # Joined as a comma list: a member the app would read as another is left out.
        members = [str(v) for v in value if not isinstance(v, str) or is_list_member(v)]
        return ",".join(members) if members else None
    return None


def strip_response_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's response headers minus hop-by-hop ones and those its Connection names.

    ``Date`` and ``X-Request-Id`` go too: gatekeeper (or its server) sets its own, and two
    would be a duplicate. (The proxy uses ``HeaderPolicy.response_headers``: the same, with
    each name's fate kept.)
    """
    named: set[bytes] = set()
    for name, value in headers:
        if fold(name) == b"connection":
            named.update(fold(t.strip()) for t in value.split(b",") if t.strip())
    return [(name, value) for name, value in headers
            if _response_fate(name) is _KEEP and fold(name) not in named]


def _response_fate(name: bytes) -> object:
    folded = fold(name)
    if folded == b"connection":
        return _CONNECTION
    return _DROP if folded in HOP_BY_HOP or folded in _SET_BY_GATEKEEPER else _KEEP
