"""Cookies gatekeeper sets on its answers: one ``SetCookie`` value and the per-request jar.

Anything may add to a request's jar (the session store, the login routes); the gate adds the
jar's ``Set-Cookie`` headers to whatever the answer turns out to be: proxied, redirect or error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

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
