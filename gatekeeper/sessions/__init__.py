"""Browser sessions: the ``SessionStore`` protocol, the session value, and the cookie store.

    model.py     Session: what a login leaves for the pipeline; compact JSON
    crypto.py    SessionCipher: AES-256-GCM, HKDF-derived keys, rotation
    lifetime.py  Lifetime: absolute and idle expiry, shared by every store
    base.py      SessionStore protocol; SetCookie / CookieJar for the response
    cookie.py    CookieSessionStore (sealed session in chunked cookies); strip_session_cookies
    redis.py     RedisSessionStore (the session in Redis, an opaque ticket in the cookie)
    redis_cache.py  SessionCache: per-process copies, dropped on every replica via pub/sub
    errors.py    SessionInvalid (401), SessionTooLarge (500)
"""

from gatekeeper.errors import SessionInvalid, SessionTooLarge
from gatekeeper.sessions.base import Clock, CookieJar, SessionStore, SetCookie
from gatekeeper.sessions.cookie import CookieSessionStore, strip_session_cookies
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.lifetime import Lifetime
from gatekeeper.sessions.model import Session

__all__ = [
    "Clock",
    "CookieJar",
    "CookieSessionStore",
    "Lifetime",
    "Session",
    "SessionCipher",
    "SessionInvalid",
    "SessionStore",
    "SessionTooLarge",
    "SetCookie",
    "strip_session_cookies",
]
