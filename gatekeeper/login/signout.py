"""Signing out, ``GET|POST {prefix}/sign_out?rd=``: the session ends here (cookie and stored copy),
then continues at the provider's end_session_endpoint (RP-Initiated Logout 1.0) when it has one.
A sign-out another site sent the browser to gets a page that asks first (logout CSRF).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.edge.responses import wants_html
from gatekeeper.errors import SessionStoreUnavailable
from gatekeeper.login.answer import Answer, json_answer, page, redirect
from gatekeeper.login.navigation import is_from_another_site
from gatekeeper.login.prompts import ask_before_signing_out
from gatekeeper.login.query import ReturnAddresses, params
from gatekeeper.oidc.provider import Provider
from gatekeeper.principal import Decision, Outcome
from gatekeeper.request import RequestView
from gatekeeper.sessions.base import SessionStore

log = logging.getLogger("gatekeeper.oidc")


class SignOut:
    def __init__(
        self, *, prefix: str, post_logout_redirect_url: str | None,
        providers: Mapping[str, Provider], store: SessionStore, sessions: SessionAuthenticator,
        addresses: ReturnAddresses,
    ) -> None:
        self.url = f"{prefix}/sign_out"
        self._post_logout = post_logout_redirect_url
        self._providers = providers
        self._store = store
        self._sessions = sessions
        self._addresses = addresses

    async def sign_out(self, request: RequestView, request_id: str) -> Answer:
        return_to = self._addresses.safe(params(request).get("rd"))
        if is_from_another_site(request):
            # Signing out on another site's say-so would let any page log our users out.
            again = f"{self.url}?" + urlencode({"rd": return_to})
            return ask_before_signing_out(request_id, again, return_to)
        try:
            session = await self._sessions.session(request)
            await self._store.clear(request, request.cookies_out(), must_forget=True)
        except SessionStoreUnavailable as exc:
            return self._failed(request, request_id, exc, return_to)
        location = return_to
        provider = self._providers.get(session.provider) if session is not None else None
        if session is not None and provider is not None:
            after = self._post_logout or _origin(provider.redirect_url) + "/"
            location = await provider.end_session_url(session.id_token, after) or return_to
            log.info("logout", extra={"provider": provider.id, "subject": session.subject,
                                      "request_id": request_id})
        return redirect(request_id, location, "signed_out")

    async def end_revoked(self, request: RequestView, request_id: str) -> None:
        """A session whose subject or token was revoked ends here, cookie and stored copy, so no
        refresh brings it back. A browser may sign in again: the callback refuses a revoked
        subject, so that cannot loop."""
        await self._store.clear(request, request.cookies_out())
        log.info("revoked session ended", extra={"request_id": request_id})

    def _failed(self, request: RequestView, request_id: str, exc: SessionStoreUnavailable,
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
