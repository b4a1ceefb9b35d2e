"""A login in flight: its secrets (state, nonce, PKCE verifier) sealed in a cookie of its own.

Each login gets a cookie named ``<session cookie>_login_<state>``, so logins started in several
tabs complete independently (one shared cookie would keep only the last one). The cookie is
sealed (AES-GCM, purpose "login", bound to its name), HttpOnly, SameSite=Lax — the provider's
redirect back is a top-level GET, which Lax lets through — with ``Path`` set to the callback so
the browser sends it nowhere else, and it expires with ``oidc.login_timeout_seconds``. The
``state`` parameter finds the cookie, so a callback without the cookie that started the login
(another browser: login CSRF, RFC 6749 §10.12) cannot complete.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass

from authlib.common.security import generate_token

from gatekeeper.cookies import SetCookie
from gatekeeper.errors import LoginFailed, SessionInvalid
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import LOGIN_COOKIE_INFIX, request_cookies
from gatekeeper.sessions.crypto import SessionCipher

_STATE = re.compile(r"[A-Za-z0-9_\-]{22,64}")


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    provider: str
    return_to: str  # already checked by safe_redirect
    expires_at: int

    @classmethod
    def begin(cls, *, provider: str, return_to: str, now: float, timeout_seconds: int) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
            code_verifier=generate_token(64),  # RFC 7636 §4.1: 43-128 unreserved characters
            provider=provider, return_to=return_to, expires_at=int(now) + timeout_seconds,
        )


class LoginCookies:
    """Seals a PendingLogin into its cookie and finds it again at the callback."""

    def __init__(self, cipher: SessionCipher, *, session_cookie: str, callback_path: str,
                 secure: bool, timeout_seconds: int) -> None:
        self._cipher = cipher
        self._prefix = session_cookie + LOGIN_COOKIE_INFIX
        self._path = callback_path
        self._secure = secure
        self._timeout = timeout_seconds

    def cookie(self, login: PendingLogin) -> SetCookie:
        name = self._prefix + login.state
        sealed = self._cipher.seal(json.dumps(asdict(login)).encode(), name=name)
        return SetCookie(name=name, value=sealed, max_age=self._timeout, secure=self._secure,
                         path=self._path)

    def expired(self, state: str | None) -> SetCookie | None:
        """The cookie that deletes a used login state; None for a value that names no cookie."""
        if not state or not _STATE.fullmatch(state):
            return None
        return SetCookie(name=self._prefix + state, value="", max_age=0, secure=self._secure,
                         path=self._path)

    def find(self, request: RequestView, state: str | None, now: float) -> PendingLogin:
        if not state or not _STATE.fullmatch(state):
            raise LoginFailed("the sign-in response has no valid state", code="login_state_missing")
        sealed = request_cookies(request.header_values(b"cookie")).get(self._prefix + state)
        if sealed is None:
            raise LoginFailed("this sign-in was not started in this browser, or it took too long",
                              code="login_state_unknown")
        try:
            data = json.loads(self._cipher.open(sealed, name=self._prefix + state))
            login = PendingLogin(**data)
        except (SessionInvalid, ValueError, TypeError) as exc:
            raise LoginFailed("the sign-in state cookie is not valid", code="login_state_invalid") from exc
        if not secrets.compare_digest(login.state, state):
            raise LoginFailed("the sign-in state does not match", code="login_state_mismatch")
        if now >= login.expires_at:
            raise LoginFailed("this sign-in took too long; please start again", code="login_expired")
        return login
