"""The session store interface (oauth2-proxy ``pkg/apis/sessions/interfaces.go``) and the cookies a
store asks the response to set.

A store never writes a response itself: it reads the request and adds ``SetCookie`` values to a
``CookieJar`` that the caller turns into ``Set-Cookie`` headers on whatever it answers (the
proxied response, a redirect, an error page). The cookie store puts the sealed session in the
jar; a Redis store puts an opaque ticket there and the session in Redis — callers cannot tell.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from gatekeeper.cookies import CookieJar, SetCookie
from gatekeeper.request import RequestView
from gatekeeper.sessions.model import Session

Clock = Callable[[], float]  # epoch seconds; tests inject a fake one

__all__ = ["Clock", "CookieJar", "SessionStore", "SetCookie"]

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

    async def clear(self, request: RequestView, cookies: CookieJar, *, must_forget: bool = False) -> None:
        """End the request's session: forget it and expire every cookie it used. ``must_forget``
        (sign-out): when the stored copy cannot be deleted, raise ``SessionStoreUnavailable``
        and add no cookie — a sign-out that only drops the cookie leaves any copy of the cookie
        working. Otherwise (a session already unusable) forgetting is best effort."""

    async def verify_connection(self) -> None:
        """Raise when the backing service is unreachable (readiness); the cookie store has none."""

    async def refresh_exclusively(
        self, request: RequestView, session: Session,
        refresh: Callable[[Session], Awaitable[Session]],
    ) -> Session:
        """Run ``refresh`` for ``session`` once across every replica sharing this store, and
        return the refreshed session (the one another replica stored, when it won the race)."""
