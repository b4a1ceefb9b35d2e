"""The Redis session store: the browser holds an opaque ticket, Redis holds the session.

    cookie  NAME = sealed("<id>.<key>")        id: 128 random bits; key: a per-session AES key
    Redis   <prefix>session:<id> = AES-256-GCM(key, session JSON), TTL = the session's lifetime
            <prefix>sub:<hash>, <prefix>sid:<hash>     session ids per provider and sub / sid

Redis alone cannot read a session (the key is only in the browser's cookie), the cookie alone
holds no token, and any replica serves any session. Every Redis call has a short timeout: a Redis
that is down or frozen makes a session request fail with ``SessionStoreUnavailable`` (503) and
keeps the browser's cookie — never a hang, never a silent logout.

Cache (redis_cache.py): a process reuses a session it read, so a busy session costs a Redis read
now and then, not one per request. Every write and delete, on any replica, is published on
``<prefix>sessions`` before the request that made it is answered, and every process drops its
copy on receipt: a sign-out on one replica is honoured on all of them within milliseconds. While
that subscription is down (or an ACL user may not use it), every request reads Redis. The
session's lifetime is checked on every use, cached or not.

Refresh across replicas (``refresh_exclusively``): a short per-session lock in Redis; the replica
that wins re-reads the session (another may have refreshed it already), refreshes and stores the
result; the others wait for that result instead of refreshing again, so a provider that rotates
refresh tokens never sees one twice, however a load balancer spreads a user's requests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient
from gatekeeper.cookies import CookieJar, SetCookie, request_cookies
from gatekeeper.errors import SessionInvalid, SessionStoreUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.request import RequestView
from gatekeeper.sessions.base import Clock
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.lifetime import Lifetime
from gatekeeper.sessions.model import Session
from gatekeeper.sessions.redis_cache import SessionCache
from gatekeeper.settings import RedisSettings, SessionSettings

log = logging.getLogger("gatekeeper.sessions")
T = TypeVar("T")

KEY_BYTES = 32
NONCE_BYTES = 12
LOCK_MILLISECONDS = 15_000  # longer than any refresh (http_timeout ≤ 60 s is the worst case)
WAIT_SECONDS = 20.0  # a losing replica waits this long for the winner's tokens at most
_POLL_SECONDS = 0.05
# Delete the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    key: bytes


class RedisSessionStore:
    """``SessionStore`` keeping sessions in Redis behind an opaque cookie ticket."""

    def __init__(
        self,
        client: RedisClient,
        settings: SessionSettings,
        redis: RedisSettings,
        *,
        clock: Clock = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        touch_seconds: int = 60,
        metrics: Metrics | None = None,
    ) -> None:
        self._client = client
        self._name = settings.cookie_name
        self._cipher = SessionCipher.from_settings(settings, purpose="ticket")
        self._lifetime = Lifetime.from_settings(settings, touch_seconds=touch_seconds)
        self._index_seconds = settings.lifetime_seconds
        self._prefix = redis.key_prefix
        self._secure = settings.cookie_secure
        self._domain = settings.cookie_domain
        self._clock = clock
        self._cache = SessionCache(client, f"{self._prefix}sessions",
                                   max_age=settings.redis_cache_seconds, metrics=metrics,
                                   monotonic=monotonic)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to invalidations in the background; until then, every read is Redis's."""
        self._cache.start()

    async def aclose(self) -> None:
        await self._cache.aclose()

    @property
    def caching(self) -> bool:
        """Copies of sessions are kept and used (else every request reads Redis)."""
        return self._cache.live

    # -- SessionStore --------------------------------------------------------------------
    async def load(self, request: RequestView, cookies: CookieJar) -> Session | None:
        try:
            ticket = self._ticket(request)
        except SessionInvalid:
            cookies.set(self._cookie("", 0))
            raise
        if ticket is None:
            return None
        session = await self._read(ticket, cached=True)
        if session is None:
            cookies.set(self._cookie("", 0))
            raise SessionInvalid("the session has ended (signed out or expired)", code="session_ended")
        now = self._clock()
        try:
            self._lifetime.check(session, now)
        except SessionInvalid:
            cookies.set(self._cookie("", 0))
            await self._forget(ticket.id)
            raise
        touched = self._lifetime.touched(session, now)
        if touched is None:
            return session
        try:
            # Only while it still exists: a logout elsewhere in the meantime stays a logout.
            await self._write(touched, ticket.key, existing=True)  # the TTL restarts: idle timeout
        except SessionStoreUnavailable:
            log.warning("session touch not stored", extra={"subject": session.subject})
        return touched

    async def save(self, request: RequestView, cookies: CookieJar, session: Session) -> None:
        try:
            current = self._ticket(request)
        except SessionInvalid:
            current = None
        if current is not None and current.id == session.id:
            # A refresh: same ticket, same cookie; and only if no logout ended it meanwhile.
            if not await self._write(session, current.key, existing=True):
                raise SessionInvalid("the session has ended (signed out or expired)",
                                     code="session_ended")
            return
        if current is not None:
            await self._forget(current.id)  # replaced by a new login
        key = os.urandom(KEY_BYTES)
        await self._write(session, key)
        ticket = f"{session.id}.{base64.urlsafe_b64encode(key).rstrip(b'=').decode()}"
        sealed = self._cipher.seal(ticket.encode(), name=self._name)
        cookies.set(self._cookie(sealed, self._lifetime.remaining(session, self._clock())))

    async def clear(self, request: RequestView, cookies: CookieJar, *, must_forget: bool = False) -> None:
        try:
            ticket = self._ticket(request)
        except SessionInvalid:
            ticket = None
        if ticket is not None:
            try:
                await self._forget(ticket.id)
            except SessionStoreUnavailable:
                if must_forget:
                    # A sign-out: the session lives on in Redis, and so would a copied cookie.
                    # Say so (503) and keep the cookie, rather than report a sign-out.
                    raise
                # Already unusable (revoked, expired, refused refresh): it lapses with its TTL.
                log.warning("session not deleted from redis: unreachable")
        cookies.set(self._cookie("", 0))

    async def verify_connection(self) -> None:
        try:
            await self._client.ping()
        except REDIS_ERRORS as exc:
            raise SessionStoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def refresh_exclusively(
        self, request: RequestView, session: Session,
        refresh: Callable[[Session], Awaitable[Session]],
    ) -> Session:
        ticket = self._ticket(request)
        if ticket is None or ticket.id != session.id:
            return await refresh(session)
        lock = f"{self._prefix}lock:{session.id}"
        token = secrets.token_hex(16)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            if await self._call(self._client.set(lock, token, nx=True, px=LOCK_MILLISECONDS)):
                try:
                    stored = await self._read(ticket)
                    if stored is None:  # ended (logout) before we got here: stays ended
                        raise SessionInvalid("the session has ended", code="session_ended")
                    if stored.access_token != session.access_token:
                        return stored  # another replica refreshed while we waited
                    fresh = await refresh(stored)
                    if not await self._write(fresh, ticket.key, existing=True):
                        raise SessionInvalid("the session ended during its refresh",
                                             code="session_ended")
                    return fresh
                finally:
                    await self._release(lock, token)
            await asyncio.sleep(_POLL_SECONDS)
            stored = await self._read(ticket)
            if stored is None:
                raise SessionInvalid("the session ended during its refresh", code="session_ended")
            if stored.access_token != session.access_token:
                return stored  # the winner's tokens
            if time.monotonic() > deadline:
                raise SessionStoreUnavailable("another replica's refresh did not finish in time")

    async def end_sessions(self, provider: str, *, subject: str | None = None,
                           sid: str | None = None) -> int:
        """End every session of ``subject`` and/or ``sid`` at ``provider`` (back-channel logout,
        on every replica at once); return how many there were."""
        index_keys = []
        if subject is not None:
            index_keys.append(self._index_key("sub", provider, subject))
        if sid is not None:
            index_keys.append(self._index_key("sid", provider, sid))
        ids: set[str] = set()
        for index in index_keys:
            members = await self._call(self._client.smembers(index))
            ids.update(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        ended = 0
        for session_id in ids:
            async with self._changing(session_id):
                ended += int(await self._call(self._client.delete(self._session_key(session_id))))
        for index in index_keys:
            await self._call(self._client.delete(index))
        return ended

    async def seen_once(self, name: str, seconds: int) -> bool:
        """True the first time ``name`` is seen within ``seconds`` (replay protection)."""
        return bool(await self._call(self._client.set(f"{self._prefix}seen:{name}", b"1", nx=True,
                                                      ex=max(1, seconds))))

    # -- internals -----------------------------------------------------------------------
    def _ticket(self, request: RequestView) -> Ticket | None:
        value = request_cookies(request.header_values(b"cookie")).get(self._name)
        if value is None:
            return None
        raw = self._cipher.open(value, name=self._name).decode("ascii", "replace")
        session_id, _, key_text = raw.partition(".")
        try:
            key = base64.urlsafe_b64decode(key_text + "=" * (-len(key_text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SessionInvalid("malformed session ticket") from exc
        if len(key) != KEY_BYTES or not session_id:
            raise SessionInvalid("malformed session ticket")
        return Ticket(session_id, key)

    async def _read(self, ticket: Ticket, *, cached: bool = False) -> Session | None:
        """The stored session; with ``cached``, this process's copy will do (a refresh re-reads:
        another replica may have refreshed meanwhile)."""
        if cached:
            hit = self._cache.get(ticket.id, ticket.key)
            if hit is not None:
                return hit
        reading = self._cache.reading()
        data = await self._call(self._client.get(self._session_key(ticket.id)))
        if data is None:
            return None
        if not isinstance(data, bytes):  # the client is made without decode_responses
            raise SessionInvalid("the stored session is not bytes")
        try:
            plaintext = AESGCM(ticket.key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:],
                                                  ticket.id.encode())
        except (InvalidTag, ValueError) as exc:
            raise SessionInvalid("the stored session does not open with this ticket") from exc
        session = Session.from_json(plaintext)
        if session.id != ticket.id:
            raise SessionInvalid("the stored session belongs to another ticket")
        self._cache.put(reading, ticket.id, ticket.key, session)
        return session

    @contextlib.asynccontextmanager
    async def _changing(self, session_id: str) -> AsyncIterator[None]:
        """Around a write or delete of a session: this process's copy goes, before and after (a
        read that overlapped it keeps nothing), and once Redis has confirmed it every other
        process is told, before the request that made the change is answered."""
        self._cache.changing(session_id)
        try:
            yield
        finally:
            self._cache.changing(session_id)
        await self._cache.publish(session_id)  # not after a failed call: it raised past this

    async def _write(self, session: Session, key: bytes, *, existing: bool = False) -> bool:
        """Store ``session``; with ``existing``, only over a stored one (SET XX). False when
        nothing was written."""
        ttl = self._lifetime.ttl(session, self._clock())
        if ttl <= 0:
            return False
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(key).encrypt(nonce, session.to_json(), session.id.encode())
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._session_key(session.id), sealed, ex=ttl, xx=existing)
        indexes = [self._index_key("sub", session.provider, session.subject)]
        sid = session.claims.get("sid")
        if isinstance(sid, str) and sid:
            indexes.append(self._index_key("sid", session.provider, sid))
        for index in indexes:
            pipe.sadd(index, session.id)
            pipe.expire(index, self._index_seconds)
        async with self._changing(session.id):
            results = await self._call(pipe.execute())
        return bool(results[0])

    async def _forget(self, session_id: str) -> None:
        async with self._changing(session_id):
            await self._call(self._client.delete(self._session_key(session_id)))

    async def _release(self, lock: str, token: str) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # else it expires by itself
            await self._client.eval(_RELEASE, 1, lock, token)

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except REDIS_ERRORS as exc:
            raise SessionStoreUnavailable("the session store (redis) is unavailable") from exc

    def _session_key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    def _index_key(self, kind: str, provider: str, value: str) -> str:
        # Per provider: two providers may use the same sub for different people. Hashed: a
        # subject or sid is an unbounded string, a key should not be.
        digest = hashlib.sha256(f"{provider}\n{value}".encode()).hexdigest()[:32]
        return f"{self._prefix}{kind}:{digest}"

    def _cookie(self, value: str, max_age: int) -> SetCookie:
        return SetCookie(name=self._name, value=value, max_age=max_age, secure=self._secure,
                         domain=self._domain)
