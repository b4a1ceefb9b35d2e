"""cors: which other origins' pages may call which routes, per route (docs/cors.md).

Each rule is checked when the config loads: an origin is exactly ``scheme://host[:port]`` (no
path, not even ``/``), a one-label wildcard ``scheme://*.host[:port]``, ``null`` (named on its
own) or ``*`` (alone, and never with credentials: Fetch §3.2.5, browsers refuse it anyway).
Methods and header names are lists, never ``*``: what a rule grants is what it names.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from gatekeeper.settings.common import FrozenModel
from gatekeeper.settings.routes import HTTP_METHOD, check_methods, check_path_pattern
from gatekeeper.weborigin import parse_origin, parse_origin_pattern

ANY_ORIGIN = "*"
NULL_ORIGIN = "null"
_TOKEN = HTTP_METHOD  # RFC 9110 §5.1: a field name is a token, as a method is
_ORIGIN_FORM = "scheme://host[:port] (http or https, no path, not even '/')"


def _origin_problem(value: str) -> str | None:
    """Why ``value`` cannot be an entry of ``allowed_origins``; None when it can."""
    if value in (ANY_ORIGIN, NULL_ORIGIN) or parse_origin(value) is not None:
        return None
    if "*" in value:
        if parse_origin_pattern(value) is not None:
            return None
        return (f"{value!r}: a wildcard is '*.' as the whole left-most label of a host of two "
                "labels or more, e.g. https://*.example.com[:port]")
    if not value.isascii():
        return f"{value!r}: write the host in its ASCII (punycode, xn--) form, as browsers send it"
    _, sep, rest = value.partition("://")
    if sep and ("/" in rest or "?" in rest or "#" in rest):
        return f"{value!r} has a path: an origin is {_ORIGIN_FORM}"
    if sep and "@" in rest:
        return f"{value!r} has user info: an origin is {_ORIGIN_FORM}"
    return f"{value!r} is not an origin: {_ORIGIN_FORM}, a wildcard https://*.host, 'null' or '*'"


class CorsRule(FrozenModel):
    """One route's CORS: the first rule whose ``paths`` match the canonical path applies."""

    paths: list[str] = Field(
        min_length=1, max_length=100,
        description="`/api/*` (prefix) or `/exact`, as in `public_paths`; the first rule that "
        "matches applies. gatekeeper answers the route's preflights and owns its CORS headers: "
        "the app's `Access-Control-*` headers are dropped.")
    allowed_origins: list[str] = Field(
        default_factory=list, max_length=100,
        description="Exact origins (`https://app.example.com[:port]`), one-label wildcards "
        "(`https://*.example.com`: `app.example.com`, not `example.com` nor `a.b.example.com`), "
        "`null` (only when named), or `*` alone. Empty: no origin is granted (and the app's "
        "CORS headers are still dropped).")
    allowed_methods: list[str] = Field(
        default_factory=lambda: ["GET", "HEAD"], max_length=32,
        description="Methods a page of an allowed origin may use (`Access-Control-Allow-Methods`); "
        "a real request with another method gets no CORS headers.")
    allowed_headers: list[str] = Field(
        default_factory=list, max_length=64,
        description="Request headers a preflight may ask for (`Access-Control-Allow-Headers`), "
        "e.g. `Authorization`, `Content-Type` (for JSON).")
    exposed_headers: list[str] = Field(
        default_factory=list, max_length=64,
        description="Response headers the page may read beyond the safelisted ones "
        "(`Access-Control-Expose-Headers`), e.g. `X-Request-Id`.")
    allow_credentials: bool = Field(
        default=False,
        description="Cookies (a session, a token cookie) go along and the answer is readable "
        "(`Access-Control-Allow-Credentials: true`); never with `*` or `null`. These origins' "
        "cookie requests also pass the session origin check for these paths and methods.")
    max_age_seconds: int = Field(
        default=600, ge=0, le=86400,
        description="How long a browser may reuse a preflight's answer (Chromium caps it at "
        "7200).")

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [check_path_pattern(p) for p in value]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            problem = _origin_problem(item)
            if problem is not None:
                raise ValueError(problem)
        if ANY_ORIGIN in value and len(value) > 1:
            raise ValueError("'*' stands alone: it already allows every origin")
        keys = [parse_origin(item) or item.lower() for item in value]
        if len(set(keys)) != len(keys):
            raise ValueError("an origin is listed twice")
        return value

    @field_validator("allowed_methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if "*" in value:
            raise ValueError("'*' is not allowed: list the methods")
        return check_methods(value)  # gatekeeper matches and forwards methods upper-case

    @field_validator("allowed_headers", "exposed_headers")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name == "*":
                raise ValueError("'*' is not allowed: list the header names")
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
        lower = [n.lower() for n in value]
        if len(lower) != len(set(lower)):
            raise ValueError("each header name may appear once")
        return lower

    @field_validator("allow_credentials")
    @classmethod
    def _credentials(cls, value: bool, info: ValidationInfo) -> bool:
        origins = info.data.get("allowed_origins") or []
        if value and ANY_ORIGIN in origins:
            raise ValueError("true cannot go with allowed_origins '*' (browsers refuse "
                             "credentials with a wildcard, Fetch §3.2.5): list the origins")
        if value and NULL_ORIGIN in origins:
            raise ValueError("true cannot go with allowed_origins 'null': any page can send "
                             "Origin: null (a sandboxed iframe), so it would be every origin")
        return value

    def covers(self, other: CorsRule) -> bool:
        """Every path ``other`` matches, this rule matches first."""
        return all(any(_pattern_covers(mine, theirs) for mine in self.paths) for theirs in other.paths)


def _pattern_covers(mine: str, theirs: str) -> bool:
    if mine.endswith("*"):
        return theirs.startswith(mine[:-1])
    return theirs == mine
