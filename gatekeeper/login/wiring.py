"""Browser login assembled: providers, the session store, refresh and the routes, built once."""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.clients.redis import RedisClient
from gatekeeper.errors import SessionStoreUnavailable
from gatekeeper.login.routes import LoginRoutes
from gatekeeper.login.state import LoginCookies
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.provider import Provider
from gatekeeper.oidc.refresh import SessionRefresher
from gatekeeper.pipeline import Pipeline
from gatekeeper.sessions.base import SessionStore
from gatekeeper.sessions.cookie import CookieSessionStore
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.redis import RedisSessionStore
from gatekeeper.settings import OidcSettings, Settings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.types import Check


class BrowserLogin:
    def __init__(
        self, settings: Settings, oidc: OidcSettings, providers: Mapping[str, Provider],
        metrics: Metrics, redis_client: RedisClient | None = None,
    ) -> None:
        self._oidc = oidc
        self._providers = providers
        self._metrics = metrics
        self._claims = ClaimsFilter([*settings.auth.roles_claims, *settings.headers.values()])
        self.store: SessionStore
        self._redis_store: RedisSessionStore | None = None
        if settings.session.store == "redis":
            assert redis_client is not None  # Settings.uses_redis
            self._redis_store = RedisSessionStore(redis_client, settings.session, settings.redis)
            self.store = self._redis_store
        else:
            self.store = CookieSessionStore(settings.session)
        refresher = SessionRefresher(providers, self._claims, metrics,
                                     margin_seconds=oidc.refresh_margin_seconds)
        self.sessions = SessionAuthenticator(self.store, providers, refresher,
                                             settings.auth.roles_claims,
                                             SubjectNamespaces(settings.subject_prefixes()))
        secrets = [s.get_secret_value() for s in settings.session.secret]
        self._login_cookies = LoginCookies(
            SessionCipher(secrets, purpose="login"), session_cookie=settings.session.cookie_name,
            secure=settings.session.cookie_secure,
            timeout_seconds=oidc.login_timeout_seconds)

    def routes(self, pipeline: Pipeline) -> LoginRoutes:
        return LoginRoutes(self._oidc, self._providers, self.store, self.sessions,
                           self._login_cookies, self._claims, pipeline, self._metrics,
                           logout_everywhere=self._redis_store)

    async def check(self) -> Check:
        """Readiness: every provider discovered, with keys. A login needs both."""
        down = [f"{p.id}: {p.last_error or p.keys.last_error}" for p in self._providers.values()
                if not p.ready]
        if down:
            return Check(False, "; ".join(down))
        return Check(True, f"{len(self._providers)} provider(s) ready")

    async def store_check(self) -> Check:
        """Readiness reports the session store but does not fail on it: bearer-token traffic
        still works while Redis is down, and session requests answer 503 on their own."""
        try:
            await self.store.verify_connection()
        except SessionStoreUnavailable as exc:
            return Check(True, f"degraded: {exc.description}; session requests answer 503")
        return Check(True, "redis reachable" if self._redis_store else "cookie sessions")
