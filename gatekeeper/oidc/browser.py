"""Browser login assembled: providers, the session store, refresh and the routes, built once."""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.admin import Check
from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.login import LoginCookies
from gatekeeper.oidc.provider import Provider
from gatekeeper.oidc.refresh import SessionRefresher
from gatekeeper.oidc.routes import LoginRoutes
from gatekeeper.pipeline import Pipeline
from gatekeeper.sessions.cookie import CookieSessionStore
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.settings import OidcSettings, Settings


class BrowserLogin:
    def __init__(
        self, settings: Settings, oidc: OidcSettings, providers: Mapping[str, Provider],
        metrics: Metrics,
    ) -> None:
        self._oidc = oidc
        self._providers = providers
        self._metrics = metrics
        self._claims = ClaimsFilter([*settings.auth.roles_claims, *settings.headers.values()])
        self.store = CookieSessionStore(settings.session)
        refresher = SessionRefresher(providers, self._claims, metrics,
                                     margin_seconds=oidc.refresh_margin_seconds)
        self.sessions = SessionAuthenticator(self.store, providers, refresher,
                                             settings.auth.roles_claims)
        secrets = [s.get_secret_value() for s in settings.session.secret]
        self._login_cookies = LoginCookies(
            SessionCipher(secrets, purpose="login"), session_cookie=settings.session.cookie_name,
            callback_path=f"{oidc.prefix}/callback", secure=settings.session.cookie_secure,
            timeout_seconds=oidc.login_timeout_seconds)

    def routes(self, pipeline: Pipeline) -> LoginRoutes:
        return LoginRoutes(self._oidc, self._providers, self.store, self.sessions,
                           self._login_cookies, self._claims, pipeline, self._metrics)

    async def check(self) -> Check:
        """Readiness: every provider discovered, with keys. A login needs both."""
        down = [f"{p.id}: {p.last_error or p.keys.last_error}" for p in self._providers.values()
                if not p.ready]
        if down:
            return Check(False, "; ".join(down))
        return Check(True, f"{len(self._providers)} provider(s) ready")
