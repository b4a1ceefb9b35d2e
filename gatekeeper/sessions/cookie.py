"""The cookie session store: the whole session, sealed (crypto.py), kept by the browser.

Layout, NAME being ``session.cookie_name``::

    NAME=<count>.<piece 0>      count = cookies holding this session, 1..max_chunks
    NAME_1=<piece 1>            … through NAME_<count-1>

The pieces joined are one sealed value whose associated data names NAME, so a piece cannot be
moved, dropped or swapped without failing authentication. Each ``name=value`` stays under
``CHUNK_BYTES``: browsers keep at least 4096 bytes per cookie (RFC 6265 §6.1) and some count the
attributes too. Loading reads the count from the first cookie, refuses a count above
``max_chunks`` before looking at any other cookie, and refuses a missing piece — never "read
chunks until one is absent" (mod_auth_openidc CVE-2024-24814: ``_chunks=99999999``).

Gatekeeper owns NAME, NAME_<digits> and the login-state cookies NAME_login_<state>
(login/state.py): those are removed from the request before it reaches the app
(``strip_session_cookies``), read and stripped by the one Cookie parser (gatekeeper/cookies.py),
so a name with white space around it that an app trims is ours too; anything else — ``NAME_x``,
``NAMEx``, another case — is the app's and passes byte for byte.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable

from gatekeeper.cookies import cookie_pairs, request_cookies, strip_cookies
from gatekeeper.errors import SessionInvalid, SessionTooLarge
from gatekeeper.lru import LRU
from gatekeeper.request import RequestView
from gatekeeper.sessions.base import Clock, CookieJar, SetCookie
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.lifetime import Lifetime
from gatekeeper.sessions.model import Session
from gatekeeper.settings import SESSION_CHUNK_BYTES, SessionSettings

LOGIN_COOKIE_INFIX = "_login_"
CHUNK_BYTES = SESSION_CHUNK_BYTES  # per cookie, name=value
CLEAR_BOUND = 32  # at most this many of our cookies expired per response, whatever was sent
OPENED_CACHE_SIZE = 4096  # sessions kept opened per process (a few KB each)
_COUNT = re.compile(r"([1-9][0-9]{0,2})\.")  # canonical: "01." or "+1." would alter nothing


class CookieSessionStore:
    """``SessionStore`` keeping the sealed session in the browser's cookies."""

    def __init__(
        self, settings: SessionSettings, *, clock: Clock = time.time, touch_seconds: int = 60
    ) -> None:
        self._name = settings.cookie_name
        self._cipher = SessionCipher.from_settings(settings)
        self._lifetime = Lifetime.from_settings(settings, touch_seconds=touch_seconds)
        self._max_chunks = settings.max_chunks
        self._secure = settings.cookie_secure
        self._domain = settings.cookie_domain
        self._clock = clock
        # Opened sessions by their exact sealed text: the same authenticated bytes always open
        # to the same session, so a browser's repeated requests skip base64, AES-GCM and JSON
        # (~60 µs). Lifetimes are still checked on every request.
        self._opened: LRU[str, Session] = LRU(OPENED_CACHE_SIZE)
        self._touched: LRU[str, tuple[Session, list[SetCookie]]] = LRU(OPENED_CACHE_SIZE)
        # Room for "_NN" or "NN." and "=" next to the name in every chunk.
        self._piece_chars = CHUNK_BYTES - len(self._name.encode("utf-8")) - 4

    async def save(self, request: RequestView, cookies: CookieJar, session: Session) -> None:
        self._write(request, cookies, self._seal(session))

    async def load(self, request: RequestView, cookies: CookieJar) -> Session | None:
        jar = request_cookies(request.header_values(b"cookie"))
        first = jar.get(self._name)
        if first is None:
            return None
        now = self._clock()
        try:
            sealed, session = self._open(first, jar)
            self._lifetime.check(session, now)
        except SessionInvalid:
            self._expire(request, cookies)  # so the browser stops sending it
            raise
        touched = self._lifetime.touched(session, now)
        if touched is None:
            return session
        # Time to record the visit. Requests the browser sent before it saw the new cookie
        # carry the old one: they get the same new cookie, sealed once, not one seal each.
        retouched = self._touched.get(sealed)
        if retouched is None or self._lifetime.touched(retouched[0], now) is not None:
            retouched = (touched, self._seal(touched))
            self._touched.put(sealed, retouched)
        self._write(request, cookies, retouched[1])
        return retouched[0]

    def _seal(self, session: Session) -> list[SetCookie]:
        token = self._cipher.seal(session.to_json(), name=self._name)
        pieces = [token[i : i + self._piece_chars] for i in range(0, len(token), self._piece_chars)]
        if len(pieces) > self._max_chunks:
            raise SessionTooLarge(
                f"the session needs {len(pieces)} cookies and session.max_chunks is "
                f"{self._max_chunks}: keep fewer claims or use the redis store")
        max_age = self._lifetime.remaining(session, self._clock())
        pieces[0] = f"{len(pieces)}.{pieces[0]}"
        names = chunk_names(self._name, len(pieces))
        return [self._cookie(name, piece, max_age) for name, piece in zip(names, pieces, strict=True)]

    def _write(self, request: RequestView, cookies: CookieJar, sealed: list[SetCookie]) -> None:
        # A shorter session than the last one: the leftover chunks must go.
        self._expire(request, cookies, keep=frozenset(c.name for c in sealed))
        for cookie in sealed:
            cookies.set(cookie)

    async def clear(self, request: RequestView, cookies: CookieJar, *, must_forget: bool = False) -> None:
        self._expire(request, cookies)

    async def refresh_exclusively(
        self, request: RequestView, session: Session,
        refresh: Callable[[Session], Awaitable[Session]],
    ) -> Session:
        return await refresh(session)  # nothing shared: once per process is the refresher's job

    async def verify_connection(self) -> None:
        return None  # nothing behind the browser's cookies to reach

    def _open(self, first: str, jar: dict[str, str]) -> tuple[str, Session]:
        match = _COUNT.match(first)
        if match is None:
            raise SessionInvalid("malformed session cookie")
        count = int(match.group(1))
        if count > self._max_chunks:
            raise SessionInvalid(f"session cookie claims {count} chunks; at most "
                                 f"{self._max_chunks} are read")
        pieces = [first[match.end() :]]
        for name in chunk_names(self._name, count)[1:]:
            piece = jar.get(name)
            if piece is None:
                raise SessionInvalid(f"session chunk {name} is missing")
            pieces.append(piece)
        sealed = "".join(pieces)
        session = self._opened.get(sealed)
        if session is None:
            session = Session.from_json(self._cipher.open(sealed, name=self._name))
            self._opened.put(sealed, session)
        return sealed, session

    def _expire(self, request: RequestView, cookies: CookieJar, keep: frozenset[str] = frozenset()) -> None:
        ours = self._name.encode("latin-1")
        owned = {self._name: None}  # the base name always: a sign-out with no cookie is harmless
        login_prefix = ours + LOGIN_COOKIE_INFIX.encode()
        for found, _ in cookie_pairs(request.header_values(b"cookie")):
            # Login-state cookies live on the callback path; the login code ends them.
            if owns(found, ours) and not found.startswith(login_prefix) and len(owned) < CLEAR_BOUND:
                owned[found.decode("latin-1")] = None
        for name in owned:
            if name not in keep:
                cookies.set(self._cookie(name, "", 0))

    def _cookie(self, name: str, value: str, max_age: int) -> SetCookie:
        return SetCookie(name=name, value=value, max_age=max_age, secure=self._secure,
                         domain=self._domain)


def chunk_names(name: str, count: int) -> list[str]:
    return [name, *(f"{name}_{i}" for i in range(1, count))]


def owns(cookie: bytes, name: bytes) -> bool:
    """Is ``cookie`` one of gatekeeper's: NAME, NAME_<ASCII digits> or NAME_login_<state>?"""
    if cookie == name:
        return True
    prefix = name + b"_"
    if cookie.startswith(prefix + LOGIN_COOKIE_INFIX[1:].encode()):
        return True
    return cookie.startswith(prefix) and cookie[len(prefix) :].isdigit()  # bytes: ASCII digits only


def strip_session_cookies(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str
) -> list[tuple[bytes, bytes]]:
    """The request headers without gatekeeper's session cookies (every chunk, every login state,
    every Cookie header), the app's cookies unchanged; a Cookie header left empty is dropped."""
    name = cookie_name.encode("latin-1")
    return strip_cookies(headers, lambda found: owns(found, name))
