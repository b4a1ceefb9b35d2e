"""The browser-login routes under ``oidc.prefix``, and the redirect that starts a login.

    GET {prefix}/start?rd=&provider=   begin a login (or show the provider chooser)
    GET {prefix}/callback              the provider's answer: code → tokens → session → rd
                                       (its checks: callback.py)
    GET|POST {prefix}/sign_out?rd=     end the session; continue at the provider's end_session
                                       (sent by another site: a page that asks first)
    GET {prefix}/userinfo              the caller's identity as JSON (session or bearer)
    POST {prefix}/backchannel_logout   OIDC Back-Channel Logout 1.0 (with session.store: redis;
                                       the protocol is in backchannel.py)

Every return address (``rd``, the page a login started from) passes ``safe_redirect``: a
same-origin path or an allow-listed domain, else ``/``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.edge import pages
from gatekeeper.edge.responses import HTML, own_headers, send_raw, wants_html
from gatekeeper.errors import (
    GatekeeperError,
    InvalidToken,
    LoginFailed,
    RevocationStale,
    SessionRevoked,
    SessionStoreUnavailable,
    SessionTooLarge,
    Unauthenticated,
)
from gatekeeper.exchange import Exchange
from gatekeeper.login.callback import LoginCompletion
from gatekeeper.login.navigation import (
    is_from_another_site,
    is_navigation,
    is_nested,
    same_origin_target,
)
from gatekeeper.login.prompts import ask_before_signing_out, sign_in_from_the_top
from gatekeeper.login.state import LoginCookies, PendingLogin
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.backchannel import LogoutEverywhere, log_out_everywhere
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.provider import Provider
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import Decision, Outcome, Principal
from gatekeeper.redirects import safe_redirect
from gatekeeper.sessions.base import SessionStore
from gatekeeper.settings import OidcSettings

log = logging.getLogger("gatekeeper.oidc")

Send = Any
Receive = Any


@dataclass(frozen=True, slots=True)
class Answered:
    """What a route did, for the access log."""

    status: int
    decision: Decision


class LoginRoutes:
    def __init__(
        self,
        settings: OidcSettings,
        providers: Mapping[str, Provider],
        store: SessionStore,
        sessions: SessionAuthenticator,
        login_cookies: LoginCookies,
        claims: ClaimsFilter,
        pipeline: Pipeline,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        logout_everywhere: LogoutEverywhere | None = None,
    ) -> None:
        self.prefix = settings.prefix
        self.sign_out_url = f"{settings.prefix}/sign_out"
        self._settings = settings
        self._providers = providers
        self._by_host = {host.lower(): p for p in providers.values() for host in p.settings.hosts}
        self._store = store
        self.sessions = sessions  # the gate re-reads an open WebSocket's session through it
        self._login_cookies = login_cookies
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._logout_everywhere = logout_everywhere
        self._completion = LoginCompletion(providers, sessions, claims, pipeline, clock)
        self._routes = {
            f"{self.prefix}/start": self._start,
            f"{self.prefix}/callback": self._callback,
            f"{self.prefix}/sign_out": self._sign_out,
            f"{self.prefix}/userinfo": self._userinfo,
        }
        self._backchannel = f"{self.prefix}/backchannel_logout"

    def handles(self, path: str) -> bool:
        return path in self._routes or (path == self._backchannel
                                        and self._logout_everywhere is not None)

    async def handle(self, request: Exchange, receive: Receive, send: Send,
                     request_id: str) -> Answered:
        if request.path == self._backchannel:
            return await self._backchannel_logout(request, receive, send, request_id)
        route = self._routes[request.path]
        try:
            return await route(request, send, request_id)
        except (LoginFailed, SessionStoreUnavailable) as exc:
            return await self._failed(request, send, request_id, exc)

    # -- the redirect that starts a login --------------------------------------------------
    def wants_login(self, request: Exchange, decision: Decision) -> bool:
        """An unauthenticated request that should be sent to log in rather than get a 401."""
        if decision.outcome is not Outcome.UNAUTHENTICATED:
            return False
        if isinstance(decision.error, InvalidToken) and not isinstance(decision.error, SessionRevoked):
            return False  # a presented bearer token failed: that caller is an API client
        mode = self._settings.browser_login
        return mode == "always" or (mode == "auto" and is_navigation(request))

    async def end_revoked_session(self, request: Exchange, request_id: str) -> None:
        """A session whose subject or token was revoked ends here, cookie and stored copy, so no
        refresh brings it back. A browser may sign in again: the callback refuses a revoked
        subject, so that cannot loop."""
        await self._store.clear(request, request.cookies_out())
        log.info("revoked session ended", extra={"request_id": request_id})

    async def redirect_to_login(self, request: Exchange, send: Send, request_id: str) -> Answered:
        target = request.raw_path.decode("latin-1")
        if request.query:
            target += "?" + request.query.decode("latin-1")
        return_to = self._safe(target)
        if is_nested(request):
            # Back to the page holding the frame when it is ours, else to the framed page.
            holder = same_origin_target(request)
            start = f"{self.prefix}/start?" + urlencode({"rd": self._safe(holder) if holder else return_to})
            status = await sign_in_from_the_top(send, request_id, start)
            return Answered(status, Decision(Outcome.UNAUTHENTICATED, "login_required"))
        provider = self._choose(request, None)
        try:
            if provider is None:
                start = f"{self.prefix}/start?" + urlencode({"rd": return_to})
                return await self._redirect(send, request_id, start, "login_chooser")
            return await self._begin(request, send, request_id, provider, return_to)
        except LoginFailed as exc:
            return await self._failed(request, send, request_id, exc)

    # -- routes --------------------------------------------------------------------------
    async def _start(self, request: Exchange, send: Send, request_id: str) -> Answered:
        params = _params(request)
        return_to = self._safe(params.get("rd"))
        provider = self._choose(request, params.get("provider"))
        if provider is None:
            body = pages.render(
                "Sign in", "Choose how to sign in.",
                actions=[(p.display_name, f"{self.prefix}/start?"
                          + urlencode({"provider": p.id, "rd": return_to}))
                         for p in self._providers.values()])
            await send_raw(send, 200, own_headers(request_id), HTML, body)
            return Answered(200, Decision(Outcome.UNAUTHENTICATED, "login_chooser"))
        return await self._begin(request, send, request_id, provider, return_to)

    async def _begin(self, request: Exchange, send: Send, request_id: str, provider: Provider,
                     return_to: str) -> Answered:
        login = PendingLogin.begin(provider=provider.id, return_to=return_to, now=self._clock(),
                                   timeout_seconds=self._settings.login_timeout_seconds)
        url = await provider.authorization_url(state=login.state, nonce=login.nonce,
                                               code_verifier=login.code_verifier)
        cookies = request.cookies_out()
        for cookie in self._login_cookies.begin(request, login, self._clock()):
            cookies.set(cookie)
        return await self._redirect(send, request_id, url, "login_started")

    async def _callback(self, request: Exchange, send: Send, request_id: str) -> Answered:
        params = _params(request)
        state = params.get("state")
        try:
            login = self._login_cookies.find(request, state, self._clock())
        finally:
            used = self._login_cookies.expired(state)
            if used is not None:
                request.cookies_out().set(used)  # a login state is good for one answer
        try:
            return await self._complete(request, send, request_id, login, params)
        except (LoginFailed, SessionStoreUnavailable, RevocationStale) as exc:
            # "Sign in again" goes back to the page the user first asked for.
            return await self._failed(request, send, request_id, exc, return_to=login.return_to)

    async def _complete(self, request: Exchange, send: Send, request_id: str,
                        login: PendingLogin, params: Mapping[str, str]) -> Answered:
        provider, session, principal = await self._completion.complete(login, params)
        cookies = request.cookies_out()
        try:
            await self._store.save(request, cookies, session)
        except SessionTooLarge as exc:
            raise LoginFailed(exc.description, code=exc.code) from exc
        self._metrics.logins.labels(provider=provider.id, result="ok").inc()
        log.info("login", extra={"provider": provider.id, "subject": session.subject,
                                 "request_id": request_id})
        answered = await self._redirect(send, request_id, login.return_to, "login_completed")
        return Answered(answered.status, Decision(Outcome.ALLOW, "login_completed", principal))

    async def _sign_out(self, request: Exchange, send: Send, request_id: str) -> Answered:
        return_to = self._safe(_params(request).get("rd"))
        if is_from_another_site(request):
            # Signing out on another site's say-so would let any page log our users out.
            again = f"{self.sign_out_url}?" + urlencode({"rd": return_to})
            status = await ask_before_signing_out(send, request_id, again, return_to)
            return Answered(status, Decision(Outcome.UNAUTHENTICATED, "sign_out_confirm"))
        try:
            session = await self.sessions.session(request)
            await self._store.clear(request, request.cookies_out(), must_forget=True)
        except SessionStoreUnavailable as exc:
            return await self._sign_out_failed(request, send, request_id, exc, return_to)
        location = return_to
        provider = self._providers.get(session.provider) if session is not None else None
        if session is not None and provider is not None:
            after = self._settings.post_logout_redirect_url or _origin(provider.redirect_url) + "/"
            location = await provider.end_session_url(session.id_token, after) or return_to
            log.info("logout", extra={"provider": provider.id, "subject": session.subject,
                                      "request_id": request_id})
        return await self._redirect(send, request_id, location, "signed_out")

    async def _sign_out_failed(self, request: Exchange, send: Send, request_id: str,
                               exc: SessionStoreUnavailable, return_to: str) -> Answered:
        """503 and the cookie kept: the session could not be ended where it is stored, and
        neither the browser nor the provider is told otherwise. Trying again is safe."""
        log.warning("sign-out failed", extra={"reason": exc.code, "request_id": request_id})
        decision = Decision(Outcome.ERROR, exc.code, error=exc)
        headers = [*own_headers(request_id), (b"retry-after", b"5")]
        if not wants_html(request.header(b"accept")):
            body = json.dumps({"error": exc.code, "error_description": "the sign-out could not be "
                               "completed; try again", "request_id": request_id}).encode()
            await send_raw(send, 503, headers, b"application/json", body)
            return Answered(503, decision)
        again = f"{self.sign_out_url}?" + urlencode({"rd": return_to})
        body = pages.render("Sign-out failed", "You are still signed in: the sign-out could not "
                            "be completed. Please try again in a moment.",
                            actions=[("Try again", again)], detail=f"Reason: {exc.code}",
                            request_id=request_id)
        await send_raw(send, 503, headers, HTML, body)
        return Answered(503, decision)

    async def _userinfo(self, request: Exchange, send: Send, request_id: str) -> Answered:
        try:
            principal = await self._pipeline.authenticate(request)
        except Unauthenticated as exc:
            return await self._json(send, request_id, 401, {
                "error": exc.code, "error_description": exc.description},
                Decision(Outcome.UNAUTHENTICATED, exc.code, error=exc))
        except GatekeeperError as exc:  # keys, session store or revocation list unavailable
            return await self._json(send, request_id, exc.status, {
                "error": exc.code, "error_description": exc.description},
                Decision(Outcome.ERROR, exc.code, error=exc))
        if principal.via == "anonymous":
            return await self._json(send, request_id, 401, {
                "error": "unauthenticated", "error_description": "not signed in"},
                Decision(Outcome.UNAUTHENTICATED, "unauthenticated"))
        return await self._json(send, request_id, 200, identity(principal),
                                Decision(Outcome.ALLOW, "userinfo", principal))

    async def _backchannel_logout(self, request: Exchange, receive: Receive, send: Send,
                                  request_id: str) -> Answered:
        """The provider tells us a user logged out (OIDC Back-Channel Logout 1.0 §2.5-2.8):
        200 once every session of that sid (or sub) is deleted from Redis: ended here at once, on
        the other replicas within ``session.redis_cache_seconds``."""
        store = self._logout_everywhere
        assert store is not None  # handles() routes here only then
        if request.method != "POST":
            return await self._json(send, request_id, 405, {"error": "invalid_request",
                                    "error_description": "POST a logout_token"},
                                    Decision(Outcome.ERROR, "backchannel_method"))
        try:
            provider, ended = await log_out_everywhere(
                receive, self._providers, store, self._clock,
                max_age_seconds=self._settings.backchannel_logout_max_age_minutes * 60)
        except (LoginFailed, ValueError) as exc:
            code = exc.code if isinstance(exc, LoginFailed) else "logout_request_malformed"
            log.warning("back-channel logout refused", extra={"reason": code, "request_id": request_id})
            return await self._json(send, request_id, 400, {"error": "invalid_request",
                                    "error_description": code}, Decision(Outcome.ERROR, code))
        except SessionStoreUnavailable as exc:
            # §2.8: the token was fine but the logout could not be carried out.
            return await self._json(send, request_id, 501, {"error": exc.code},
                                    Decision(Outcome.ERROR, exc.code, error=exc))
        log.info("back-channel logout", extra={"provider": provider.id, "sessions": ended,
                                               "request_id": request_id})
        return await self._json(send, request_id, 200, {"sessions_ended": ended},
                                Decision(Outcome.ALLOW, "backchannel_logout"))

    # -- helpers -------------------------------------------------------------------------
    def _choose(self, request: Exchange, hint: str | None) -> Provider | None:
        if hint is not None:
            return self._providers.get(hint)
        host = (request.header(b"host") or b"").decode("latin-1").lower()
        by_host = self._by_host.get(host) or self._by_host.get(host.rsplit(":", 1)[0])
        if by_host is not None:
            return by_host
        if len(self._providers) == 1:
            return next(iter(self._providers.values()))
        return None

    def _safe(self, value: str | None) -> str:
        return safe_redirect(value, allowed_domains=self._settings.allowed_redirect_domains)

    async def _redirect(self, send: Send, request_id: str, location: str, reason: str) -> Answered:
        headers = [*own_headers(request_id), (b"location", location.encode("ascii"))]
        await send_raw(send, 302, headers, b"text/plain", b"")
        return Answered(302, Decision(Outcome.UNAUTHENTICATED, reason))

    async def _json(self, send: Send, request_id: str, status: int, body: dict[str, Any],
                    decision: Decision) -> Answered:
        payload = json.dumps({**body, "request_id": request_id}).encode()
        await send_raw(send, status, own_headers(request_id), b"application/json", payload)
        return Answered(status, decision)

    async def _failed(self, request: Exchange, send: Send, request_id: str,
                      exc: LoginFailed | SessionStoreUnavailable | RevocationStale,
                      return_to: str = "/") -> Answered:
        provider = _params_or_empty(request).get("provider")
        self._metrics.logins.labels(provider=provider if provider in self._providers else "-",
                                    result=exc.code).inc()
        log.warning("login failed", extra={"reason": exc.code, "request_id": request_id})
        decision = Decision(Outcome.ERROR, exc.code, error=exc)
        if not wants_html(request.header(b"accept")):
            return await self._json(send, request_id, exc.status, {
                "error": exc.code, "error_description": exc.description}, decision)
        again = f"{self.prefix}/start?" + urlencode({"rd": return_to})
        title = {"access_denied": "Sign-in cancelled", "access_revoked": "Access revoked"}.get(
            exc.code, "Sign-in failed")
        body = pages.render(title, exc.description or "The sign-in could not be completed.",
                            actions=[("Sign in again", again)], detail=f"Reason: {exc.code}",
                            request_id=request_id)
        await send_raw(send, exc.status, own_headers(request_id), HTML, body)
        return Answered(exc.status, decision)


def identity(principal: Principal) -> dict[str, Any]:
    claims = principal.claims
    return {
        "sub": claims.get("sub", principal.subject),  # as its issuer says it
        "subject": principal.subject,  # as gatekeeper names it: issuer-namespaced if several
        "email": claims.get("email"),
        "name": claims.get("name"),
        "preferred_username": claims.get("preferred_username"),
        "roles": list(principal.roles),
        "via": principal.via,
        "issuer": principal.issuer,
        "expires_at": int(principal.expires_at) or None,
    }


def _params(request: Exchange) -> dict[str, str]:
    """Query parameters, each at most once: a repeated state or code is refused, not guessed."""
    try:
        parsed = parse_qs(request.query.decode("latin-1"), keep_blank_values=True,
                          max_num_fields=32, errors="strict")
    except ValueError as exc:  # not UTF-8 once decoded, or too many fields
        raise LoginFailed("the query string is malformed", code="login_bad_request") from exc
    repeated = [name for name, values in parsed.items() if len(values) > 1]
    if repeated:
        raise LoginFailed(f"parameter {repeated[0][:20]!r} is repeated", code="login_bad_request")
    return {name: values[0] for name, values in parsed.items()}


def _params_or_empty(request: Exchange) -> dict[str, str]:
    try:
        return _params(request)
    except LoginFailed:
        return {}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
