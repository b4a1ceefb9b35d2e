"""When a session ends: an absolute lifetime from login and an idle lifetime from last use.

Shared by every store, so the cookie and Redis stores expire sessions the same way. The last-seen
time is rewritten at most once per ``touch_seconds``: a cookie store would otherwise send a new
Set-Cookie on every request, and a Redis store a write. The price is idle-timeout precision:
a session ends between ``idle_seconds - touch_seconds`` and ``idle_seconds`` after its last use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gatekeeper.errors import SessionInvalid
from gatekeeper.sessions.model import Session
from gatekeeper.settings import SessionSettings


@dataclass(frozen=True, slots=True)
class Lifetime:
    absolute_seconds: int
    idle_seconds: int
    touch_seconds: int = 60

    @classmethod
    def from_settings(cls, settings: SessionSettings, *, touch_seconds: int = 60) -> Lifetime:
        return cls(settings.lifetime_seconds, settings.idle_seconds, touch_seconds)

    def check(self, session: Session, now: float) -> None:
        """Raise ``SessionInvalid`` (code ``session_expired`` or ``session_idle``) when it ended."""
        if now >= session.created_at + self.absolute_seconds:
            raise SessionInvalid("session reached its absolute lifetime", code="session_expired")
        if now >= session.last_seen_at + self.idle_seconds:
            raise SessionInvalid("session was idle too long", code="session_idle")

    def touched(self, session: Session, now: float) -> Session | None:
        """The session seen ``now``, or None while its stored last-seen time is recent enough."""
        if now - session.last_seen_at < self.touch_seconds:
            return None
        return dataclasses.replace(session, last_seen_at=int(now))

    def remaining(self, session: Session, now: float) -> int:
        """Seconds until the absolute end: a cookie's Max-Age."""
        return max(0, session.created_at + self.absolute_seconds - int(now))

    def ttl(self, session: Session, now: float) -> int:
        """Seconds a server-side copy must live: to the idle end, never past the absolute end."""
        idle_left = session.last_seen_at + self.idle_seconds - int(now)
        return max(0, min(self.remaining(session, now), idle_left))
