"""The values of the dev login (login.py): who may log in (users, registered clients) and what a
login hands out and keeps (the authorization request, the login session, the grant shared by a
code and the refresh tokens after it). Plain data; DevLogin holds them behind its lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["DEMO_USERS", "AuthRequest", "Code", "DevClient", "DevUser", "Grant", "LoginSession",
           "RefreshToken"]


@dataclass(frozen=True)
class DevUser:
    username: str
    password: str
    sub: str
    name: str
    email: str
    roles: Sequence[str] = ()


@dataclass(frozen=True)
class DevClient:
    """A registered relying party; ``client_secret=None`` makes it public (auth method "none")."""

    client_id: str
    client_secret: str | None
    redirect_uris: Sequence[str]
    post_logout_redirect_uris: Sequence[str] = ()


DEMO_USERS: tuple[DevUser, ...] = (
    DevUser("alice", "alice-password", "alice", "Alice", "alice@example.test", ("admin", "user")),
    DevUser("bob", "bob-password", "bob", "Bob", "bob@example.test", ("user",)),
)

@dataclass(frozen=True)
class AuthRequest:
    client: DevClient
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str


@dataclass(frozen=True)
class LoginSession:
    """The provider's login session; the browser holds a separate secret naming it."""

    user: DevUser
    auth_time: int
    sid: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True)
class Grant:
    """One login's grant to one client: shared by its code and every refresh token after it."""

    client_id: str
    scope: str
    session: LoginSession
    family: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Code:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass
class RefreshToken:
    grant: Grant
    expires_at: float
    active: bool = True
