"""Cookies gatekeeper sets on its answers: one ``SetCookie`` value and the per-request jar.

Anything may add to a request's jar (the session store, the login routes); the gate adds the
jar's ``Set-Cookie`` headers to whatever the answer turns out to be: proxied, redirect or error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_OWS = b" \t"


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One ``Set-Cookie`` (RFC 6265 §4.1); ``max_age=0`` deletes the cookie."""

    name: str
    value: str = field(repr=False)  # a sealed session or a ticket: never logged
    max_age: int | None
    secure: bool
    domain: str | None = None
    path: str = "/"
    http_only: bool = True
    same_site: Literal["Lax", "Strict", "None"] = "Lax"

    def header_value(self) -> bytes:
        parts = [f"{self.name}={self.value}", f"Path={self.path}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
            if self.max_age <= 0:
                parts.append(f"Expires={_EPOCH}")  # clients that predate Max-Age
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts).encode("latin-1")


class CookieJar:
    """The cookies one response must set: at most one per name, the last one set wins (a session
    refreshed and then cleared in the same request is cleared)."""

    __slots__ = ("_cookies",)

    def __init__(self) -> None:
        self._cookies: dict[str, SetCookie] = {}

    def set(self, cookie: SetCookie) -> None:
        self._cookies.pop(cookie.name, None)
        self._cookies[cookie.name] = cookie

    def get(self, name: str) -> SetCookie | None:
        return self._cookies.get(name)

    def __iter__(self) -> Iterator[SetCookie]:
        return iter(list(self._cookies.values()))

    def __len__(self) -> int:
        return len(self._cookies)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"set-cookie", cookie.header_value()) for cookie in self._cookies.values()]


# Directives that let a shared cache store an answer, or that a shared cache obeys instead of
# "private"; and headers by which a CDN is told to cache regardless of Cache-Control (RFC 9213
# CDN-Cache-Control and its vendor-named variants, Surrogate-Control).
_SHARED_DIRECTIVES = frozenset({b"public", b"s-maxage", b"private"})


def _is_cdn_header(name: bytes) -> bool:
    lowered = name.lower()
    return lowered == b"surrogate-control" or lowered.endswith(b"cdn-cache-control")


def private_answer(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` of an answer that now carries our Set-Cookie, made unstorable by a shared
    cache (RFC 9111 §5.2.2.7 private; RFC 6265 §8 on cookies and caches): a CDN or a corporate
    proxy that kept it would hand one user's session to the next. ``no-store`` already says so
    and is kept as is; otherwise ``public`` and ``s-maxage`` go (and a field-qualified ``private``,
    which lets the rest be stored) and ``private`` is added, the app's other directives kept."""
    directives: list[bytes] = []
    rest: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"cache-control":
            directives.extend(d.strip() for d in value.split(b",") if d.strip())
        elif not _is_cdn_header(lowered):
            rest.append((name, value))
    names = [d.split(b"=", 1)[0].strip().lower() for d in directives]
    if b"no-store" in names:
        kept = directives
    else:
        kept = [d for d, n in zip(directives, names, strict=True) if n not in _SHARED_DIRECTIVES]
        kept.insert(0, b"private")
    return [*rest, (b"cache-control", b", ".join(kept))]


def request_cookies(values: Iterable[bytes]) -> dict[str, str]:
    """Cookie name → value of a request's Cookie headers; the first of a repeated name wins (the
    most specific path comes first, RFC 6265 §5.4). Parsed as ``strip_session_cookies`` splits,
    so what gatekeeper reads is exactly what it removes; one split, linear in the header's bytes
    (the standard library's ``SimpleCookie`` is quadratic on quoted backslashes, CVE-2024-7592)."""
    cookies: dict[str, str] = {}
    for value in values:
        for segment in value.split(b";"):
            name, _, rest = segment.partition(b"=")
            key = name.strip(_OWS).decode("latin-1")
            if key:
                cookies.setdefault(key, rest.strip(_OWS).decode("latin-1"))
    return cookies
