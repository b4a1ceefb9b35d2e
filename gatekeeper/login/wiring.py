"""Browser login assembled: providers, the session store, refresh and the routes, built once."""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.clients.redis import RedisClient
from gatekeeper.errors import ConfigError, SessionStoreUnavailable
from gatekeeper.login.backchannel_logout import BackchannelLogout
from gatekeeper.login.callback import LoginCompletion
from gatekeeper.login.ports import LoginChecks
from gatekeeper.login.query import ReturnAddresses
from gatekeeper.login.routes import LoginRoutes
from gatekeeper.login.signin import SignIn
from gatekeeper.login.signout import SignOut
from gatekeeper.login.state import LoginCookies
from gatekeeper.login.userinfo import UserInfo
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.provider import Provider
from gatekeeper.oidc.refresh import SessionRefresher
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
        assertion_claims = settings.assertion.claims.values() if settings.assertion else ()
        self._claims = ClaimsFilter([*settings.auth.roles_claims, *settings.headers.values(),
                                     *assertion_claims])
        self.store: SessionStore
        self._redis_store: RedisSessionStore | None = None
        if settings.session.store == "redis":
            if redis_client is None:  # the app opens one whenever Settings.uses_redis
                raise ConfigError(["session.store: redis needs a Redis connection (redis.url)"])
            self._redis_store = RedisSessionStore(redis_client, settings.session, settings.redis,
                                                  metrics=metrics)
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

    def start(self) -> None:
        """Background work of the session store (Redis: its subscription to session changes)."""
        if self._redis_store is not None:
            self._redis_store.start()

    async def aclose(self) -> None:
        if self._redis_store is not None:
            await self._redis_store.aclose()

    def routes(self, checks: LoginChecks) -> LoginRoutes:
        """The routes, given what they need of the pipeline: authenticate (userinfo), the
        revocation check and the identity headers (a login must yield a usable identity)."""
        oidc, providers = self._oidc, self._providers
        addresses = ReturnAddresses(oidc.allowed_redirect_domains)
        completion = LoginCompletion(providers, self.sessions, self._claims,
                                     identities=checks, revocations=checks)
        sign_in = SignIn(prefix=oidc.prefix, login_timeout_seconds=oidc.login_timeout_seconds,
                         providers=providers, store=self.store, login_cookies=self._login_cookies,
                         completion=completion, addresses=addresses, metrics=self._metrics)
        sign_out = SignOut(prefix=oidc.prefix, post_logout_redirect_url=oidc.post_logout_redirect_url,
                           providers=providers, store=self.store, sessions=self.sessions,
                           addresses=addresses)
        backchannel = None
        if self._redis_store is not None:
            backchannel = BackchannelLogout(
                providers, self._redis_store,
                max_age_seconds=oidc.backchannel_logout_max_age_minutes * 60)
        return LoginRoutes(prefix=oidc.prefix, browser_login=oidc.browser_login, sign_in=sign_in,
                           sign_out=sign_out, userinfo=UserInfo(checks), sessions=self.sessions,
                           backchannel=backchannel)

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
