"""Signing in: the redirect that starts a login, ``GET {prefix}/start?rd=&provider=`` (or the
provider chooser), and ``GET {prefix}/callback``, the provider's answer (its checks:
callback.py). Each returns an Answer; a failure is a page (or JSON) naming the failed check.

A login lives on the host of its provider's ``redirect_url``: the login cookie must be there when
the provider sends the browser back, and the session cookie is set there. Browser cookies are per
host name (RFC 6265 §8.5; ports do not separate them), so a login begun on ``127.0.0.1`` for a
``redirect_url`` on ``localhost`` could never complete. It is moved there first, once: the start
goes to the same route on the redirect_url's origin — an address from the config, never from the
request — marked so that a proxy which rewrites ``Host`` cannot make it loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit

from gatekeeper.edge.responses import Answer, wants_html
from gatekeeper.errors import (
    LoginFailed,
    RevocationStale,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from gatekeeper.exchange import Exchange
from gatekeeper.login.answer import json_answer, page, redirect
from gatekeeper.login.callback import LoginCompletion
from gatekeeper.login.navigation import is_nested, same_origin_target
from gatekeeper.login.prompts import sign_in_from_the_top
from gatekeeper.login.query import ReturnAddresses, origin_of, params, params_or_empty
from gatekeeper.login.state import LoginCookies, PendingLogin
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.provider import Provider
from gatekeeper.principal import Decision, Outcome
from gatekeeper.sessions.base import SessionStore

log = logging.getLogger("gatekeeper.oidc")

Failure = LoginFailed | SessionStoreUnavailable | RevocationStale
MOVED = "moved"  # the /start parameter of a login sent to its redirect_url's host (see above)
_CAME_FROM_MAX = 512  # a longer Referer is not kept: the login cookie has a byte budget


class SignIn:
    def __init__(
        self, *, prefix: str, login_timeout_seconds: int, providers: Mapping[str, Provider],
        store: SessionStore, login_cookies: LoginCookies, completion: LoginCompletion,
        addresses: ReturnAddresses, metrics: Metrics, clock: Callable[[], float] = time.time,
    ) -> None:
        self.start_url = f"{prefix}/start"
        self._timeout = login_timeout_seconds
        self._providers = providers
        self._by_host = {host.lower(): p for p in providers.values() for host in p.settings.hosts}
        self._login_origins = ", ".join(sorted({origin_of(p.redirect_url) for p in providers.values()}))
        self._store = store
        self._login_cookies = login_cookies
        self._completion = completion
        self._addresses = addresses
        self._metrics = metrics
        self._clock = clock

    async def redirect_to_login(self, request: Exchange, request_id: str) -> Answer:
        """A protected page without a session: off to the provider, back to this page after."""
        target = request.raw_path.decode("latin-1")
        if request.query:
            target += "?" + request.query.decode("latin-1")
        return_to = self._addresses.safe(target)
        if is_nested(request):
            # Back to the page holding the frame when it is ours, else to the framed page.
            holder = same_origin_target(request)
            rd = self._addresses.safe(holder) if holder else return_to
            return sign_in_from_the_top(request_id, f"{self.start_url}?" + urlencode({"rd": rd}))
        provider = self._choose(request, None)
        try:
            if provider is None:
                start = f"{self.start_url}?" + urlencode({"rd": return_to})
                return redirect(request_id, start, "login_chooser")
            moved = self._move_to_login_host(request, request_id, provider, return_to, {})
            return moved or await self._begin(request, request_id, provider, return_to)
        except LoginFailed as exc:
            return self.failed(request, request_id, exc)

    async def start(self, request: Exchange, request_id: str) -> Answer:
        query = params(request)
        return_to = self._addresses.safe(query.get("rd"))
        provider = self._choose(request, query.get("provider"))
        if provider is None:
            choices = [(p.display_name, f"{self.start_url}?"
                        + urlencode({"provider": p.id, "rd": return_to}))
                       for p in self._providers.values()]
            return page(request_id, 200, Decision(Outcome.UNAUTHENTICATED, "login_chooser"),
                        "Sign in", "Choose how to sign in.", actions=choices)
        moved = self._move_to_login_host(request, request_id, provider, return_to, query)
        return moved or await self._begin(request, request_id, provider, return_to)

    def _move_to_login_host(self, request: Exchange, request_id: str, provider: Provider,
                            return_to: str, query: Mapping[str, str]) -> Answer | None:
        """A redirect to this start on the redirect_url's host, when the browser is on another
        one (and was not sent here by that redirect already); None to begin here."""
        if MOVED in query:
            return None
        wanted = urlsplit(provider.redirect_url).hostname
        host = (request.header(b"host") or b"").decode("latin-1")
        try:
            here = urlsplit("//" + host).hostname if host else None
        except ValueError:  # a Host the URL parser refuses: begin here, as before
            return None
        if here is None or wanted is None or here == wanted:
            return None
        start = f"{origin_of(provider.redirect_url)}{self.start_url}?" + urlencode(
            {"rd": return_to, "provider": provider.id, MOVED: "1"})
        return redirect(request_id, start, "login_moved")

    async def _begin(self, request: Exchange, request_id: str, provider: Provider,
                     return_to: str) -> Answer:
        came_from = same_origin_target(request)
        if came_from is not None:
            came_from = self._addresses.safe(came_from) if len(came_from) <= _CAME_FROM_MAX else None
        login = PendingLogin.begin(provider=provider.id, return_to=return_to, now=self._clock(),
                                   timeout_seconds=self._timeout, came_from=came_from)
        url = await provider.authorization_url(state=login.state, nonce=login.nonce,
                                               code_verifier=login.code_verifier)
        cookies = request.cookies_out()
        for cookie in self._login_cookies.begin(request, login, self._clock()):
            cookies.set(cookie)
        return redirect(request_id, url, "login_started")

    async def callback(self, request: Exchange, request_id: str) -> Answer:
        query = params(request)
        state = query.get("state")
        try:
            login = self._login_cookies.find(request, state, self._clock())
        except LoginFailed as exc:
            if exc.code != "login_state_unknown":
                raise
            # Most often: the login began on another host name than the redirect_url's.
            raise LoginFailed(f"this sign-in was not started in this browser at {self._login_origins}"
                              f" (the address of oidc.redirect_url), or it took too long: open the "
                              f"site at {self._login_origins} and sign in again",
                              code=exc.code) from exc
        finally:
            used = self._login_cookies.expired(state)
            if used is not None:
                request.cookies_out().set(used)  # a login state is good for one answer
        try:
            return await self._complete(request, request_id, login, query)
        except (LoginFailed, SessionStoreUnavailable, RevocationStale) as exc:
            # "Sign in again" goes back to the page the user first asked for; "Back" to the
            # page the login began on.
            return self.failed(request, request_id, exc, return_to=login.return_to,
                               came_from=login.came_from)

    async def _complete(self, request: Exchange, request_id: str, login: PendingLogin,
                        query: Mapping[str, str]) -> Answer:
        provider, session, principal = await self._completion.complete(login, query)
        try:
            await self._store.save(request, request.cookies_out(), session)
        except SessionTooLarge as exc:
            raise LoginFailed(exc.description, code=exc.code) from exc
        self._metrics.logins.labels(provider=provider.id, result="ok").inc()
        log.info("login", extra={"provider": provider.id, "subject": session.subject,
                                 "request_id": request_id})
        return redirect(request_id, login.return_to, "login_completed",
                        Decision(Outcome.ALLOW, "login_completed", principal))

    def failed(self, request: Exchange, request_id: str, exc: Failure,
               return_to: str = "/", came_from: str | None = None) -> Answer:
        provider = params_or_empty(request).get("provider")
        self._metrics.logins.labels(provider=provider if provider in self._providers else "-",
                                    result=exc.code).inc()
        log.warning("login failed", extra={"reason": exc.code, "request_id": request_id})
        decision = Decision(Outcome.ERROR, exc.code, error=exc)
        if not wants_html(request.header(b"accept")):
            return json_answer(request_id, exc.status, {
                "error": exc.code, "error_description": exc.description}, decision)
        again = f"{self.start_url}?" + urlencode({"rd": return_to})
        title = {"access_denied": "Sign-in cancelled", "access_revoked": "Access revoked"}.get(
            exc.code, "Sign-in failed")
        back = [("Back to the page you came from", came_from)] if came_from else []
        return page(request_id, exc.status, decision, title,
                    exc.description or "The sign-in could not be completed.",
                    actions=[*back, ("Sign in again", again)], detail=f"Reason: {exc.code}")

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
