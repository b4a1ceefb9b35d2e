"""Rate limits (``rate_limits``): a sliding window per caller, counted in Redis so that every
replica enforces the same limit. Over the limit: ``RateLimited``, which
the edge answers with 429 and ``Retry-After`` (edge/responses.py).

Which rule: the first one whose path pattern and methods match the (canonical) request, checked
after the pipeline allowed the request, so the caller is known. Paths no rule can match cost one
set lookup and one ``str.startswith`` over a tuple; nothing else.

Whom: ``per: subject`` counts per issuer and subject (an anonymous caller: per client address);
``per: client_ip`` per client address (``client_address``). IPv6 addresses count per /64, the
block one host usually holds. Redis sees a hash of the caller, never the subject or address.

The algorithm: a *sliding window counter*, one Redis hash per rule and caller::

    <redis.key_prefix>rl:<rule index>:<blake2b-128 of the caller>:<window_seconds>
        w  the number of the current fixed window (now // window)
        c  requests counted in it
        p  requests counted in the one before

A request at ``elapsed`` into window ``w`` estimates the requests of the last ``window`` as
``p * (window - elapsed) / window + c`` (the previous window's count, weighted by how much of it
the sliding window still covers) and is allowed while that estimate stays within ``limit``.
One Lua script reads, decides and writes: one round trip, O(1) time and memory (three integers
per caller, however high the limit), one key per call (fine on Redis Cluster), the key expiring
two windows after its last counted request. The clock is Redis's own (``TIME``; Redis ≥ 5
replicates a script's effects, so a write may follow it), so replicas with skewed clocks agree.
A refused request is not counted: a client that keeps retrying is let in again once its earlier
requests slide out.

How exact: the estimate assumes the previous window's requests were evenly spread. Counted
exactly are a fresh burst (``limit`` allowed, the next refused) and steady traffic; a burst late
in the previous window is under-weighted (some more requests get in early), an early one
over-weighted (they wait a little longer). The bound: over any ``window``, fewer than twice
``limit``; Cloudflare reported 0.003 % of decisions wrong on real traffic with this method. An
exact log (a sorted set of timestamps) would cost memory and time per request growing with
``limit``. ``Retry-After`` is when the estimate next lets a request in, if no other arrives.

Redis down or slow: rate limits fail *open* (availability over throttling). A check waits at
most ``redis.timeout_seconds``; after a failure, checks are skipped for ``PAUSE_SECONDS`` so a
frozen Redis does not slow every limited request. Each request let through unchecked is
counted in ``gatekeeper_rate_limit_checks_total{result="unavailable"}``, and a warning is
logged at most every ``WARN_EVERY_SECONDS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient
from gatekeeper.errors import RateLimited
from gatekeeper.metrics import Metrics
from gatekeeper.paths import PathPatterns, matches_prefix_pattern
from gatekeeper.peers import forwarded_client
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import RateLimitRule

log = logging.getLogger("gatekeeper.ratelimit")

_Budget = tuple[tuple[bytes, bytes], ...]

PAUSE_SECONDS = 1.0
WARN_EVERY_SECONDS = 30.0
_MEMORY_KEYS = 100_000  # MemoryWindowCounter forgets stale callers past this many


@dataclass(frozen=True, slots=True)
class Count:
    allowed: bool
    remaining: int  # requests still allowed now (0 when refused)
    retry_after_ms: int  # when refused: until the next request would be allowed


class CounterUnavailable(Exception):
    """The counter's store did not answer in time. Internal: rate limits then fail open."""


class WindowCounter(Protocol):
    """Counts one request of a caller against ``limit`` per sliding ``window_ms``."""

    async def hit(self, key: str, limit: int, window_ms: int) -> Count: ...


# -- the algorithm, twice: Lua for Redis, Python for the in-memory counter (same tests) ------------

_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local number = math.floor(now / window)
local state = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(state[1])
local c = tonumber(state[2]) or 0
local p = tonumber(state[3]) or 0
if w ~= number then
  if w == number - 1 then p = c else p = 0 end
  c = 0
end
local elapsed = now - number * window
local used = p * (window - elapsed) / window + c
if used + 1 > limit then
  local wait
  if c >= limit then
    wait = (window - elapsed) + window * (1 - (limit - 1) / c)
  else
    wait = window * (1 - (limit - 1 - c) / p) - elapsed
  end
  return {0, 0, math.max(1, math.ceil(wait))}
end
c = c + 1
redis.call('HSET', KEYS[1], 'w', number, 'c', c, 'p', p)
redis.call('PEXPIRE', KEYS[1], 2 * window)
return {1, math.max(0, math.floor(limit - used - 1)), 0}
"""


@dataclass(frozen=True, slots=True)
class _Window:
    number: int
    count: int
    previous: int


def _slide(state: _Window | None, now_ms: int, limit: int, window_ms: int) -> tuple[Count, _Window | None]:
    """``_SCRIPT`` in Python: the Count, and the state to keep (None: unchanged)."""
    number = now_ms // window_ms
    c, p = (state.count, state.previous) if state is not None else (0, 0)
    if state is None or state.number != number:
        p = c if state is not None and state.number == number - 1 else 0
        c = 0
    elapsed = now_ms - number * window_ms
    used = p * (window_ms - elapsed) / window_ms + c
    if used + 1 > limit:
        if c >= limit:
            wait = (window_ms - elapsed) + window_ms * (1 - (limit - 1) / c)
        else:
            wait = window_ms * (1 - (limit - 1 - c) / p) - elapsed
        return Count(False, 0, max(1, math.ceil(wait))), None
    return Count(True, max(0, math.floor(limit - used - 1)), 0), _Window(number, c + 1, p)


class RedisWindowCounter:
    """The shared counter: ``_SCRIPT`` in Redis, one round trip per request."""

    def __init__(self, client: RedisClient, timeout_seconds: float) -> None:
        self._script = client.register_script(_SCRIPT)
        self._timeout = timeout_seconds

    async def hit(self, key: str, limit: int, window_ms: int) -> Count:
        try:
            # The socket timeout bounds each read; this bounds the whole call (connect, and the
            # script's first load after a Redis restart: NOSCRIPT, SCRIPT LOAD, EVALSHA).
            async with asyncio.timeout(self._timeout):
                reply = await self._script(keys=[key], args=[limit, window_ms])
            allowed, remaining, wait = (int(v) for v in reply)
        except REDIS_ERRORS as exc:
            raise CounterUnavailable(type(exc).__name__) from exc
        except (TypeError, ValueError) as exc:  # not the script's reply: not this Redis's answer
            raise CounterUnavailable("unexpected reply") from exc
        return Count(allowed == 1, remaining, wait)


class MemoryWindowCounter:
    """The same algorithm in this process only: for tests, and the contract both must meet."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    async def hit(self, key: str, limit: int, window_ms: int) -> Count:
        now_ms = int(self._clock() * 1000)
        count, state = _slide(self._windows.get(key), now_ms, limit, window_ms)
        if state is not None:
            if len(self._windows) >= _MEMORY_KEYS:
                self._windows = {k: v for k, v in self._windows.items()
                                 if v.number >= now_ms // window_ms - 1}
            self._windows[key] = state
        return count


# -- who the caller is ---------------------------------------------------------------------------

def client_address(request: RequestView, is_trusted: Callable[[str], bool]) -> str:
    """The caller's address as counted: ``peers.forwarded_client`` (the peer, or behind
    ``trusted_proxies`` the nearest untrusted X-Forwarded-For hop), IPv6 per /64 (``bucket``)."""
    return bucket(forwarded_client(request, is_trusted))


def bucket(address: str) -> str:
    """The unit an address is counted in: itself, a /64 for IPv6, IPv4 for IPv4-mapped IPv6."""
    if ":" not in address:
        return address  # IPv4 (as the server or a proxy wrote it), or not an address: as it is
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (e.g. a proxy's "unknown"): counted as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# -- the rules -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Rule:
    name: str  # "rate_limits[0]": logs and the metric
    pattern: str  # "/exact" or "/prefix/*"
    methods: frozenset[str]  # empty: every method
    per_subject: bool
    limit: int
    window_seconds: int
    key_head: str  # "<prefix>rl:<index>:"
    key_tail: str  # ":<window_seconds>"
    metrics: dict[str, Any]  # result → labelled counter

    def matches(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return matches_prefix_pattern(path, self.pattern)


class RateLimits:
    """The configured rules over a WindowCounter: the pipeline's rate-limit stage (``covers``,
    then ``spend``). It decides; edge/responses.py writes the 429."""

    def __init__(
        self,
        rules: Sequence[RateLimitRule],
        counter: WindowCounter,
        *,
        key_prefix: str,
        is_trusted: Callable[[str], bool],
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._counter = counter
        self._is_trusted = is_trusted
        self._clock = clock
        self._rules = tuple(self._compile(index, rule, key_prefix, metrics)
                            for index, rule in enumerate(rules))
        self._any_rule = PathPatterns(rule.path for rule in rules)  # the fast "no rule can match"
        self._paused_until = -math.inf
        self._next_warning = -math.inf
        self._unchecked = 0

    @staticmethod
    def _compile(index: int, rule: RateLimitRule, key_prefix: str, metrics: Metrics) -> _Rule:
        name = f"rate_limits[{index}]"
        children = {result: metrics.rate_limit_checks.labels(rule=str(index), result=result)
                    for result in ("allowed", "limited", "unavailable")}
        return _Rule(name=name, pattern=rule.path,
                     methods=frozenset(rule.methods), per_subject=rule.per == "subject",
                     limit=rule.limit, window_seconds=rule.window_seconds,
                     key_head=f"{key_prefix}rl:{index}:", key_tail=f":{rule.window_seconds}",
                     metrics=children)

    def match(self, method: str, path: str) -> _Rule | None:
        """The first rule matching the request, or None."""
        if path not in self._any_rule:
            return None
        for rule in self._rules:
            if rule.matches(method, path):
                return rule
        return None

    def key(self, rule: _Rule, request: RequestView, principal: Principal) -> str:
        if rule.per_subject and principal.via != "anonymous":
            caller = f"sub\n{principal.issuer}\n{principal.subject}"
        else:
            caller = "ip\n" + client_address(request, self._is_trusted)
        digest = hashlib.blake2b(caller.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        return f"{rule.key_head}{digest}{rule.key_tail}"

    def covers(self, path: str) -> bool:
        """In memory: may a rule apply to ``path``? Only then does a request pay for ``spend``."""
        return path in self._any_rule

    async def spend(self, request: RequestView, principal: Principal) -> _Budget:
        """Count the request against the first rule it matches: the budget headers for the
        answer, or raise ``RateLimited`` (429) when it is spent. Redis unavailable: ()."""
        rule = self.match(request.method, request.path)
        if rule is None:
            return ()
        if self._clock() < self._paused_until:
            self._let_through(rule, None)
            return ()
        try:
            count = await self._counter.hit(self.key(rule, request, principal),
                                            rule.limit, rule.window_seconds * 1000)
        except CounterUnavailable as exc:
            self._paused_until = self._clock() + PAUSE_SECONDS
            self._let_through(rule, exc)
            return ()
        if count.allowed:
            rule.metrics["allowed"].inc()
            return ((b"x-ratelimit-limit", str(rule.limit).encode()),
                    (b"x-ratelimit-remaining", str(count.remaining).encode()))
        rule.metrics["limited"].inc()
        raise RateLimited(limit=rule.limit, window_seconds=rule.window_seconds,
                          retry_after=max(1, math.ceil(count.retry_after_ms / 1000)), rule=rule.name)

    def _let_through(self, rule: _Rule, error: CounterUnavailable | None) -> None:
        rule.metrics["unavailable"].inc()
        self._unchecked += 1
        now = self._clock()
        if now >= self._next_warning:
            log.warning("rate limits not enforced: redis unavailable", extra={
                "error": str(error) if error is not None else "paused after a failure",
                "unchecked_requests": self._unchecked})
            self._unchecked = 0
            self._next_warning = now + WARN_EVERY_SECONDS

