"""The provider's answer to a login, ``GET {prefix}/callback`` (routes.py): from the code to a
session that every request will accept, or ``LoginFailed`` / ``LoginDenied`` naming the check.

The answer must come from the provider the login started at (RFC 9207), bring an ID token for
this login's nonce (idtoken.py) and, when asked, userinfo about the same user (OIDC Core
§5.3.2); the identity it yields must be one requests would accept and not revoked. Saving the
session and answering the browser stay in routes.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from gatekeeper.authn.session import SessionAuthenticator
from gatekeeper.errors import InvalidToken, LoginDenied, LoginFailed, SessionInvalid, TokenRevoked
from gatekeeper.login.ports import IdentityCheck, RevocationCheck
from gatekeeper.login.state import PendingLogin
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.idtoken import verify_id_token
from gatekeeper.oidc.provider import Provider
from gatekeeper.principal import Principal
from gatekeeper.sessions.model import Session


class LoginCompletion:
    """Checks a provider's answer to one login and makes its session."""

    def __init__(self, providers: Mapping[str, Provider], sessions: SessionAuthenticator,
                 claims: ClaimsFilter, identities: IdentityCheck, revocations: RevocationCheck,
                 clock: Callable[[], float] = time.time) -> None:
        self._providers = providers
        self._sessions = sessions
        self._claims = claims
        self._identities = identities
        self._revocations = revocations
        self._clock = clock

    async def complete(self, login: PendingLogin,
                       params: Mapping[str, str]) -> tuple[Provider, Session, Principal]:
        """The provider, the new session and its principal for the callback's ``params``."""
        provider = self._providers.get(login.provider)
        if provider is None:
            raise LoginFailed("the sign-in provider is no longer configured", code="unknown_provider")
        if "error" in params:
            raise provider_error(params, login)
        endpoints = await provider.endpoints()
        issuer = params.get("iss")
        if (issuer is not None or endpoints.iss_parameter) and issuer != provider.settings.issuer:
            # RFC 9207: the answer names who sent it; another issuer means a mix-up attack.
            raise LoginFailed("the sign-in response comes from another issuer", code="login_issuer_mismatch")
        code = params.get("code")
        if not code:
            raise LoginFailed("the sign-in response has no code", code="login_code_missing")
        session = await self._session_from_code(provider, login, code)
        try:
            principal = self._sessions.principal(session)
        except SessionInvalid as exc:  # a subject that reads as another issuer's
            raise LoginFailed("this account cannot sign in here", code=exc.code) from exc
        try:
            # A session every request would refuse sends the browser back to the provider,
            # which remembers the user: an endless loop. Refuse it here, once.
            self._identities.identity(principal)
        except InvalidToken as exc:
            raise LoginFailed("this account's identity cannot be passed on to the app",
                              code=exc.code) from exc
        try:
            self._revocations.check_revoked(principal)  # RevocationStale (503) fails the login too
        except TokenRevoked as exc:
            raise LoginDenied("Your access to this application has been revoked.",
                              code="access_revoked") from exc
        return provider, session, principal

    async def _session_from_code(self, provider: Provider, login: PendingLogin, code: str) -> Session:
        tokens = await provider.exchange_code(code, login.code_verifier)
        if tokens.id_token is None:
            raise LoginFailed("the provider returned no ID token (is the openid scope granted?)",
                              code="id_token_missing")
        claims = await verify_id_token(tokens.id_token, provider.keys, provider.rules,
                                       nonce=login.nonce, now=self._clock())
        userinfo = None
        if provider.settings.userinfo:
            userinfo = await provider.userinfo(tokens.access_token)
            if userinfo is not None and userinfo.get("sub") != claims["sub"]:
                # OIDC Core §5.3.2: otherwise the userinfo answer is about someone else.
                raise LoginFailed("the provider's userinfo is about another user",
                                  code="userinfo_sub_mismatch")
        keep_id_token = provider.settings.end_session and (await provider.endpoints()).end_session
        kept, from_userinfo = self._claims.kept(claims, userinfo)
        return Session.new(
            subject=claims["sub"], provider=provider.id, claims=kept, userinfo_claims=from_userinfo,
            access_token=tokens.access_token, refresh_token=tokens.refresh_token,
            access_expires_at=tokens.access_expires_at, now=self._clock(),
            id_token=tokens.id_token if keep_id_token else None,  # only logout needs it
        )


# The error codes an authorization response may carry (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
# Anyone can put anything in ``error=``: another value is "other", so that a reason code, a log
# field and a metric label never take a value a client chose (each would be a new time series).
AUTHORIZATION_ERRORS = frozenset({
    "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type",
    "invalid_scope", "server_error", "temporarily_unavailable", "interaction_required",
    "login_required", "account_selection_required", "consent_required", "invalid_request_uri",
    "invalid_request_object", "request_not_supported", "request_uri_not_supported",
    "registration_not_supported",
})


def provider_error(params: Mapping[str, str], login: PendingLogin) -> LoginFailed:
    error = params.get("error", "")
    code = error if error in AUTHORIZATION_ERRORS else "other"
    if code == "access_denied":
        return LoginDenied("The sign-in was cancelled or refused at the provider.")
    return LoginFailed(f"The provider could not sign you in ({code}).", code=f"provider_{code}")
