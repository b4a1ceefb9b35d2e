"""decide(exchange) -> Decision: the whole chain, one stage after another, each a small Protocol.

    authenticate    the first authenticator that takes responsibility wins (bearer, session)
    revocation      a revoked token or session is refused (401); a session's cookie and stored
                    copy are ended on the way out (``RevokedSessionEnder``)
    origin          credentials a browser sent by itself must come from our pages (CSRF, CSWSH)
    authorize       the policy: allowed, or 401 (anonymous) / 403 (someone)
    rate limit      a budget per caller on the configured paths: 429
    mutate          the identity headers the app (or the ingress) gets
    assert          a signed JWT for the app, bound to this request (gatekeeper/assertion/)
    token exchange  the app's own token for a downstream audience (RFC 8693), on the routes
                    configured for one (gatekeeper/token_exchange/)

The same chain serves a proxied request, a WebSocket handshake and a forward-auth check
(edge/gate.py only dispatches and renders). Stages decide, never answer: a stage that refuses
raises a ``GatekeeperError``, which becomes the Decision's error; edge/responses.py turns it into
the answer. A stage that is not configured costs one ``is None`` test, never an await.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gatekeeper.authz import Authorizer, Verdict
from gatekeeper.errors import Forbidden, GatekeeperError, RateLimited, SessionRevoked, Unauthenticated
from gatekeeper.exchange import Exchange
from gatekeeper.origin import by_cookie
from gatekeeper.principal import ANONYMOUS, Decision, Outcome, Principal
from gatekeeper.request import RequestView
from gatekeeper.tracing import NO_TRACING, Tracing

Headers = tuple[tuple[bytes, bytes], ...]


class Authenticator(Protocol):
    """``None`` = not mine; raise = bad credentials; a Principal = success (first one wins).
    Takes the exchange: a session refreshed on the way sets its cookie on the answer."""

    async def authenticate(self, request: Exchange) -> Principal | None: ...


class RevocationCheck(Protocol):
    """In memory, no I/O: raise ``TokenRevoked`` (``SessionRevoked`` for a session), or
    ``RevocationStale`` (503) when the list is too old to say (gatekeeper/revocation.py)."""

    def check(self, principal: Principal) -> None: ...


class RevokedSessionEnder(Protocol):
    """Ends a revoked session, cookie and stored copy, so no refresh brings it back (the login
    routes: gatekeeper/login/)."""

    async def end_revoked_session(self, request: Exchange, request_id: str) -> None: ...


class OriginGuard(Protocol):
    """None when the page that sent the request is ours; else the reason (gatekeeper/origin.py)."""

    def refusal(self, request: RequestView) -> str | None: ...


class RateLimiter(Protocol):
    """``covers`` is in memory; only a path some rule covers pays for ``spend`` (Redis)
    (gatekeeper/ratelimit.py)."""

    def covers(self, path: str) -> bool: ...

    async def spend(self, request: RequestView, principal: Principal) -> Headers:
        """The budget headers for the answer; raise ``RateLimited`` when it is spent."""
        ...


class Mutator(Protocol):
    """The identity headers for ``principal``; raise ``InvalidToken`` for a claim that cannot
    be sent (gatekeeper/mutate.py)."""

    def identity_headers(self, principal: Principal, token: str | None) -> list[tuple[bytes, bytes]]: ...


class Asserter(Protocol):
    """The signed identity assertion for an authenticated ``principal`` making ``request``:
    (header name, JWT), in memory (gatekeeper/assertion/signer.py)."""

    def header(self, principal: Principal, request: RequestView) -> tuple[bytes, bytes]: ...


class TokenExchanger(Protocol):
    """``covers`` is in memory; only a path some rule covers pays for ``exchanged`` (a call to
    the provider, or its cache) (gatekeeper/token_exchange/)."""

    def covers(self, path: str) -> bool: ...

    async def exchanged(self, principal: Principal, request: RequestView,
                        identity: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """``identity`` plus the app's exchanged token; raise the provider's refusal (401,
        403) or ``TokenExchangeUnavailable`` (503)."""
        ...


class Pipeline:
    def __init__(
        self,
        authenticators: Sequence[Authenticator],
        authorizer: Authorizer,
        mutator: Mutator,
        *,
        revocations: RevocationCheck | None = None,
        origins: OriginGuard | None = None,
        rate_limits: RateLimiter | None = None,
        revoked_sessions: RevokedSessionEnder | None = None,
        tracing: Tracing = NO_TRACING,
        assertions: Asserter | None = None,
        exchanges: TokenExchanger | None = None,
    ) -> None:
        self._authenticators = tuple(authenticators)
        self._tracing = tracing
        # The two stages a trace shows; untraced, the plain calls (not even a no-op span).
        self._authenticate_stage = self._authenticate
        self._authorize_stage = authorizer.authorize
        if tracing is not NO_TRACING:
            self._authenticate_stage = self._traced_authenticate
            self._authorize_stage = self._traced_authorize
        self._revocations = revocations
        self._revoked_sessions = revoked_sessions
        self._origins = origins
        self._authorizer = authorizer
        self._rate_limits = rate_limits
        self._mutator = mutator
        self._assertions = assertions
        self._exchanges = exchanges

    def ending_revoked_sessions(self, ender: RevokedSessionEnder) -> Pipeline:
        """The same chain, ending a revoked session's cookie with ``ender``. (The login routes
        are built with the chain they use to authenticate, then handed to it this way.)"""
        return Pipeline(self._authenticators, self._authorizer, self._mutator,
                        revocations=self._revocations, origins=self._origins,
                        rate_limits=self._rate_limits, revoked_sessions=ender,
                        tracing=self._tracing, assertions=self._assertions,
                        exchanges=self._exchanges)

    async def decide(self, exchange: Exchange) -> Decision:
        path = exchange.path
        principal = ANONYMOUS
        try:
            principal = await self._authenticate_stage(exchange)
            if self._origins is not None and by_cookie(principal, exchange):
                # The cookie came along by itself: is the page that sent it ours? (CSRF, CSWSH)
                refused = self._origins.refusal(exchange)
                if refused is not None:
                    raise Forbidden("this request did not come from this site's pages", code=refused)
            verdict = self._authorize_stage(principal, exchange.method, path, exchange)
            if not verdict.allowed:
                outcome = (Outcome.UNAUTHENTICATED if principal.via == "anonymous"
                           else Outcome.UNAUTHORIZED)
                return Decision(outcome, verdict.reason, principal, path=path, rule=verdict.rule)
            budget: Headers = ()
            if self._rate_limits is not None and self._rate_limits.covers(path):
                budget = await self._rate_limits.spend(exchange, principal)
            identity = self._mutator.identity_headers(principal, principal.token)
            if self._assertions is not None and principal.via != "anonymous":
                # A new list: the mutator's is cached per principal, shared by its requests.
                identity = [*identity, self._assertions.header(principal, exchange)]
            if self._exchanges is not None and self._exchanges.covers(path):
                identity = await self._exchanges.exchanged(principal, exchange, identity)
        except Unauthenticated as exc:
            if self._revoked_sessions is not None and isinstance(exc, SessionRevoked):
                await self._revoked_sessions.end_revoked_session(exchange, exchange.request_id)
            return Decision(Outcome.UNAUTHENTICATED, exc.code, error=exc, path=path)
        except (Forbidden, RateLimited) as exc:  # refused with the caller known: logged as them
            rule_name = exc.rule if isinstance(exc, RateLimited) else None
            return Decision(Outcome.ERROR, exc.code, principal, error=exc, path=path, rule=rule_name)
        except GatekeeperError as exc:  # 503s and the like: logged as the caller once known
            return Decision(Outcome.ERROR, exc.code, principal, error=exc, path=path)
        return Decision(Outcome.ALLOW, verdict.reason, principal, identity_headers=identity,
                        path=path, rule=verdict.rule,
                        response_headers=(principal.response_headers + budget
                                          if principal.response_headers else budget))

    def identity(self, principal: Principal) -> list[tuple[bytes, bytes]]:
        """The identity headers the app gets for ``principal``; raises ``InvalidToken`` for a
        claim that cannot be sent (control characters, white space at an end)."""
        return self._mutator.identity_headers(principal, principal.token)

    async def authenticate(self, request: Exchange) -> Principal:
        """Who is calling (ANONYMOUS when no credentials); raises on bad credentials."""
        return await self._authenticate(request)

    def still_allowed(self, principal: Principal, method: str, path: str, now: float,
                      request: RequestView | None = None) -> str | None:
        """For a connection that outlives its request (a WebSocket): None while ``principal`` may
        still hold it, else the reason code. In memory, no I/O: the token's or session's expiry,
        the revocation list, the policy as it is now (hot reloads included)."""
        if principal.via != "anonymous" and 0 < principal.expires_at <= now:
            return "expired"
        try:
            self.check_revoked(principal)
        except GatekeeperError as exc:  # revoked, or the list too stale to say: fail closed
            return exc.code
        verdict = self._authorizer.authorize(principal, method, path, request)
        return None if verdict.allowed else verdict.reason

    def check_revoked(self, principal: Principal) -> None:
        """In memory, no I/O: TokenRevoked (401; SessionRevoked for a session), or
        RevocationStale (503) when the list is older than its staleness bound."""
        if self._revocations is not None and principal.via != "anonymous":
            self._revocations.check(principal)

    async def _traced_authenticate(self, request: Exchange) -> Principal:
        with self._tracing.stage("authenticate"):
            return await self._authenticate(request)

    def _traced_authorize(self, principal: Principal, method: str, path: str,
                          request: RequestView | None = None) -> Verdict:
        with self._tracing.stage("authorize"):
            return self._authorizer.authorize(principal, method, path, request)

    async def _authenticate(self, request: Exchange) -> Principal:
        for authenticator in self._authenticators:
            principal = await authenticator.authenticate(request)
            if principal is not None:
                self.check_revoked(principal)
                return principal
        return ANONYMOUS
