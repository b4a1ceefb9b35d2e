"""decide(request) -> Decision: authenticate (+ revocation list) → authorize → identity. No
responses, no upstream I/O.

The whole request pipeline is visible here; gate.py turns the Decision into a response and
proxy.py forwards what was allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from gatekeeper.authz import Authorizer
from gatekeeper.errors import Forbidden, GatekeeperError, Unauthenticated
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.origin import by_cookie
from gatekeeper.principal import ANONYMOUS, Decision, Outcome, Principal
from gatekeeper.request import RequestView

if TYPE_CHECKING:
    from gatekeeper.origin import OriginCheck
    from gatekeeper.revocation import RevocationList


class Authenticator(Protocol):
    """``None`` = not mine; raise = bad credentials; a Principal = success (first one wins)."""

    async def authenticate(self, request: RequestView) -> Principal | None: ...


class Pipeline:
    def __init__(
        self,
        authenticators: Sequence[Authenticator],
        authorizer: Authorizer,
        headers: HeaderPolicy,
        *,
        revocations: RevocationList | None = None,
        origins: OriginCheck | None = None,
    ) -> None:
        self._origins = origins
        self._authenticators = tuple(authenticators)
        self._authorizer = authorizer
        self._headers = headers
        self._revocations = revocations

    async def decide(self, request: RequestView) -> Decision:
        try:
            principal = await self._authenticate(request)
            if self._origins is not None and by_cookie(principal, request):
                # The cookie came along by itself: is the page that sent it ours? (CSRF, CSWSH)
                refused = self._origins.refusal(request)
                if refused is not None:
                    error = Forbidden("this request did not come from this site's pages", code=refused)
                    return Decision(Outcome.ERROR, refused, principal, error=error, path=request.path)
            verdict = self._authorizer.authorize(principal, request.method, request.path)
            if not verdict.allowed:
                outcome = (Outcome.UNAUTHENTICATED if principal.via == "anonymous"
                           else Outcome.UNAUTHORIZED)
                return Decision(outcome, verdict.reason, principal, path=request.path,
                                rule=verdict.rule)
            identity = self._headers.identity_headers(principal, principal.token)
        except Unauthenticated as exc:
            return Decision(Outcome.UNAUTHENTICATED, exc.code, error=exc, path=request.path)
        except GatekeeperError as exc:
            return Decision(Outcome.ERROR, exc.code, error=exc, path=request.path)
        return Decision(Outcome.ALLOW, verdict.reason, principal, identity_headers=identity,
                        path=request.path, rule=verdict.rule)

    def identity(self, principal: Principal) -> list[tuple[bytes, bytes]]:
        """The identity headers the app gets for ``principal``; raises ``InvalidToken`` for a
        claim that cannot be sent (control characters, white space at an end)."""
        return self._headers.identity_headers(principal, principal.token)

    async def authenticate(self, request: RequestView) -> Principal:
        """Who is calling (ANONYMOUS when no credentials); raises on bad credentials."""
        return await self._authenticate(request)

    def still_allowed(self, principal: Principal, method: str, path: str, now: float) -> str | None:
        """For a connection that outlives its request (a WebSocket): None while ``principal`` may
        still hold it, else the reason code. In memory, no I/O: the token's or session's expiry,
        the revocation list, the policy as it is now (hot reloads included)."""
        if principal.via != "anonymous" and 0 < principal.expires_at <= now:
            return "expired"
        try:
            self.check_revoked(principal)
        except GatekeeperError as exc:  # revoked, or the list too stale to say: fail closed
            return exc.code
        verdict = self._authorizer.authorize(principal, method, path)
        return None if verdict.allowed else verdict.reason

    def check_revoked(self, principal: Principal) -> None:
        """In memory, no I/O: TokenRevoked (401; SessionRevoked for a session), or
        RevocationStale (503) when the list is older than its staleness bound."""
        if self._revocations is not None and principal.via != "anonymous":
            self._revocations.check(principal)

    async def _authenticate(self, request: RequestView) -> Principal:
        for authenticator in self._authenticators:
            principal = await authenticator.authenticate(request)
            if principal is not None:
                self.check_revoked(principal)
                return principal
        return ANONYMOUS
