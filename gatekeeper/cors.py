"""CORS per route (the Fetch standard's "CORS protocol", §3.2): gatekeeper answers a configured
route's preflights and owns the CORS headers of its answers.

    preflight    OPTIONS with Origin and Access-Control-Request-Method, on a route some ``cors``
                 rule covers: answered here, before authentication, and never forwarded.
                 Origin, method and every requested header allowed: 204 with the grant.
                 Otherwise 403 with no Access-Control-* header (``cors_origin_not_allowed``,
                 ``cors_method_not_allowed``, ``cors_headers_not_allowed``): the browser stops.
    real request the pipeline decides as ever (authenticated, authorized, rate limited); its
                 answer, the app's or gatekeeper's own 401/403/429/5xx, loses every
                 Access-Control-* header the app set and gets the rule's grant when the Origin
                 and the method are allowed — and ``Vary: Origin`` always, since it depends on it.

A preflight grants nothing by itself: it tells the browser it may send the real request, which
is then checked like any other. The grant never widens the policy: it only lets a page of an
allowed origin read an answer the policy already decided. An app that reflects any Origin with
``Access-Control-Allow-Credentials: true`` (a classic hole, PortSwigger's "CORS
vulnerability with basic origin reflection") is overridden on every configured route.

Origins compare in their serialized form (RFC 6454 §6.1: lower case, no default port), after
``weborigin.parse_origin``: an Origin with a path, user info, another scheme, two values or
non-ASCII bytes is no origin and is granted nothing. ``null`` only where a rule names it (any page
can send it from a sandboxed iframe), and never with credentials; ``*`` never with credentials.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gatekeeper.errors import Forbidden
from gatekeeper.headernames import fold
from gatekeeper.paths import PathPatterns
from gatekeeper.principal import Decision, Outcome
from gatekeeper.request import RequestView
from gatekeeper.settings.cors import ANY_ORIGIN, NULL_ORIGIN, CorsRule
from gatekeeper.weborigin import parse_origin, parse_origin_pattern

Header = tuple[bytes, bytes]
Headers = tuple[Header, ...]

# Reason codes (a fixed set: they become metric labels).
PREFLIGHT = "cors_preflight"
ORIGIN_REFUSED = "cors_origin_not_allowed"
METHOD_REFUSED = "cors_method_not_allowed"
HEADERS_REFUSED = "cors_headers_not_allowed"

_VARY_ORIGIN: Headers = ((b"vary", b"Origin"),)
_VARY_PREFLIGHT: Headers = (
    (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),)
_GRANTS_KEPT = 1024  # Origin values whose grant a route keeps: a client making up more pays each time
_CORS_PREFIX = b"access-control-"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2: a field name is a token


def is_preflight(request: RequestView) -> bool:
    """Fetch §3.2.2: an OPTIONS request with ``Origin`` and ``Access-Control-Request-Method``."""
    return (request.method == "OPTIONS" and request.header(b"access-control-request-method") is not None
            and request.header(b"origin") is not None)


def owned_headers(headers: Sequence[Header], grant: Headers) -> list[Header]:
    """An answer's headers without any ``Access-Control-*`` (in any spelling) and with ``grant``:
    on a configured route only gatekeeper's rule speaks for CORS."""
    out = [h for h in headers if not fold(h[0]).startswith(_CORS_PREFIX)]
    out.extend(grant)
    return out


class CorsRoute:
    """One rule, its matching and its header values made once."""

    __slots__ = ("_any", "_exact", "_expose", "_grants", "_headers", "_methods", "_null",
                 "_patterns", "_preflight", "credentials", "name", "paths")

    def __init__(self, rule: CorsRule, name: str) -> None:
        self.name = name  # "cors[0]": the access log's rule
        self.paths = PathPatterns(rule.paths)
        self.credentials = rule.allow_credentials
        origins = rule.allowed_origins
        self._any = ANY_ORIGIN in origins
        self._null = NULL_ORIGIN in origins
        self._exact = frozenset(o for o in (parse_origin(v) for v in origins) if o)
        self._patterns = tuple(p for p in (parse_origin_pattern(v) for v in origins) if p)
        self._methods = frozenset(rule.allowed_methods)
        self._headers = frozenset(rule.allowed_headers)
        self._expose: Headers = (
            ((b"access-control-expose-headers", ", ".join(rule.exposed_headers).encode()),)
            if rule.exposed_headers else ())
        preflight: list[Header] = [
            (b"access-control-allow-methods", ", ".join(rule.allowed_methods).encode())]
        if rule.allowed_headers:
            preflight.append((b"access-control-allow-headers", ", ".join(rule.allowed_headers).encode()))
        preflight.append((b"access-control-max-age", str(rule.max_age_seconds).encode()))
        self._preflight: Headers = (*preflight, *_VARY_PREFLIGHT)
        self._grants: dict[bytes, Headers] = {}  # a real request's Origin value → its headers

    def allows(self, origin: str) -> bool:
        """``origin`` serialized (``parse_origin``'s form) or ``null``."""
        if origin == NULL_ORIGIN:
            return self._null
        return self._any or origin in self._exact or any(p.matches(origin) for p in self._patterns)

    def allows_method(self, method: str) -> bool:
        return method in self._methods

    def _allow_origin(self, raw: bytes) -> Headers | None:
        """Access-Control-Allow-Origin (and -Credentials) for the Origin value ``raw``; None
        when it is malformed or not allowed."""
        text = raw.decode("latin-1")
        origin = NULL_ORIGIN if text == NULL_ORIGIN else parse_origin(text)
        if origin is None or not self.allows(origin):
            return None
        # "*" only stands for every origin without credentials (refused together at config).
        grant: Headers = ((b"access-control-allow-origin", b"*" if self._any else origin.encode()),)
        if self.credentials:
            grant += ((b"access-control-allow-credentials", b"true"),)
        return grant

    def grant(self, request: RequestView) -> Headers:
        """The CORS headers of the answer to a real request: the grant when its one Origin and
        its method are allowed, and ``Vary: Origin`` whatever it is."""
        if request.method not in self._methods:
            return _VARY_ORIGIN
        values = request.header_values(b"origin")
        if len(values) != 1:  # none, or two: which one would a cache key on?
            return _VARY_ORIGIN
        grants = self._grants
        known = grants.get(values[0])
        if known is None:
            allowed = self._allow_origin(values[0])
            known = _VARY_ORIGIN if allowed is None else (*allowed, *self._expose, *_VARY_ORIGIN)
            if len(grants) < _GRANTS_KEPT:
                grants[values[0]] = known
        return known

    def preflight(self, request: RequestView) -> Decision:
        """The answer to a preflight, as a Decision: allowed with the headers to send, or refused
        (403) with only ``Vary``. Nothing of the caller is known or needed."""
        path = request.path
        origins = request.header_values(b"origin")
        allowed = self._allow_origin(origins[0]) if len(origins) == 1 else None
        if allowed is None:
            return _refused(ORIGIN_REFUSED, "this origin may not call this route", path, self.name)
        methods = request.header_values(b"access-control-request-method")
        method = methods[0].strip().decode("latin-1").upper() if len(methods) == 1 else ""
        if method not in self._methods:
            return _refused(METHOD_REFUSED, "this method is not allowed from another origin", path,
                            self.name)
        asked = _requested_headers(request.header_values(b"access-control-request-headers"))
        if asked is None or not asked <= self._headers:
            return _refused(HEADERS_REFUSED, "a requested header is not allowed from another origin",
                            path, self.name)
        return Decision(Outcome.ALLOW, PREFLIGHT, path=path, rule=self.name,
                        response_headers=(*allowed, *self._preflight))


def _refused(code: str, description: str, path: str, rule: str) -> Decision:
    return Decision(Outcome.ERROR, code, error=Forbidden(description, code=code), path=path,
                    rule=rule, response_headers=_VARY_PREFLIGHT)


def _requested_headers(values: list[bytes]) -> frozenset[str] | None:
    """Access-Control-Request-Headers: a comma list of header names (browsers send them lower
    case and sorted, Fetch §4.8); None when an item is no header name."""
    names: set[str] = set()
    for value in values:
        for item in value.split(b","):
            name = item.strip()
            if not name:
                continue
            if not _TOKEN.fullmatch(name):
                return None
            names.add(name.decode("ascii").lower())
    return frozenset(names)


class CorsPolicy:
    """The ``cors`` rules in order: ``route(path)`` is the first whose paths match, or None."""

    __slots__ = ("_routes",)

    def __init__(self, rules: Sequence[CorsRule]) -> None:
        self._routes = tuple(CorsRoute(rule, f"cors[{i}]") for i, rule in enumerate(rules))

    def route(self, path: str) -> CorsRoute | None:
        for route in self._routes:
            if path in route.paths:
                return route
        return None

    def allows_credentials(self, request: RequestView, origin: str) -> bool:
        """May a page of ``origin`` (serialized) send this request with its cookies? For the
        session origin check (origin.py): only a rule with ``allow_credentials`` covering the
        path, the origin and the method — and never a WebSocket handshake (no CORS there)."""
        if request.header(b"upgrade") is not None or request.header(b"sec-websocket-key") is not None:
            return False
        route = self.route(request.path)
        return (route is not None and route.credentials and route.allows_method(request.method)
                and route.allows(origin))
