"""What the login routes need from the rest of gatekeeper: three small Protocols, not the pipeline.

The pipeline satisfies all three; a test can hand in a two-line fake for any of them.
"""

from __future__ import annotations

from typing import Protocol

from gatekeeper.exchange import Exchange
from gatekeeper.principal import Principal


class Authenticate(Protocol):
    """Who is calling: ANONYMOUS without credentials; raises ``Unauthenticated`` for bad ones,
    another ``GatekeeperError`` when a dependency (keys, session store) cannot say."""

    async def authenticate(self, request: Exchange) -> Principal: ...


class RevocationCheck(Protocol):
    """In memory: raises ``TokenRevoked`` for a revoked subject, ``RevocationStale`` (503) when
    the revocation list is too old to say."""

    def check_revoked(self, principal: Principal) -> None: ...


class IdentityCheck(Protocol):
    """The identity headers the app would get; raises ``InvalidToken`` for a claim that cannot
    be sent (control characters, white space at an end)."""

    def identity(self, principal: Principal) -> list[tuple[bytes, bytes]]: ...


class LoginChecks(Authenticate, RevocationCheck, IdentityCheck, Protocol):
    """The three together (the pipeline), as the wiring receives them."""
