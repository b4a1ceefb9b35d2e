"""Signing out, ``GET|POST {prefix}/sign_out?rd=``: the session ends here (cookie and stored copy),
then continues at the provider's end_session_endpoint (RP-Initiated Logout 1.0) when it has one.
A sign-out another site sent the browser to gets a page that asks first (logout CSRF).

The provider sends the browser back to one fixed URL registered with it, by default
``GET {prefix}/signed_out``; ``rd`` rides along in the logout's ``state`` (§3), and that route
sends the browser on to it, checked again as at ``sign_out``. Without ``rd``: a "signed out" page,
not ``/``, which would need a login and land the browser on the provider's login form.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlencode

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.edge.responses import Answer, wants_html
from gatekeeper.errors import SessionStoreUnavailable
from gatekeeper.exchange import Exchange
from gatekeeper.login.answer import json_answer, page, redirect
from gatekeeper.login.navigation import is_from_another_site
from gatekeeper.login.prompts import ask_before_signing_out
from gatekeeper.login.query import ReturnAddresses, origin_of, params
from gatekeeper.oidc.provider import Provider
from gatekeeper.principal import Decision, Outcome
from gatekeeper.sessions.base import SessionStore

log = logging.getLogger("gatekeeper.oidc")


class SignOut:
    def __init__(
        self, *, prefix: str, post_logout_redirect_url: str | None,
        providers: Mapping[str, Provider], store: SessionStore, sessions: SessionAuthenticator,
        addresses: ReturnAddresses,
    ) -> None:
        self.url = f"{prefix}/sign_out"
        self.signed_out_url = f"{prefix}/signed_out"
        self._start_url = f"{prefix}/start"
        self._post_logout = post_logout_redirect_url
        self._providers = providers
        self._store = store
        self._sessions = sessions
        self._addresses = addresses

    async def sign_out(self, request: Exchange, request_id: str) -> Answer:
        rd = params(request).get("rd")
        return_to = self._addresses.safe(rd)
        if is_from_another_site(request):
            # Signing out on another site's say-so would let any page log our users out.
            again = f"{self.url}?" + urlencode({"rd": return_to}) if rd else self.url
            return ask_before_signing_out(request_id, again, return_to)
        try:
            session = await self._sessions.session(request)
            await self._store.clear(request, request.cookies_out(), must_forget=True)
        except SessionStoreUnavailable as exc:
            return self._failed(request, request_id, exc, return_to)
        location = return_to if rd else self.signed_out_url
        provider = self._providers.get(session.provider) if session is not None else None
        if session is not None and provider is not None:
            after = self._post_logout or origin_of(provider.redirect_url) + self.signed_out_url
            # rd in the clear is no new redirect: sign_out?rd= without a session makes it too.
            state = return_to if rd else None
            location = await provider.end_session_url(session.id_token, after, state) or location
            log.info("logout", extra={"provider": provider.id, "subject": session.subject,
                                      "request_id": request_id})
        return redirect(request_id, location, "signed_out")

    async def signed_out(self, request: Exchange, request_id: str) -> Answer:
        """Where the provider sends the browser after its logout: on to the ``rd`` the sign-out
        carried in ``state``, or a page that says so."""
        rd = params(request).get("state")
        if rd:
            return redirect(request_id, self._addresses.safe(rd), "signed_out")
        again = f"{self._start_url}?" + urlencode({"rd": "/"})
        return page(request_id, 200, Decision(Outcome.UNAUTHENTICATED, "signed_out"), "Signed out",
                    "You are signed out.", actions=[("Sign in again", again)])

    async def end_revoked(self, request: Exchange, request_id: str) -> None:
        """A session whose subject or token was revoked ends here, cookie and stored copy, so no
        refresh brings it back. A browser may sign in again: the callback refuses a revoked
        subject, so that cannot loop."""
        await self._store.clear(request, request.cookies_out())
        log.info("revoked session ended", extra={"request_id": request_id})

    def _failed(self, request: Exchange, request_id: str, exc: SessionStoreUnavailable,
                return_to: str) -> Answer:
        """503 and the cookie kept: the session could not be ended where it is stored, and
        neither the browser nor the provider is told otherwise. Trying again is safe."""
        log.warning("sign-out failed", extra={"reason": exc.code, "request_id": request_id})
        decision = Decision(Outcome.ERROR, exc.code, error=exc)
        retry = [(b"retry-after", b"5")]
        if not wants_html(request.header(b"accept")):
            return json_answer(request_id, 503, {
                "error": exc.code, "error_description": "the sign-out could not be completed; "
                "try again"}, decision, retry)
        again = f"{self.url}?" + urlencode({"rd": return_to})
        return page(request_id, 503, decision, "Sign-out failed", "You are still signed in: the "
                    "sign-out could not be completed. Please try again in a moment.",
                    actions=[("Try again", again)], detail=f"Reason: {exc.code}",
                    extra_headers=retry)
