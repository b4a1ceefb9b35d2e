"""The Redis session store's per-process copies of sessions, kept true by Redis pub/sub.

    channel  <prefix>sessions   one message per session written or deleted, by any replica:
                                the first 32 hex digits of SHA-256(session id) — never the id,
                                never the ticket's key, never a token

Every process subscribes (one connection, clients/redis_pubsub.py) and drops its copy of a
session when a message names it. A replica that writes or deletes a session publishes before it
answers, so a sign-out on one replica is honoured on every other one as soon as the message
arrives there: milliseconds, not ``redis_cache_seconds``.

A copy is used only while nothing can have been missed (else: read-through, Redis on every
request — not a shorter cache: while invalidations cannot arrive, any cache is a window in which
a sign-out elsewhere is not honoured, which is what this replaces):

- live: SUBSCRIBE is confirmed *and* this process's own PUBLISH on the channel works (an ACL
  user without rights on the channel never goes live: read-through, not failure; every replica
  shares the user, so each finds out for itself that nobody could tell it of a change);
- heard from within ``TRUST_SECONDS``: a quiet subscription is PINGed every ``PING_SECONDS``;
  messages arrive in order on one connection, so its PONG proves nothing before it was missed.
  A replica cut off from Redis (while the others are not) stops trusting its copies within that;
- a lost subscription empties the cache: messages may have been missed while it was down;
- a read that overlapped any invalidation (a message, a local write or delete, a change of the
  subscription) is not kept: Redis may have answered before the change while its message
  arrived before the answer;
- bounded: ``CACHE_ENTRIES`` entries, ``CACHE_BYTES`` bytes, ``session.redis_cache_seconds``
  since the read (the bound if a replica's PUBLISH ever failed after its write).

The copy is found by the whole ticket: the session id's digest and, compared in constant time,
its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient
from gatekeeper.clients.redis_pubsub import Subscription
from gatekeeper.lru import LRU
from gatekeeper.metrics import Metrics
from gatekeeper.sessions.model import Session

log = logging.getLogger("gatekeeper.sessions")

CACHE_ENTRIES = 10_000  # sessions in use on this process: active users, not all of them
CACHE_BYTES = 16 << 20
PING_SECONDS = 0.25  # a quiet subscription is PINGed this often...
TRUST_SECONDS = 1.0  # ...and copies are used only while Redis was heard from within this
DEAD_SECONDS = 3.0  # silent this long: reconnect (the cache is emptied)
_PROBE = b"probe"  # published once per subscription: proves this process may PUBLISH


def digest(session_id: str) -> str:
    """What the channel carries for a session: the id itself never leaves Redis's keys."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Entry:
    read_at: float  # monotonic, when the read was sent: the entry's age is never understated
    key: bytes
    session: Session


@dataclass(frozen=True, slots=True)
class Reading:
    """Taken before a Redis read: whether what it returns may be kept."""
    generation: int
    at: float


class SessionCache:
    """Copies of sessions read from Redis, dropped on every replica when one is written."""

    def __init__(self, client: RedisClient, channel: str, *, max_age: float,
                 metrics: Metrics | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._channel = channel
        self._max_age = max_age
        self._metrics = metrics
        self._monotonic = monotonic  # entry ages (a test moves it); liveness is real time
        self._entries: LRU[str, _Entry] = LRU(0)
        self._generation = 0  # bumped by every change that may make a read in flight stale
        self._live = False
        self._trusted_until = -math.inf  # time.monotonic(): copies are used until then
        self._error: str | None = "not subscribed yet"  # why not live, for the logs
        self._subscription = Subscription(client, channel, self, ping_seconds=PING_SECONDS,
                                          dead_seconds=DEAD_SECONDS)
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe in the background (nothing to do with ``max_age`` 0: nothing is cached)."""
        if self._max_age > 0 and not self._started:
            self._started = True
            self._subscription.start(name="session-invalidations").add_done_callback(_report_crash)

    async def aclose(self) -> None:
        await self._subscription.aclose()
        self._started = False

    @property
    def live(self) -> bool:
        """Copies are kept and used (else every read goes to Redis)."""
        return self._live and time.monotonic() <= self._trusted_until

    # -- the request path -----------------------------------------------------------------
    def get(self, session_id: str, key: bytes) -> Session | None:
        if not self._live or time.monotonic() > self._trusted_until:
            return None
        entry = self._entries.get(digest(session_id))
        if (entry is None or self._monotonic() - entry.read_at >= self._max_age
                or not secrets.compare_digest(entry.key, key)):
            return None
        return entry.session

    def reading(self) -> Reading:
        return Reading(self._generation, self._monotonic())

    def put(self, reading: Reading, session_id: str, key: bytes, session: Session) -> None:
        """Keep what a read that started at ``reading`` returned, unless anything changed since."""
        if reading.generation == self._generation and self.live:
            self._entries.put(digest(session_id), _Entry(reading.at, key, session))

    def changing(self, session_id: str) -> None:
        """Before and after a local write or delete: the copy goes, and reads in flight are not
        kept (Redis may answer them before or after the change)."""
        self._generation += 1
        self._entries.discard(digest(session_id))

    async def publish(self, session_id: str) -> None:
        """Tell every replica ``session_id`` changed. Never raises: a refused PUBLISH (an ACL
        without rights on the channel, a failing Redis) must not fail the write itself."""
        try:
            await self._client.publish(self._channel, digest(session_id))
        except REDIS_ERRORS as exc:
            self._count("publish")
            log.warning("session change not published: other replicas may keep their copy for "
                        "up to session.redis_cache_seconds",
                        extra={"channel": self._channel, "error": _describe(exc)})

    # -- the subscription (clients/redis_pubsub.py Listener) ------------------------------
    async def on_subscribed(self) -> None:
        # A user that may SUBSCRIBE but not PUBLISH would keep copies that no replica's sign-out
        # can reach: the probe's NOPERM ends this attempt (read-through, retried later).
        await self._client.publish(self._channel, _PROBE)
        self._generation += 1
        self._entries = LRU(CACHE_ENTRIES, max_bytes=CACHE_BYTES)
        self._live = True
        self._trusted_until = time.monotonic() + TRUST_SECONDS
        if self._error is not None:
            log.info("session cache on: invalidations arrive", extra={"channel": self._channel})
        self._error = None
        self._gauge(1)

    def on_message(self, data: object) -> None:
        self._generation += 1
        if isinstance(data, bytes) and len(data) == 32:
            self._entries.discard(data.decode("ascii", "replace"))

    def on_heard(self) -> None:
        self._trusted_until = time.monotonic() + TRUST_SECONDS

    def on_lost(self, error: BaseException | None) -> None:
        self._generation += 1
        self._live = False
        self._trusted_until = -math.inf
        self._entries = LRU(0)
        self._gauge(0)
        if error is None:
            return
        self._count("subscribe")
        if self._error is None or self._error == "not subscribed yet":
            log.warning("session cache off (read-through): no subscription to invalidations",
                        extra={"channel": self._channel, "error": _describe(error)})
        self._error = _describe(error)

    def _count(self, operation: str) -> None:
        if self._metrics is not None:
            self._metrics.session_invalidation_failures.labels(operation=operation).inc()

    def _gauge(self, value: int) -> None:
        if self._metrics is not None:
            self._metrics.session_cache_subscribed.set(value)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def _report_crash(task: asyncio.Task[None]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None:  # a bug: the cache stays off (read-through), requests are unaffected
        log.error("session invalidation task stopped", extra={"error": _describe(exc)})
