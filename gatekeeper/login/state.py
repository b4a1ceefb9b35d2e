"""A login in flight: its secrets (state, nonce, PKCE verifier) sealed in a cookie of its own.

Each login gets a cookie named ``<session cookie>_login_<state>``, so logins started in several
tabs complete independently (one shared cookie would keep only the last one). The cookie is
sealed (AES-GCM, purpose "login", bound to its name), HttpOnly, SameSite=Lax — the provider's
redirect back is a top-level GET, which Lax lets through — and it expires with
``oidc.login_timeout_seconds``. The ``state`` parameter finds the cookie, so a callback without
the cookie that started the login (another browser: login CSRF, RFC 6749 §10.12) cannot complete.

Abandoned logins must not pile up: ~130 of them once made every callback 431 for ten minutes (a
page on another site can start logins in a loop, too). So a new login keeps at most
``MAX_PENDING_LOGINS`` others, within ``MAX_PENDING_BYTES`` in all, and deletes the oldest beyond
(and any it cannot open). That needs the browser to show them wherever a login starts — the
``/start`` route and any protected page — so they have ``Path=/``; gatekeeper removes them before
a request reaches the app, and their bound is part of the header room a session leaves.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass

from authlib.common.security import generate_token

from gatekeeper.cookies import SetCookie, request_cookies
from gatekeeper.errors import LoginFailed, SessionInvalid
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import LOGIN_COOKIE_INFIX
from gatekeeper.sessions.crypto import SessionCipher

_STATE = re.compile(r"[A-Za-z0-9_\-]{22,64}")
MAX_PENDING_LOGINS = 4  # a new login keeps at most this many others (tabs signing in together)
MAX_PENDING_BYTES = 4096  # all login cookies together, name=value, the new one included
_DELETE_BOUND = 32  # login cookies deleted per answer at most, whatever a client sent


@dataclass(frozen=True, slots=True)
class PendingLogin:
    state: str
    nonce: str
    code_verifier: str
    provider: str
    return_to: str  # already checked by safe_redirect
    expires_at: int
    # The page the user was on when the login began (a same-origin Referer, checked), offered
    # again when the login is cancelled; None when unknown.
    came_from: str | None = None
    # When it began, to the microsecond: which logins are the newest when several began within
    # one second (expires_at is whole seconds); 0 in a cookie written before it was kept.
    started_at: float = 0.0

    @classmethod
    def begin(cls, *, provider: str, return_to: str, now: float, timeout_seconds: int,
              came_from: str | None = None) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
            code_verifier=generate_token(64),  # RFC 7636 §4.1: 43-128 unreserved characters
            provider=provider, return_to=return_to, expires_at=int(now) + timeout_seconds,
            came_from=came_from, started_at=now,
        )


class LoginCookies:
    """Seals a PendingLogin into its cookie and finds it again at the callback."""

    def __init__(self, cipher: SessionCipher, *, session_cookie: str, secure: bool,
                 timeout_seconds: int) -> None:
        self._cipher = cipher
        self._prefix = session_cookie + LOGIN_COOKIE_INFIX
        self._path = "/"  # seen wherever a login starts (see above)
        self._secure = secure
        self._timeout = timeout_seconds

    def cookie(self, login: PendingLogin) -> SetCookie:
        name = self._prefix + login.state
        sealed = self._cipher.seal(json.dumps(asdict(login)).encode(), name=name)
        return SetCookie(name=name, value=sealed, max_age=self._timeout, secure=self._secure,
                         path=self._path)

    def begin(self, request: RequestView, login: PendingLogin, now: float) -> list[SetCookie]:
        """The new login's cookie, and deletions that keep the pending logins within bounds:
        the newest are kept, the oldest and any that cannot be opened (expired, tampered,
        another key) go."""
        new = self.cookie(login)
        # ((expires_at, started_at), name, bytes); expires_at -1: unusable
        pending: list[tuple[tuple[int, float], str, int]] = []
        for name, value in request_cookies(request.header_values(b"cookie")).items():
            if name.startswith(self._prefix) and name != new.name:
                pending.append((self._expiry(name, value, now), name, len(name) + len(value) + 1))
        pending.sort(reverse=True)  # newest first
        cookies, count, total = [new], 1, len(new.name) + len(new.value) + 1
        for (expires_at, _), name, size in pending:
            if (expires_at >= 0 and count < 1 + MAX_PENDING_LOGINS
                    and total + size <= MAX_PENDING_BYTES):
                count, total = count + 1, total + size
            elif len(cookies) <= _DELETE_BOUND:
                cookies.append(SetCookie(name=name, value="", max_age=0, secure=self._secure,
                                         path=self._path))
        return cookies

    def _expiry(self, name: str, sealed: str, now: float) -> tuple[int, float]:
        """(expires_at, started_at) of a pending login; expires_at -1 when it cannot be used."""
        try:
            data = json.loads(self._cipher.open(sealed, name=name))
            expires_at, started_at = data["expires_at"], data.get("started_at", 0.0)
        except (SessionInvalid, ValueError, TypeError, KeyError, AttributeError):
            return -1, 0.0
        if not isinstance(started_at, int | float):
            started_at = 0.0
        return (expires_at, float(started_at)) if isinstance(expires_at, int) and expires_at > now \
            else (-1, 0.0)

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
