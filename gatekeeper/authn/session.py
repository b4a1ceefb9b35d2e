"""Browser sessions → Principal: the same identity a bearer token would give, from a login.

The store reads the session (and, when it changes — last-seen, refresh — adds the cookies that
carry it to the request's jar); the refresher keeps its access token fresh. A session that
cannot continue raises ``SessionInvalid`` after the store has queued the cookies that end it, so
the gate can send the browser to log in again (or an API caller a 401).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gatekeeper.errors import SessionInvalid, SessionStoreUnavailable
from gatekeeper.exchange import Exchange
from gatekeeper.lru import LRU
from gatekeeper.oidc.provider import Provider
from gatekeeper.oidc.refresh import SessionRefresher
from gatekeeper.principal import Principal
from gatekeeper.sessions.base import SessionStore
from gatekeeper.sessions.model import Session
from gatekeeper.subjects import SubjectClash, SubjectNamespaces
from gatekeeper.tokens.claims import roles_from_claims

_PRINCIPALS = 10_000


class SessionAuthenticator:
    def __init__(
        self,
        store: SessionStore,
        providers: Mapping[str, Provider],
        refresher: SessionRefresher,
        roles_claims: Sequence[str],
        namespaces: SubjectNamespaces | None = None,
    ) -> None:
        self._namespaces = namespaces or SubjectNamespaces()
        self._store = store
        self._providers = providers
        self._refresher = refresher
        self._roles_claims = tuple(roles_claims)
        # One Principal per (session, access token): identity headers are cached per Principal.
        self._principals: LRU[tuple[str, str], Principal] = LRU(_PRINCIPALS)

    async def authenticate(self, request: Exchange) -> Principal | None:
        cookies = request.cookies_out()
        session = await self._store.load(request, cookies)
        if session is None:
            return None
        try:
            if session.provider not in self._providers:
                raise SessionInvalid("the session's provider is no longer configured",
                                     code="unknown_provider")
            current = await self._refresher.current(
                session, lambda s, refresh: self._store.refresh_exclusively(request, s, refresh))
            principal = self.principal(current)
        except SessionInvalid:
            await self._store.clear(request, cookies)
            raise
        if current is not session:
            await self._store.save(request, cookies, current)
        return principal

    async def session(self, request: Exchange) -> Session | None:
        """The request's session as stored, for sign-out (None when absent or unusable).
        Raises ``SessionStoreUnavailable``: a sign-out cannot go on without the store."""
        try:
            return await self._store.load(request, request.cookies_out())
        except SessionInvalid:
            return None

    async def still_signed_in(self, request: Exchange) -> str | None:
        """None while the request's session is still stored and within its lifetime, else the
        reason code (a sign-out or back-channel logout since; Redis unreachable fails closed).
        For a connection that outlives its request: an open WebSocket."""
        try:
            session = await self._store.load(request, request.cookies_out())
        except (SessionInvalid, SessionStoreUnavailable) as exc:
            return exc.code
        return None if session is not None else "session_ended"

    def principal(self, session: Session) -> Principal:
        """The session's identity: the same subject a bearer token of the same issuer gives.
        Raises ``SessionInvalid`` for a subject that reads as another issuer's."""
        key = (session.id, session.access_token)
        principal = self._principals.get(key)
        if principal is None:
            provider = self._providers[session.provider]
            try:
                subject = self._namespaces.subject(provider.settings.issuer, session.subject)
            except SubjectClash as exc:
                raise SessionInvalid("subject not accepted", code="subject_namespace_clash") from exc
            principal = Principal(
                subject=subject,
                roles=roles_from_claims(session.claims, self._roles_claims),
                claims=session.claims,
                via="session",
                issuer=provider.settings.issuer,
                expires_at=float(session.access_expires_at or 0),
                token=session.access_token,
            )
            self._principals.put(key, principal)
        return principal
