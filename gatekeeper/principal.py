"""Value types that flow through the pipeline: who is calling, and what was decided."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from gatekeeper.errors import GatekeeperError

# "certificate": a verified client certificate and no token (``tls.client_auth: principal``).
Via = Literal["bearer", "session", "certificate", "anonymous"]


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: usable as a cache key
class Principal:
    subject: str
    roles: tuple[str, ...]
    claims: Mapping[str, Any]
    via: Via
    issuer: str = ""
    expires_at: float = 0.0
    token: str | None = field(default=None, repr=False)  # for pass_access_token; never logged
    # For this request's answer (a fresh DPoP-Nonce, RFC 9449 §8.2): never on a cached principal.
    response_headers: tuple[tuple[bytes, bytes], ...] = ()


ANONYMOUS = Principal(subject="anonymous", roles=(), claims={}, via="anonymous")


class Outcome(StrEnum):
    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"  # log in / present a token: 401 or login redirect
    UNAUTHORIZED = "unauthorized"  # known caller, policy says no: 403
    ERROR = "error"  # malformed request or a dependency is down: the error's status


@dataclass(frozen=True, slots=True)
class Decision:
    """What the pipeline concluded; gate.py alone turns it into a response."""

    outcome: Outcome
    reason: str
    principal: Principal = ANONYMOUS
    error: GatekeeperError | None = None
    identity_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    path: str = "/"
    rule: str | None = None  # the policy rule that decided, for the log line
    # Added to the app's answer unless it has its own (a rate limit's budget).
    response_headers: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW
