"""The token revocation list: revoked token ids (``jti``) and subjects (``sub``), shared by every
replica through Redis and checked on the request path without a Redis round trip.

    Redis  <prefix>revoked      sorted set; member ``jti:<value>`` or ``sub:<value>``, score = the
                                expiry (epoch seconds); expired members are trimmed now and then
           <prefix>revocations  channel; one ``<member> <expiry>`` message per new revocation
    local  jti → expiry, sub → expiry: two dicts that ``check`` reads in O(1)

Staying current: a subscriber applies each published revocation as it arrives (milliseconds,
well within a second). After every (re)subscribe, and every ``resync_seconds``, a full read of the
set heals whatever a missed message left out. A resync *merges*: an entry leaves the local list
only when it expires, and an entry Redis no longer holds (a restart without persistence) is
written back, so losing Redis's data never brings a revoked token back to life.

Failing closed: while Redis is down the cached list keeps answering (``readiness`` says "stale"),
until the last good sync is older than ``max_stale_seconds``; past that bound, and before the
first sync, every authenticated request gets ``RevocationStale`` (503). Anonymous requests to
public paths are not affected.

Revocations cannot be withdrawn, only left to expire. A ``sub`` revocation names a subject as
gatekeeper sees it — issuer-namespaced when several issuers are configured (subjects.py) — so
revoking the partner issuer's "alice" never revokes the main issuer's: ``POST /revoke`` takes
the namespaced subject, or ``sub`` with ``iss`` and gatekeeper applies the issuer's prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient
from gatekeeper.clients.redis_pubsub import Subscription, stop_tasks
from gatekeeper.errors import (
    RevocationStale,
    RevocationStoreUnavailable,
    SessionRevoked,
    TokenRevoked,
)
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.revocation_entry import Kind, Revocation, parse_member, parse_request
from gatekeeper.settings import RevocationSettings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.types import Check

log = logging.getLogger("gatekeeper.revocation")

_TRIM_EVERY_SECONDS = 60.0
_PING_SECONDS = 5.0  # a quiet subscription is PINGed this often; twice that silent: reconnect


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class RevocationList:
    """The local copy of the revocation list, kept current from Redis by two background tasks."""

    def __init__(
        self,
        redis: RedisClient,
        settings: RevocationSettings,
        key_prefix: str,
        metrics: Metrics,
        *,
        namespaces: SubjectNamespaces | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._namespaces = namespaces or SubjectNamespaces()
        self._redis = redis
        self._settings = settings
        self._key = f"{key_prefix}revoked"
        self._channel = f"{key_prefix}revocations"
        self._metrics = metrics
        self._clock = clock  # expiries (epoch seconds)
        self._monotonic = monotonic  # staleness
        self._jti: dict[str, float] = {}
        self._sub: dict[str, float] = {}
        self._synced_at: float | None = None  # monotonic time of the last good sync
        self._fresh_until = -math.inf  # check() refuses once monotonic() passes this
        self.last_error: str | None = None  # of the last sync attempt; None when it worked
        self._subscribe_error: str | None = "not subscribed yet"
        self._subscription: int | None = None  # the confirmed subscription, if any
        self._live = False  # a resync completed within the current subscription
        self._subscriptions = itertools.count(1)
        self._arrived: set[str] = set()  # members applied while a resync's read was in flight
        self._resync_lock = asyncio.Lock()
        self._trimmed_at = -math.inf
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._said_stale = False  # logged that requests now fail closed
        # Pinged when quiet for this long; twice that silent: reconnect.
        quiet = min(settings.resync_seconds, _PING_SECONDS)
        self._subscriber = Subscription(redis, self._channel, self, ping_seconds=quiet,
                                        dead_seconds=2 * quiet)

    # -- the request path ---------------------------------------------------------------
    def check(self, principal: Principal) -> None:
        """Raise ``TokenRevoked`` for a revoked jti or subject (``SessionRevoked`` for a session's),
        ``RevocationStale`` when the list is older than ``max_stale_seconds``. Two dict lookups
        and a clock read; no I/O."""
        if self._jti or self._sub:
            jti = principal.claims.get("jti")
            until = max(self._jti.get(jti, 0.0) if isinstance(jti, str) else 0.0,
                        self._sub.get(principal.subject, 0.0))
            if until > 0.0 and until > self._clock():
                if principal.via == "session":
                    raise SessionRevoked("session revoked")
                raise TokenRevoked("token revoked")
        if self._monotonic() > self._fresh_until:
            if not self._said_stale:
                self._said_stale = True
                log.error("revocation list older than max_stale_seconds (or never loaded): "
                          "authenticated requests get 503 until redis answers",
                          extra={"max_stale_seconds": self._settings.max_stale_seconds,
                                 "error": self.last_error})
            raise RevocationStale("the revocation list could not be refreshed; try again shortly")

    # -- the admin path -----------------------------------------------------------------
    def admin_secret_matches(self, presented: bytes) -> bool:
        secret = self._settings.admin_secret
        if secret is None or not presented:
            return False
        return hmac.compare_digest(presented, secret.get_secret_value().encode())

    def parse_request(self, body: bytes) -> Revocation:
        """A ``POST /revoke`` body, checked against this list's clock; raises ``BadRequest``."""
        return parse_request(body, self._clock(), self._namespaces)

    async def revoke(self, revocation: Revocation) -> Revocation:
        """Store, apply here, publish; returns the revocation with its effective expiry (a
        member revoked before keeps the later of its expiries). Raises
        ``RevocationStoreUnavailable`` unless Redis both stored and published it; retrying is
        harmless."""
        member = revocation.member
        retry = "retry (revoking again is harmless)"
        try:
            await self._redis.zadd(self._key, {member: revocation.expires_at}, gt=True)
        except REDIS_ERRORS as exc:
            raise RevocationStoreUnavailable(f"redis did not confirm the revocation; {retry}") from exc
        stored = revocation
        with contextlib.suppress(*REDIS_ERRORS, TypeError, ValueError):
            score = await self._redis.zscore(self._key, member)
            if score is not None and float(score) > revocation.expires_at:
                stored = Revocation(revocation.kind, revocation.value, float(score))
        self._apply(stored.kind, stored.value, stored.expires_at)
        try:
            await self._redis.publish(self._channel, f"{member} {stored.expires_at!r}")
        except REDIS_ERRORS as exc:
            raise RevocationStoreUnavailable(
                "stored, but not broadcast: other replicas apply it at their next resync "
                f"(within {self._settings.resync_seconds:g}s); {retry}") from exc
        log.info("revoked", extra={"member": member, "expires_at": stored.expires_at})
        return stored

    # -- readiness ----------------------------------------------------------------------
    @property
    def subscribed(self) -> bool:
        """Listening for revocations (else they arrive by resync, every ``resync_seconds``)."""
        return self._subscription is not None

    async def readiness(self) -> Check:
        entries = len(self._jti) + len(self._sub)
        bound = self._settings.max_stale_seconds
        if self._synced_at is None:
            return Check(False, f"stale: never synced with redis ({self.last_error}); "
                                "authenticated requests get 503")
        age = self._monotonic() - self._synced_at
        if self._monotonic() > self._fresh_until:
            return Check(False, f"stale: last sync {age:.1f}s ago, beyond max_stale_seconds "
                                f"{bound:g}; authenticated requests get 503 ({self.last_error})")
        if self.last_error is not None:
            return Check(True, f"stale: {entries} revoked, served from memory; last sync "
                               f"{age:.1f}s ago ({self.last_error}); requests get 503 after "
                               f"{bound:g}s")
        detail = f"{entries} revoked, synced {age:.1f}s ago"
        if self._subscription is None:
            detail += f"; not subscribed ({self._subscribe_error}): changes arrive by resync"
        return Check(True, detail)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Load the list once, then keep it current in the background. Never raises for Redis:
        a Redis that is down leaves the list stale (authenticated requests get 503) while the
        background tasks keep trying."""
        await self._resync_logged()
        self._tasks = [
            self._subscriber.start(name="revocation-subscriber"),
            asyncio.create_task(self._resync_forever(), name="revocation-resync"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_crash)

    async def aclose(self) -> None:
        self._closing = True
        await self._subscriber.aclose()
        await stop_tasks(self._tasks)
        self._tasks = []

    # -- syncing ------------------------------------------------------------------------
    async def resync(self) -> None:
        """Read the whole set and merge it into the local list; raises ``REDIS_ERRORS``."""
        async with self._resync_lock:
            subscription = self._subscription
            now = self._clock()
            self._arrived = set()
            rows = await self._redis.zrangebyscore(self._key, f"({now!r}", "+inf", withscores=True)
            if self._monotonic() - self._trimmed_at > _TRIM_EVERY_SECONDS:
                await self._redis.zremrangebyscore(self._key, "-inf", now)
                self._trimmed_at = self._monotonic()
            lost = self._merge(rows, now)
            if lost:
                await self._redis.zadd(self._key, lost, gt=True)
                log.warning("revocations missing from redis were written back",
                            extra={"count": len(lost)})
            self._mark_synced(full=True)
            if subscription is not None and subscription == self._subscription:
                self._live = True  # messages on this subscription now prove freshness too

    def _merge(self, rows: Any, now: float) -> dict[str, float]:
        """Swap in Redis's entries plus the unexpired local ones it lacks; return those."""
        jti: dict[str, float] = {}
        sub: dict[str, float] = {}
        for member, score in rows:
            parsed = parse_member(member)
            if parsed is not None:
                (jti if parsed[0] == "jti" else sub)[parsed[1]] = float(score)
        lost: dict[str, float] = {}
        for kind, new, old in (("jti", jti, self._jti), ("sub", sub, self._sub)):
            for value, expires_at in old.items():
                if expires_at > now and expires_at > new.get(value, 0.0):
                    new[value] = expires_at
                    member = f"{kind}:{value}"
                    if member not in self._arrived:  # else Redis has it: the read just missed it
                        lost[member] = expires_at
        self._jti, self._sub = jti, sub
        self._metrics.revocation_entries.set(len(jti) + len(sub))
        return lost

    def _apply(self, kind: Kind, value: str, expires_at: float) -> None:
        table = self._jti if kind == "jti" else self._sub
        if expires_at > table.get(value, 0.0) and expires_at > self._clock():
            table[value] = expires_at
            self._arrived.add(f"{kind}:{value}")
            self._metrics.revocation_entries.set(len(self._jti) + len(self._sub))

    def _mark_synced(self, *, full: bool) -> None:
        now = self._monotonic()
        self._synced_at = now
        self._fresh_until = now + self._settings.max_stale_seconds
        if full and self.last_error is not None:
            log.info("revocation list synced with redis again")
            self.last_error = None
        self._said_stale = False
        self._metrics.revocation_synced_at.set(self._clock())

    async def _resync_logged(self) -> bool:
        try:
            await self.resync()
        except REDIS_ERRORS as exc:
            self._metrics.revocation_sync_failures.labels(operation="resync").inc()
            if self.last_error is None:  # log the change, not every retry
                log.warning("revocation list sync failed; serving the cached list",
                            extra={"error": _describe(exc),
                                   "max_stale_seconds": self._settings.max_stale_seconds})
            self.last_error = _describe(exc)
            return False
        return True

    async def _resync_forever(self) -> None:
        while not self._closing:
            # A little jitter keeps replicas from reading the set in lockstep.
            await asyncio.sleep(self._settings.resync_seconds * random.uniform(0.9, 1.0))
            await self._resync_logged()

    # -- the subscription (clients/redis_pubsub.py Listener) --------------------------------
    async def on_subscribed(self) -> None:
        self._subscription, self._live = next(self._subscriptions), False
        self._subscribe_error = None
        await self._resync_logged()  # what was published while we were away

    def on_heard(self) -> None:
        if self._live:  # continuously subscribed since a full read: nothing was missed
            self._mark_synced(full=False)

    def on_lost(self, error: BaseException | None) -> None:
        self._subscription, self._live = None, False
        if error is None:
            return
        self._metrics.revocation_sync_failures.labels(operation="subscribe").inc()
        if self._subscribe_error is None:
            log.warning("revocation subscription lost; reconnecting",
                        extra={"error": _describe(error)})
        self._subscribe_error = _describe(error)

    def on_message(self, data: object) -> None:
        try:
            text = data.decode() if isinstance(data, bytes) else str(data)
            member, _, score = text.rpartition(" ")
            parsed, expires_at = parse_member(member), float(score)
        except (UnicodeDecodeError, ValueError):
            parsed, expires_at = None, math.nan
        if parsed is None or not math.isfinite(expires_at):
            log.warning("ignored a malformed revocation message", extra={"channel": self._channel})
            return
        self._apply(parsed[0], parsed[1], expires_at)


def _report_crash(task: asyncio.Task[None]) -> None:
    exc = None if task.cancelled() else task.exception()
    if exc is not None:  # a bug: updates stop, and requests fail closed once the list is stale
        log.error("revocation task stopped", extra={"task": task.get_name(), "error": _describe(exc)})
