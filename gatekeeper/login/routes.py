"""The browser-login routes under ``oidc.prefix``: what the edge (gate.py) calls.

    GET {prefix}/start?rd=&provider=   begin a login (or show the provider chooser)   signin.py
    GET {prefix}/callback              the provider's answer: code → session → rd     signin.py
    GET|POST {prefix}/sign_out?rd=     end the session; continue at the provider       signout.py
    GET {prefix}/signed_out            back from the provider's logout: on to rd       signout.py
    GET {prefix}/userinfo              the caller's identity as JSON                   userinfo.py
    POST {prefix}/backchannel_logout   OIDC Back-Channel Logout 1.0 (session.store:    backchannel_logout.py
                                       redis)

Each handler returns an Answer (edge/responses.py, built with answer.py); the gate sends it and
logs its status and decision. It also decides which unauthenticated requests are sent to log
in (``wants_login``) rather than answered 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.edge.responses import Answer
from gatekeeper.errors import InvalidToken, LoginFailed, SessionRevoked, SessionStoreUnavailable
from gatekeeper.exchange import Exchange
from gatekeeper.login.backchannel_logout import BackchannelLogout
from gatekeeper.login.navigation import is_navigation
from gatekeeper.login.signin import SignIn
from gatekeeper.login.signout import SignOut
from gatekeeper.login.userinfo import UserInfo
from gatekeeper.principal import Decision, Outcome
from gatekeeper.types import Receive

Route = Callable[[Exchange, str], Awaitable[Answer]]


class LoginRoutes:
    def __init__(
        self, *, prefix: str, browser_login: Literal["auto", "always", "never"],
        sign_in: SignIn, sign_out: SignOut, userinfo: UserInfo,
        sessions: SessionAuthenticator, backchannel: BackchannelLogout | None = None,
    ) -> None:
        self.prefix = prefix
        self.sign_out_url = sign_out.url
        self.sessions = sessions  # the gate re-reads an open WebSocket's session through it
        self._browser_login = browser_login
        self._sign_in = sign_in
        self._sign_out = sign_out
        self._routes: dict[str, Route] = {
            f"{prefix}/start": sign_in.start,
            f"{prefix}/callback": sign_in.callback,
            f"{prefix}/sign_out": sign_out.sign_out,
            f"{prefix}/signed_out": sign_out.signed_out,
            f"{prefix}/userinfo": userinfo.answer,
        }
        self._backchannel_url = f"{prefix}/backchannel_logout"
        self._backchannel = backchannel

    def handles(self, path: str) -> bool:
        return path in self._routes or (path == self._backchannel_url
                                        and self._backchannel is not None)

    async def handle(self, request: Exchange, receive: Receive, request_id: str) -> Answer:
        if request.path == self._backchannel_url and self._backchannel is not None:
            return await self._backchannel.answer(request, receive, request_id)
        route = self._routes[request.path]
        try:
            return await route(request, request_id)
        except (LoginFailed, SessionStoreUnavailable) as exc:
            return self._sign_in.failed(request, request_id, exc)

    def wants_login(self, request: Exchange, decision: Decision) -> bool:
        """An unauthenticated request that should be sent to log in rather than get a 401."""
        if decision.outcome is not Outcome.UNAUTHENTICATED:
            return False
        if isinstance(decision.error, InvalidToken) and not isinstance(decision.error, SessionRevoked):
            return False  # a presented bearer token failed: that caller is an API client
        mode = self._browser_login
        return mode == "always" or (mode == "auto" and is_navigation(request))

    async def redirect_to_login(self, request: Exchange, request_id: str) -> Answer:
        return await self._sign_in.redirect_to_login(request, request_id)

    async def end_revoked_session(self, request: Exchange, request_id: str) -> None:
        await self._sign_out.end_revoked(request, request_id)

