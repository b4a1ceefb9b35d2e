"""The session store interface (oauth2-proxy ``pkg/apis/sessions/interfaces.go``) and the cookies a
store asks the response to set.

A store never writes a response itself: it reads the request and adds ``SetCookie`` values to a
``CookieJar`` that the caller turns into ``Set-Cookie`` headers on whatever it answers (the
proxied response, a redirect, an error page). The cookie store puts the sealed session in the
jar; a Redis store puts an opaque ticket there and the session in Redis — callers cannot tell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gatekeeper.request import RequestView
from gatekeeper.sessions.model import Session

Clock = Callable[[], float]  # epoch seconds; tests inject a fake one

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


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


class SessionStore(Protocol):
    """Where sessions live between requests. Every method may add cookies to ``cookies``; the
    caller sends them with its response, whatever that response is."""

    async def save(self, request: RequestView, cookies: CookieJar, session: Session) -> None:
        """Store ``session`` for this browser, replacing any session the request carries.
        Raise ``SessionTooLarge`` when it cannot be stored."""

    async def load(self, request: RequestView, cookies: CookieJar) -> Session | None:
        """``None``: the request carries no session. A ``Session``: valid, within both
        lifetimes; its last-seen time may have been refreshed (cookies added). Raise
        ``SessionInvalid`` when the request carries a session that cannot be used — the store
        has then already added the cookies that make the browser drop it."""

    async def clear(self, request: RequestView, cookies: CookieJar) -> None:
        """End the request's session (sign-out): forget it and expire every cookie it used."""

    async def verify_connection(self) -> None:
        """Raise when the backing service is unreachable (readiness); the cookie store has none."""
