"""Session fakes shared by the session-store tests: a browser's cookie jar and the session a
login leaves (tests/unit/sessions/, tests/unit/clients/test_redis_topologies.py)."""

from __future__ import annotations

import secrets
from typing import Any

from gatekeeper.cookies import CookieJar
from gatekeeper.exchange import Exchange
from gatekeeper.sessions.model import Session
from tests.support.fakes import T0


def view(headers: list[tuple[bytes, bytes]]) -> Exchange:
    """A GET / carrying ``headers``, as the stores read a request."""
    return Exchange({"type": "http", "method": "GET", "path": "/", "headers": headers}, "/", "test-req", 0.0)


class Browser:
    """Keeps cookies the way a browser does: Set-Cookie stores, Max-Age=0 deletes."""

    def __init__(self, **app_cookies: str) -> None:
        self.cookies: dict[str, str] = dict(app_cookies)

    def accept(self, jar: CookieJar) -> None:
        for cookie in jar:
            if cookie.max_age is not None and cookie.max_age <= 0:
                self.cookies.pop(cookie.name, None)
            else:
                self.cookies[cookie.name] = cookie.value

    def request(self) -> Exchange:
        if not self.cookies:
            return view([])
        header = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return view([(b"cookie", header.encode("latin-1"))])


def login(now: float = T0, *, subject: str = "alice", padding: int = 0) -> Session:
    """A session like one an OIDC login leaves; ``padding`` bytes of claims make it larger."""
    claims: dict[str, Any] = {"sub": subject, "email": f"{subject}@example.com",
                              "roles": ["admin", "dev"], "name": "Ålice Ünicode"}
    if padding:
        claims["groups"] = [secrets.token_hex(16) for _ in range(padding // 35 + 1)]
    return Session.new(subject=subject, provider="keycloak", claims=claims,
                       access_token="at." + secrets.token_urlsafe(600),
                       refresh_token="rt." + secrets.token_urlsafe(300),
                       access_expires_at=int(now) + 300, now=now,
                       id_token="it." + secrets.token_urlsafe(500))
