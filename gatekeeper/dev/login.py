"""The dev issuer's login side: a minimal OpenID Provider for the authorization code flow with PKCE.

    login = DevLogin(issuer, clients=[DevClient("web", "web-secret", [rp_url + "/oauth2/callback"])])
    app = create_issuer_app(issuer, login=login)   # gatekeeper/dev/issuer_http.py

Routes, served next to discovery and JWKS:

    GET  /authorize   check the request, then the login form, or a silent login from the
                      ``devissuer_session`` cookie; the form POSTs back to /authorize
    POST /token       authorization_code (PKCE S256 required) and refresh_token (rotated)
    GET  /userinfo    sub, name, email, roles for a Bearer access token from here (POST too)
    GET  /logout      RP-initiated logout 1.0 (POST too)

Like ``DevIssuer`` it is for demos and tests only: users, codes, refresh tokens and login sessions
live in memory, and the login page prints the users' passwords.

Knobs and hooks are plain attributes, read on every request, so a test thread may set them:

- ``clients``, ``users``: dicts by client_id and username; add to them after construction, e.g.
  once the relying party's port is known.
- ``access_token_audience`` (None: the client_id), ``access_token_ttl_seconds``, ``id_token_alg``,
  ``id_token_ttl_seconds``, ``code_ttl_seconds``, ``refresh_token_ttl_seconds``.
- ``clock``: seconds since the epoch, used for every timestamp and expiry; replace it to move time.
- ``grant_counts``: token requests by grant_type, counted as they arrive (failed ones too).
- ``id_token_hook(header, claims, phase)`` plays a misbehaving provider. It gets the JOSE header
  and the claims about to be signed, and the phase, "code" or "refresh". It may edit both in
  place: the result is signed with the key ``header["kid"]`` names, or with the current key for
  ``header["alg"]`` when that kid is unknown or gone (so change or drop kid with alg); a member
  deleted or set to None (``kid``, ``typ``) is left out. Or it returns a whole token, sent
  verbatim (alg none, HS256 forgeries from tests/support/forge.py).
- ``userinfo_overrides``: merged into every userinfo response; a None value removes that claim.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jwt

from gatekeeper.dev.issuer import DevIssuer, IssuerKey
from gatekeeper.dev.login_values import (
    DEMO_USERS,
    AuthRequest,
    Code,
    DevClient,
    DevUser,
    Grant,
    LoginSession,
    RefreshToken,
)
from gatekeeper.dev.oauth import (
    CHALLENGE,
    OAuthError,
    basic_credentials,
    pkce_matches,
    secret_matches,
    with_query,
)

__all__ = ["DEMO_USERS", "SESSION_COOKIE", "DevClient", "DevLogin", "DevUser", "IdTokenHook"]

SESSION_COOKIE = "devissuer_session"
IdTokenHook = Callable[[dict[str, Any], dict[str, Any], str], str | None]


class DevLogin:
    """Users, clients, and the codes, tokens and sessions the login routes hand out."""

    def __init__(
        self,
        issuer: DevIssuer,
        *,
        users: Sequence[DevUser] = DEMO_USERS,
        clients: Sequence[DevClient],
        access_token_audience: str | None = None,
        access_token_ttl_seconds: int = 300,
        id_token_alg: str = "RS256",  # noqa: S107 (an algorithm name, not a password)
        id_token_ttl_seconds: int = 300,
        code_ttl_seconds: int = 60,
        refresh_token_ttl_seconds: int = 86400,
    ) -> None:
        self.issuer = issuer
        self.users = {user.username: user for user in users}
        self.clients = {client.client_id: client for client in clients}
        self.access_token_audience = access_token_audience
        self.access_token_ttl_seconds = access_token_ttl_seconds
        self.id_token_alg = id_token_alg
        self.id_token_ttl_seconds = id_token_ttl_seconds
        self.code_ttl_seconds = code_ttl_seconds
        self.refresh_token_ttl_seconds = refresh_token_ttl_seconds
        self.clock: Callable[[], float] = time.time
        self.grant_counts: Counter[str] = Counter()
        self.id_token_hook: IdTokenHook | None = None
        self.userinfo_overrides: dict[str, Any] = {}

        self._lock = threading.Lock()
        self._sessions: dict[str, LoginSession] = {}  # cookie secret -> session
        self._codes: dict[str, Code] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._revoked_families: set[str] = set()

    def discovery(self) -> dict[str, Any]:
        """The members this adds to the issuer's discovery document."""
        base = self.issuer.issuer
        return {
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "scopes_supported": ["openid", "profile", "email", "roles"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "name", "email", "roles",
            ],
            "authorization_response_iss_parameter_supported": True,  # RFC 9207
        }

    # -- authorization endpoint ---------------------------------------------------------------

    def authorization_target(self, params: Mapping[str, str]) -> tuple[DevClient, str]:
        """The client and its redirect_uri, checked before anything is sent there (RFC 6749 §4.1.2.1)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_client", "Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client.")
        return client, redirect_uri

    def authorization_request(self, params: Mapping[str, str]) -> AuthRequest:
        """The whole request; errors from here on go back to the client's redirect_uri."""
        client, redirect_uri = self.authorization_target(params)
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "Only response_type=code is supported.")
        scope = params.get("scope", "")
        if "openid" not in scope.split():
            raise OAuthError("invalid_scope", "The scope must contain openid.")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not CHALLENGE.fullmatch(challenge):
            raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 is required.")
        return AuthRequest(
            client, redirect_uri, scope, params.get("state"), params.get("nonce"), challenge
        )

    def session(self, cookie: str | None) -> LoginSession | None:
        with self._lock:
            return self._sessions.get(cookie or "")

    def log_in(self, username: str, password: str) -> tuple[str, LoginSession] | None:
        """A new login session and the cookie secret naming it, or None for bad credentials."""
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        session = LoginSession(user, auth_time=int(self.clock()))
        cookie = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[cookie] = session
        return cookie, session

    def issue_code(self, request: AuthRequest, session: LoginSession) -> str:
        grant = Grant(request.client.client_id, request.scope, session)
        code = secrets.token_urlsafe(32)
        expires_at = self.clock() + self.code_ttl_seconds
        with self._lock:
            self._codes[code] = Code(
                grant, request.redirect_uri, request.code_challenge, request.nonce, expires_at
            )
        return code

    # -- token endpoint -----------------------------------------------------------------------

    def token(self, authorization: str | None, form: Mapping[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.grant_counts[grant_type] += 1
        client = self._authenticate(authorization, form)
        if grant_type == "authorization_code":
            code = self._redeem_code(client, form)
            return self._issue_tokens(code.grant, nonce=code.nonce, phase="code")
        if grant_type == "refresh_token":
            return self._issue_tokens(self._rotate(client, form), nonce=None, phase="refresh")
        raise OAuthError("unsupported_grant_type", "Use authorization_code or refresh_token.")

    def _authenticate(self, authorization: str | None, form: Mapping[str, str]) -> DevClient:
        basic = basic_credentials(authorization)
        if basic is None:
            client_id, secret = form.get("client_id", ""), form.get("client_secret")
        elif "client_secret" in form or form.get("client_id", basic[0]) != basic[0]:
            # RFC 6749 §2.3: a client uses one authentication method per request.
            raise OAuthError("invalid_request", "Use one client authentication method.")
        else:
            client_id, secret = basic
        client = self.clients.get(client_id)
        if client is None or not secret_matches(client.client_secret, secret):
            raise OAuthError("invalid_client", "Client authentication failed.", status=401)
        return client

    def _redeem_code(self, client: DevClient, form: Mapping[str, str]) -> Code:
        # Only a successful redemption uses the code up; a failed attempt leaves it to its owner.
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is None or code.grant.client_id != client.client_id:
                raise OAuthError("invalid_grant", "Unknown authorization code.")
            if code.used:
                # OAuth 2.1 §4.1.3: a code used twice revokes what the first use obtained.
                self._revoked_families.add(code.grant.family)
                raise OAuthError("invalid_grant", "The authorization code was already used.")
            if code.expires_at <= self.clock():
                raise OAuthError("invalid_grant", "The authorization code expired.")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request.")
            if not pkce_matches(form.get("code_verifier", ""), code.code_challenge):
                raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.")
            code.used = True
            return code

    def _rotate(self, client: DevClient, form: Mapping[str, str]) -> Grant:
        with self._lock:
            token = self._refresh_tokens.get(form.get("refresh_token", ""))
            if token is None or token.grant.client_id != client.client_id:
                raise OAuthError("invalid_grant", "Unknown refresh token.")
            if token.grant.family in self._revoked_families:
                raise OAuthError("invalid_grant", "The refresh token was revoked.")
            if not token.active:
                # OAuth 2.1 §4.3.1: a rotated-out token coming back means theft; end the family.
                self._revoked_families.add(token.grant.family)
                raise OAuthError("invalid_grant", "The refresh token was already used.")
            if token.expires_at <= self.clock():
                raise OAuthError("invalid_grant", "The refresh token expired.")
            token.active = False
            return token.grant

    def _issue_tokens(self, grant: Grant, *, nonce: str | None, phase: str) -> dict[str, Any]:
        now = int(self.clock())
        user = grant.session.user
        access_token = self.issuer.mint(
            user.sub,
            audience=self.access_token_audience or grant.client_id,
            ttl_seconds=self.access_token_ttl_seconds,
            claims={"client_id": grant.client_id, "scope": grant.scope, "email": user.email,
                    "roles": list(user.roles)},
            headers={"typ": "at+jwt"},  # RFC 9068 §2.1
            now=now,
        )
        refresh_token = secrets.token_urlsafe(32)
        with self._lock:
            self._purge(now)
            self._refresh_tokens[refresh_token] = RefreshToken(grant, now + self.refresh_token_ttl_seconds)
        return {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl_seconds,
            "id_token": self._id_token(grant, nonce=nonce, phase=phase, now=now),
            "refresh_token": refresh_token,
            "scope": grant.scope,
        }

    def _purge(self, now: float) -> None:
        # Used codes stay, so that a late replay still revokes its tokens.
        self._codes = {k: c for k, c in self._codes.items() if c.used or c.expires_at > now}
        self._refresh_tokens = {k: t for k, t in self._refresh_tokens.items() if t.expires_at > now}

    def _id_token(self, grant: Grant, *, nonce: str | None, phase: str, now: int) -> str:
        user = grant.session.user
        header: dict[str, Any] = {"alg": self.id_token_alg, "typ": "JWT",
                                  "kid": self.issuer.key(alg=self.id_token_alg).kid}
        claims: dict[str, Any] = {
            "iss": self.issuer.issuer, "sub": user.sub, "aud": grant.client_id,
            "exp": now + self.id_token_ttl_seconds, "iat": now, "auth_time": grant.session.auth_time,
            "sid": grant.session.sid, "name": user.name, "email": user.email, "roles": list(user.roles),
        }
        if nonce is not None:  # OIDC Core §12.2: a refreshed ID token carries no nonce
            claims["nonce"] = nonce
        hook = self.id_token_hook
        forged = hook(header, claims, phase) if hook is not None else None
        return forged if forged is not None else self._sign(header, claims)

    def _sign(self, header: Mapping[str, Any], claims: dict[str, Any]) -> str:
        members = {name: value for name, value in header.items() if value is not None}
        alg = members.pop("alg", self.id_token_alg)
        kid = members.get("kid")
        key = self.issuer.key(kid) if kid in self.issuer.kids else self.issuer.key(alg=alg)
        members.setdefault("typ", None)  # or PyJWT puts back the typ a hook removed
        return jwt.encode(claims, key.private_key, algorithm=alg, headers=members)

    # -- userinfo and logout ------------------------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        claims = self._verify_own(access_token)
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float) or expiry <= self.clock():
            raise OAuthError("invalid_token", "The access token expired.", status=401)
        user = next((u for u in self.users.values() if u.sub == claims.get("sub")), None)
        if claims.get("client_id") not in self.clients or user is None:
            raise OAuthError("invalid_token", "Not an access token from this provider.", status=401)
        info: dict[str, Any] = {"sub": user.sub, "name": user.name, "email": user.email,
                                "roles": list(user.roles)}
        info.update(self.userinfo_overrides)
        return {name: value for name, value in info.items() if value is not None}

    def logout(self, params: Mapping[str, str], cookie: str | None) -> str | None:
        """End the login session; return the post-logout redirect, or None for the signed-out page.

        Nothing ends when the redirect is not registered for the client (RP-Initiated Logout §3).
        """
        hint = self._verify_own(params["id_token_hint"]) if "id_token_hint" in params else {}
        client = self._logout_client(params.get("client_id"), hint.get("aud"))
        target = params.get("post_logout_redirect_uri")
        if target is not None and (client is None or target not in client.post_logout_redirect_uris):
            raise OAuthError("invalid_request", "post_logout_redirect_uri is not registered for the client.")
        with self._lock:
            self._sessions.pop(cookie or "", None)
            if "sid" in hint:
                self._sessions = {k: s for k, s in self._sessions.items() if s.sid != hint["sid"]}
        return None if target is None else with_query(target, {"state": params.get("state")})

    def _logout_client(self, client_id: str | None, aud: Any) -> DevClient | None:
        audiences = [aud] if isinstance(aud, str) else list(aud or ())
        if client_id is not None and audiences and client_id not in audiences:
            raise OAuthError("invalid_request", "client_id does not match the id_token_hint.")
        client_id = client_id or next(iter(audiences), None)
        if client_id is None:
            return None
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_request", "Unknown client_id.")
        return client

    def _verify_own(self, token: str) -> dict[str, Any]:
        """The claims of a token this issuer signed, expired or not."""
        try:
            header = jwt.get_unverified_header(token)
            for key in self._candidate_keys(header):
                try:
                    claims: dict[str, Any] = jwt.decode(
                        token, key.public_key, algorithms=[key.alg], issuer=self.issuer.issuer,
                        options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                 "verify_aud": False, "require": ["iss", "sub", "exp"]},
                    )
                    return claims
                except jwt.InvalidSignatureError:
                    continue
        except jwt.InvalidTokenError as exc:
            raise OAuthError("invalid_token", "Not a token from this provider.", status=401) from exc
        raise OAuthError("invalid_token", "Not a token from this provider.", status=401)

    def _candidate_keys(self, header: Mapping[str, Any]) -> list[IssuerKey]:
        # A token without kid (an id_token_hook may make one) is tried with every key for its alg.
        keys = [self.issuer.key(kid) for kid in self.issuer.kids]
        if "kid" in header:
            return [key for key in keys if key.kid == header["kid"]]
        return [key for key in keys if key.alg == header.get("alg")]
