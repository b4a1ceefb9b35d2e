"""Refreshing a session's tokens once, however many requests ask at the same moment.

A provider that rotates refresh tokens (Auth0, Okta, Keycloak with rotation, oidc-provider)
treats a second use of the old one as theft and revokes the whole grant: the user is logged out
(oauth2-proxy #1992). So per session there is one refresh in flight that every concurrent
request awaits, and its result is remembered for a while: a request that still carries the old
cookie — sent before the browser saw the new one — gets the refreshed session, not a second
refresh with a dead token. (Across replicas this needs Redis: the next issue.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gatekeeper.errors import LoginFailed, ProviderUnavailable, SessionInvalid
from gatekeeper.lru import LRU
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter, id_token_part
from gatekeeper.oidc.idtoken import check_refreshed, verify_id_token
from gatekeeper.oidc.provider import Provider
from gatekeeper.sessions.model import Session

log = logging.getLogger("gatekeeper.oidc")

# Runs a refresh (the second argument) for a session once across replicas; see sessions/redis.py.
Exclusive = Callable[[Session, Callable[[Session], Awaitable[Session]]], Awaitable[Session]]

REMEMBER_SECONDS = 120.0  # how long a refresh's result answers requests with the old cookie
# Userinfo at a refresh comes after the token call, inside the Redis refresh lock
# (sessions/redis.py, 15 s): what the token call left of this budget is all it gets, so the
# lock never lapses while the rotated tokens are still unsaved (another replica would then
# spend the old refresh token and the provider revoke the grant).
USERINFO_BUDGET_SECONDS = 12.0
_REMEMBERED = 10_000


class SessionRefresher:
    def __init__(
        self,
        providers: Mapping[str, Provider],
        claims: ClaimsFilter,
        metrics: Metrics,
        *,
        margin_seconds: int,
        clock: Callable[[], float] = time.time,
        userinfo_budget_seconds: float = USERINFO_BUDGET_SECONDS,
    ) -> None:
        self._userinfo_budget = userinfo_budget_seconds
        self._providers = providers
        self._claims = claims
        self._metrics = metrics
        self._margin = margin_seconds
        self._clock = clock
        self._inflight: dict[str, asyncio.Task[Session]] = {}
        # (session id, refresh token it replaced) → (refreshed session, when)
        self._recent: LRU[tuple[str, str], tuple[Session, float]] = LRU(_REMEMBERED)

    def due(self, session: Session, now: float) -> bool:
        return session.access_expires_at is not None and now >= session.access_expires_at - self._margin

    async def current(self, session: Session, exclusive: Exclusive | None = None) -> Session:
        """``session`` itself while its access token is fresh; else the refreshed session.
        Raise ``SessionInvalid`` when the session cannot continue (log in again).
        ``exclusive`` runs the refresh once across replicas (the session store's lock)."""
        now = self._clock()
        if not self.due(session, now):
            return session
        if session.refresh_token is None:
            if now < (session.access_expires_at or 0):
                return session  # nothing to refresh with: use it while it lasts
            raise SessionInvalid("the session's access token expired and it has no refresh token",
                                 code="session_token_expired")
        key = (session.id, session.refresh_token)
        remembered = self._recent.get(key)
        if remembered is not None and now - remembered[1] < REMEMBER_SECONDS:
            return remembered[0]
        task = self._inflight.get(session.id)
        if task is None:
            task = asyncio.create_task(self._refresh_once(session, exclusive))
            self._inflight[session.id] = task
            task.add_done_callback(lambda _: self._inflight.pop(session.id, None))
        try:
            return await asyncio.shield(task)
        except ProviderUnavailable as exc:
            if now < (session.access_expires_at or 0):
                # The provider is down but the token still holds: keep going, retry next time.
                return session
            raise SessionInvalid("the session could not be refreshed", code="refresh_failed") from exc
        except LoginFailed as exc:
            raise SessionInvalid("the session could not be refreshed", code=exc.code) from exc

    async def _refresh_once(self, session: Session, exclusive: Exclusive | None) -> Session:
        refreshed = await (self._refresh(session) if exclusive is None
                           else exclusive(session, self._refresh))
        if session.refresh_token is not None:  # always (current() checked); only then remembered
            self._recent.put((session.id, session.refresh_token), (refreshed, self._clock()))
        return refreshed

    async def _refresh(self, session: Session) -> Session:
        provider = self._providers.get(session.provider)
        if provider is None or session.refresh_token is None:
            raise LoginFailed("the session's provider is no longer configured", code="unknown_provider")
        started = time.monotonic()
        try:
            tokens = await provider.refresh(session.refresh_token)
            left = self._userinfo_budget - (time.monotonic() - started)
            userinfo = await self._userinfo(provider, tokens.access_token, session.subject, left)
            if tokens.id_token is not None:
                fresh = await verify_id_token(tokens.id_token, provider.keys, provider.rules,
                                              nonce=None, now=self._clock())
                check_refreshed(session.claims, fresh)
                base = fresh
            else:
                # No new ID token: the last one's claims stand; what userinfo said is asked again.
                base = id_token_part(session.claims, session.userinfo_claims,
                                     userinfo_asked=provider.settings.userinfo)
            # Replaced, never merged: a role the provider no longer states is gone.
            claims, from_userinfo = (self._claims.kept(base, userinfo)
                                     if tokens.id_token is not None or userinfo is not None
                                     else (base, None))
        except LoginFailed as exc:
            self._metrics.session_refreshes.labels(provider=provider.id, result=exc.code).inc()
            log.warning("session refresh failed", extra={"provider": provider.id, "reason": exc.code,
                                                         "subject": session.subject})
            raise
        refreshed = dataclasses.replace(
            session, claims=claims, userinfo_claims=from_userinfo, access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or session.refresh_token,  # not every provider rotates
            access_expires_at=tokens.access_expires_at,
            id_token=(tokens.id_token or session.id_token) if session.id_token else None,
        )
        self._metrics.session_refreshes.labels(provider=provider.id, result="ok").inc()
        return refreshed

    async def _userinfo(self, provider: Provider, access_token: str, subject: str,
                        seconds: float) -> dict[str, Any] | None:
        """Userinfo for the new access token, when the provider is configured to be asked.
        The token call has already rotated the refresh token, so an unreachable userinfo must
        not fail the refresh (the new tokens would be lost, and the old refresh token, sent
        again, revokes the grant): its claims are then left out until the next refresh —
        fewer roles for a while, never stale ones."""
        if not provider.settings.userinfo:
            return None
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                userinfo = await provider.userinfo(access_token)
        except (ProviderUnavailable, TimeoutError) as exc:
            reason = exc.code if isinstance(exc, ProviderUnavailable) else "userinfo_too_slow"
            log.warning("userinfo failed at refresh; its claims are left out",
                        extra={"provider": provider.id, "reason": reason, "subject": subject})
            return {}
        if userinfo is not None and userinfo.get("sub") != subject:
            # OIDC Core §5.3.2: otherwise the userinfo answer is about someone else.
            raise LoginFailed("the provider's userinfo is about another user",
                              code="userinfo_sub_mismatch")
        return userinfo
