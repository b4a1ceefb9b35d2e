"""DPoP's two memories: the ``jti`` replay cache (RFC 9449 §11.1) and server nonces (§8).

``ReplayCache.first_use(key, ttl, now, holder)`` is True the first time a key is seen within
``ttl``: ``MemoryReplay`` per process, ``RedisReplay`` shared by every replica (``SET NX EX``: one
atomic command, so two replicas racing on one proof cannot both win). Both fail closed: a full
memory cache refuses rather than forgets a key still in its window, and Redis down is a 503.

A full memory cache refuses every holder's proofs, so one holder of a bound token could fill it
with fresh proofs and lock everyone else out (CWE-400). ``MemoryReplay`` therefore also bounds
what one ``holder`` (the proof key's thumbprint, the token's ``cnf.jkt``) may hold: a holder
sending proofs faster than its share allows is refused, and the others keep theirs.

Nonces are stateless: ``base64url(issued_at ‖ HMAC-SHA256(secret, issued_at)[:16])``; any
replica holding the same secret accepts any other's, until ``lifetime`` has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from collections import OrderedDict
from typing import Protocol

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient
from gatekeeper.errors import ReplayStoreUnavailable


class ReplayCache(Protocol):
    async def first_use(self, key: str, ttl: int, now: float, holder: str = "") -> bool: ...


class MemoryReplay:
    """Keys with their expiry and holder, oldest first; expired ones dropped as new ones come.
    At most ``size`` keys, and at most ``holder_size`` (default: ``size``) of one holder."""

    def __init__(self, size: int, holder_size: int | None = None) -> None:
        self._size = size
        self._holder_size = size if holder_size is None else holder_size
        self._seen: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._held: dict[str, int] = {}  # holder -> its keys in _seen (no entry at 0)

    async def first_use(self, key: str, ttl: int, now: float, holder: str = "") -> bool:
        seen, held = self._seen, self._held
        while seen:
            oldest, (until, owner) = next(iter(seen.items()))
            if until > now:
                break
            del seen[oldest]
            if held[owner] == 1:
                del held[owner]
            else:
                held[owner] -= 1
        if key in seen:
            return False
        if len(seen) >= self._size or held.get(holder, 0) >= self._holder_size:
            # Every key is still inside its window: forgetting one would let its proof be
            # replayed, so refuse instead (fail closed); a full share refuses its holder only.
            return False
        seen[key] = (now + ttl, holder)  # ttl is the same for every key: insertion order is expiry order
        held[holder] = held.get(holder, 0) + 1
        return True


class RedisReplay:
    def __init__(self, redis: RedisClient, key_prefix: str, timeout_seconds: float) -> None:
        self._redis = redis
        self._prefix = f"{key_prefix}dpop:"
        self._timeout = timeout_seconds

    async def first_use(self, key: str, ttl: int, now: float, holder: str = "") -> bool:
        try:
            stored = await self._redis.set(self._prefix + key, b"1", nx=True, ex=ttl)
        except REDIS_ERRORS as exc:
            raise ReplayStoreUnavailable("the DPoP replay cache cannot be reached") from exc
        return bool(stored)


class Nonces:
    def __init__(self, secret: bytes, lifetime: int) -> None:
        self._secret = secret
        self._lifetime = lifetime

    def issue(self, now: float) -> str:
        stamp = struct.pack(">Q", int(now))
        mac = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(stamp + mac).rstrip(b"=").decode("ascii")

    def valid(self, nonce: object, now: float) -> bool:
        issued = self._issued(nonce)
        return issued is not None and issued <= now + 5 and now - issued <= self._lifetime

    def expiring(self, nonce: object, now: float) -> bool:
        """A valid nonce past half its lifetime: the answer hands the client the next one
        (RFC 9449 §8.2), so it never has to be refused and retry once the nonce expires."""
        issued = self._issued(nonce)
        return issued is not None and now - issued >= self._lifetime / 2

    def _issued(self, nonce: object) -> int | None:
        """When ``nonce`` was issued, if this secret issued it."""
        if not isinstance(nonce, str) or len(nonce) != 32:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "==")
        except ValueError:
            return None
        if len(raw) != 24:
            return None
        stamp, mac = raw[:8], raw[8:]
        if not hmac.compare_digest(mac, hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]):
            return None
        issued: int = struct.unpack(">Q", stamp)[0]
        return issued
