"""Rate limits: the config, which rule a request meets, who the caller is, the sliding window
(one contract run against the in-memory counter and a real redis-server), failing open, the 429.

Windows are short (1 s) only where a test waits for one to slide; elsewhere they are long, so
a slow machine cannot move a burst across a window boundary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from gatekeeper.clients.redis import RedisClient, connect
from gatekeeper.edge.responses import send_decision
from gatekeeper.errors import ConfigError, RateLimited
from gatekeeper.metrics import Metrics
from gatekeeper.principal import ANONYMOUS, Decision, Outcome, Principal
from gatekeeper.ratelimit import (
    Count,
    CounterUnavailable,
    MemoryWindowCounter,
    RateLimits,
    RedisWindowCounter,
    WindowCounter,
    bucket,
    client_address,
)
from gatekeeper.request import RequestView
from gatekeeper.settings import RateLimitRule, RedisSettings, Settings
from gatekeeper.settings.file import load_settings
from tests.support.fakes import FakeClock
from tests.support.redis import RedisServer, run_redis

T = TypeVar("T")
_KEYS = itertools.count()


# ------------------------------------------------------------------ config

def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


@pytest.mark.parametrize(("rules", "expected"), [
    ("- {path: /api/*, limit: 0, window_seconds: 60}", "rate_limits.0.limit:"),
    ("- {path: /api/*, window_seconds: 60}", "rate_limits.0.limit: Field required"),
    ("- {path: /api/*, limit: 5}", "rate_limits.0.window_seconds: Field required"),
    ("- {path: /api/*, limit: 5, window_seconds: 0}", "rate_limits.0.window_seconds:"),
    ("- {path: /api/*, limit: 5, window_seconds: 86401}", "rate_limits.0.window_seconds:"),
    ("- {path: /api/*, limit: 5, window_seconds: 60, per: user}", "rate_limits.0.per:"),
    ("- {path: api/*, limit: 5, window_seconds: 60}", "rate_limits.0.path: 'api/*': patterns start"),
    ("- {path: /api/*/x, limit: 5, window_seconds: 60}", "'*' is allowed only at the end"),
    ("- {path: /api//x, limit: 5, window_seconds: 60}", "rate_limits.0.path: '/api//x': not a canonical"),
    ("- {path: /%61pi/*, limit: 5, window_seconds: 60}", "rate_limits.0.path: '/%61pi/*': not a canonical"),
    ("- {path: /api/*, limit: 5, window_seconds: 60, methods: [GET POST]}", "is not an HTTP method"),
    ("- {path: /api/*, limit: 5, window_seconds: 60, methods: [post, POST]}", "each method may appear once"),
    ("- {path: /api/*, limit: 5, window_seconds: 60, burst: 10}", "rate_limits.0.burst: unknown key"),
    ("- {path: /api/*, limit: 5, window_seconds: 60}\n- {path: /api/x, limit: 1, window_seconds: 60}",
     "rate_limits: item 1 (/api/x) never applies: item 0 (/api/*) matches first"),
    ("- {path: /api/*, methods: [POST, PUT], limit: 5, window_seconds: 60}\n"
     "- {path: /api/*, methods: [POST], limit: 1, window_seconds: 60}",
     "rate_limits: item 1 (/api/*) never applies: item 0 (/api/*) matches first"),
], ids=[
    "a limit below one is refused",
    "a rule needs a limit",
    "a rule needs a window",
    "a zero window is refused",
    "a window longer than a day is refused",
    "per is subject or client_ip",
    "a path pattern starts with a slash",
    "a star only ends a pattern",
    "a pattern that is not canonical would never match",
    "an encoded pattern would never match",
    "methods are HTTP method tokens",
    "a method appears once, in any case",
    "unknown keys are refused",
    "a rule behind a broader prefix rule is refused",
    "a rule behind one covering its methods is refused",
])
def test_invalid_rules_are_refused_naming_the_key(tmp_path: Path, rules: str, expected: str) -> None:
    found = problems(tmp_path, "rate_limits:\n" + "\n".join("  " + line for line in rules.splitlines()))
    assert any(expected in p for p in found), found


def test_every_bad_rule_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "rate_limits:\n  - {path: x, limit: 0, window_seconds: 1}\n"
                               "  - {path: /y, limit: 1, window_seconds: 0}\n")
    keys = {p.split(":")[0] for p in found}
    assert {"rate_limits.0.path", "rate_limits.0.limit", "rate_limits.1.window_seconds"} <= keys


def test_a_good_rule_set_loads_and_turns_redis_on(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("rate_limits:\n"
                    "  - {path: /api/login, methods: [post], per: client_ip, limit: 5, window_seconds: 60}\n"
                    "  - {path: /api/*, limit: 100, window_seconds: 1}\n"
                    "  - {path: /api, methods: [GET], limit: 100, window_seconds: 1}\n")
    settings = load_settings(path, environ={})
    first = settings.rate_limits[0]
    assert (first.methods, first.per, first.limit) == (["POST"], "client_ip", 5)
    assert settings.rate_limits[1].per == "subject" and settings.rate_limits[1].methods == []
    assert settings.uses_redis
    assert not Settings().uses_redis


# ------------------------------------------------------------------ which rule

def rule(path: str, *, methods: list[str] | None = None, per: str = "subject", limit: int = 3,
         window_seconds: int = 60) -> RateLimitRule:
    return RateLimitRule.model_validate({"path": path, "methods": methods or [], "per": per,
                                         "limit": limit, "window_seconds": window_seconds})


def limits(rules: list[RateLimitRule], counter: WindowCounter | None = None, *,
           trusted: Callable[[str], bool] = lambda _: False, metrics: Metrics | None = None,
           prefix: str = "gk:") -> RateLimits:
    return RateLimits(rules, counter or MemoryWindowCounter(), key_prefix=prefix, is_trusted=trusted,
                      metrics=metrics or Metrics())


RULES = [rule("/login", methods=["POST"]), rule("/api/admin/*"), rule("/api/*", methods=["GET", "POST"]),
         rule("/files")]


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", "/login", 0),
    ("GET", "/login", None),
    ("POST", "/login/", None),
    ("DELETE", "/api/admin/users", 1),
    ("GET", "/api/admin/users", 1),
    ("GET", "/api/orders", 2),
    ("GET", "/api/", 2),
    ("GET", "/api", None),
    ("GET", "/apiary", None),
    ("DELETE", "/api/orders", None),
    ("GET", "/files", 3),
    ("GET", "/files/x", None),
    ("GET", "/", None),
], ids=[
    "an exact rule matches its path and method",
    "an exact rule ignores other methods",
    "an exact rule ignores a trailing slash",
    "a prefix rule matches below it for every method",
    "the first matching rule wins over a later broader one",
    "a prefix rule with methods matches them",
    "a prefix rule matches its own directory",
    "a prefix rule ignores the path without its slash",
    "a prefix rule ignores a longer name",
    "a prefix rule ignores other methods",
    "an exact rule without methods matches every method",
    "an exact rule matches nothing below it",
    "an unlimited path matches no rule",
])
def test_the_first_matching_rule_applies(method: str, path: str, expected: int | None) -> None:
    found = limits(RULES).match(method, path)
    assert (found.name if found else None) == (None if expected is None else f"rate_limits[{expected}]")


def test_a_root_prefix_rule_matches_every_path() -> None:
    everything = limits([rule("/*")])
    assert all(everything.match("GET", p) for p in ("/", "/a", "/a/b/c"))


# ------------------------------------------------------------------ who the caller is

def view(path: str = "/api/x", *, client: str = "198.51.100.7", method: str = "GET",
         headers: list[tuple[bytes, bytes]] | None = None) -> RequestView:
    scope = {"type": "http", "method": method, "path": path, "headers": headers or [],
             "client": (client, 50000)}
    return RequestView(scope, path)


def trusting(*networks: str) -> Callable[[str], bool]:
    nets = [ipaddress.ip_network(n) for n in networks]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in nets)
    return is_trusted


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("198.51.100.7", [b"203.0.113.9"], (), "198.51.100.7"),
    ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
    ("10.0.0.2", [b"203.0.113.9"], ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.2", [b"6.6.6.6, 203.0.113.9"], ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.2", [b"6.6.6.6, 203.0.113.9, 10.0.0.9"], ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.2", [b"6.6.6.6", b"203.0.113.9"], ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.2", [b"10.0.0.7, 10.0.0.8"], ("10.0.0.0/8",), "10.0.0.7"),
    ("10.0.0.2", [b"203.0.113.9:4711"], ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.2", [b"[2001:db8:1:2::99]:443"], ("10.0.0.0/8",), "2001:db8:1:2::/64"),
    ("2001:db8:1:2:aaaa::1", [], (), "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.4", [], (), "192.0.2.4"),
], ids=[
    "an untrusted peer's forwarded-for is ignored",
    "a trusted peer without forwarded-for is the caller",
    "behind a trusted proxy the forwarded address is the caller",
    "what the client wrote left of the proxy's entry is ignored",
    "trusted hops on the right are skipped",
    "several forwarded-for headers read as one list",
    "when every hop is trusted the left-most is the caller",
    "a port on a hop is dropped",
    "a bracketed IPv6 hop counts per /64",
    "an IPv6 peer counts per /64",
    "an IPv4-mapped peer counts as IPv4",
])
def test_client_address(peer: str, forwarded: list[bytes], trusted: tuple[str, ...], expected: str) -> None:
    request = view(client=peer, headers=[(b"x-forwarded-for", v) for v in forwarded])
    assert client_address(request, trusting(*trusted)) == expected


def test_an_address_that_is_not_one_is_counted_as_it_is() -> None:
    assert bucket("unknown") == "unknown"


def alice(issuer: str = "https://idp.example.com") -> Principal:
    return Principal(subject="alice", roles=(), claims={}, via="bearer", issuer=issuer)


def test_the_key_names_the_rule_and_window_and_hides_the_caller() -> None:
    checker = limits([rule("/api/*", window_seconds=60)], prefix="pre:")
    key = checker.key(checker._rules[0], view(), alice())
    head, index, digest, window = key.rsplit(":", 3)
    assert (head, index, window) == ("pre:rl", "0", "60") and len(digest) == 32
    assert "alice" not in key and "198.51.100.7" not in key


def test_callers_are_told_apart() -> None:
    checker = limits([rule("/api/*"), rule("/ip/*", per="client_ip")])
    by_subject, by_ip = checker._rules
    keys = {
        checker.key(by_subject, view(), alice()),
        checker.key(by_subject, view(), alice("https://other.example.com")),  # same sub, other issuer
        checker.key(by_subject, view(), ANONYMOUS),  # anonymous: by address
        checker.key(by_subject, view(client="198.51.100.8"), ANONYMOUS),
        checker.key(by_ip, view(), alice()),
    }
    assert len(keys) == 5
    # Anonymous on a subject rule is counted exactly as a client_ip caller (per rule).
    assert checker.key(by_subject, view(), ANONYMOUS).split(":")[3] == \
        checker.key(by_ip, view(), alice()).split(":")[3]
    # The same subject from another address is the same caller.
    elsewhere = view(client="192.0.2.1")
    assert checker.key(by_subject, elsewhere, alice()) == checker.key(by_subject, view(), alice())


# ------------------------------------------------------------------ the algorithm (deterministic)


def test_the_previous_window_is_weighted_by_how_much_of_it_still_counts() -> None:
    clock = FakeClock(1000.0)  # the start of a 10 s window
    counter = MemoryWindowCounter(clock)

    async def scenario() -> list[tuple[bool, int, int]]:
        seen = []
        for at in (1000.0, 1000.0, 1000.0, 1000.0):  # 4 of 4 in window 100
            clock.now = at
            count = await counter.hit("k", 4, 10_000)
            seen.append((count.allowed, count.remaining, count.retry_after_ms))
        clock.now = 1012.5  # a quarter into window 101: 4 * 0.75 = 3 still count
        for _ in range(2):
            count = await counter.hit("k", 4, 10_000)
            seen.append((count.allowed, count.remaining, count.retry_after_ms))
        return seen

    seen = asyncio.run(scenario())
    assert [a for a, _, _ in seen] == [True, True, True, True, True, False]
    assert [r for _, r, _ in seen[:4]] == [3, 2, 1, 0]
    # Refused at 1012.5 with p=4, c=1: one more fits when 4 * (10 - e) / 10 + 1 <= 3, e >= 5.
    assert seen[5][2] == 2500


def test_a_full_window_waits_for_the_next_one_to_age_it() -> None:
    clock = FakeClock(2002.0)
    counter = MemoryWindowCounter(clock)

    async def scenario() -> int:
        for _ in range(2):
            assert (await counter.hit("k", 2, 10_000)).allowed
        refused = await counter.hit("k", 2, 10_000)
        assert not refused.allowed
        clock.now += refused.retry_after_ms / 1000
        assert (await counter.hit("k", 2, 10_000)).allowed
        return refused.retry_after_ms

    # 8 s to the next window, then 2 * (1 - e/10) <= 1 at e = 5 s.
    assert asyncio.run(scenario()) == 13_000


# ------------------------------------------------------------------ the contract, both counters

@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with run_redis() as running:
        yield running


def run(scenario: Callable[[], Coroutine[Any, Any, T]], *clients: RedisClient) -> T:
    async def closing() -> T:
        try:
            return await scenario()
        finally:
            for client in clients:
                await client.aclose()
    return asyncio.run(closing())


def redis_client(server: RedisServer, timeout: float = 0.5) -> RedisClient:
    return connect(RedisSettings(url=server.url, timeout_seconds=timeout))


Scenario = Callable[[WindowCounter], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    """Runs ``scenario(counter)`` with each implementation (each test uses keys of its own)."""
    if request.param == "memory":
        return lambda scenario: asyncio.run(scenario(MemoryWindowCounter()))  # type: ignore[arg-type]
    server = request.getfixturevalue("server")

    def with_redis(scenario: Scenario) -> None:
        client = redis_client(server)

        async def go() -> None:
            await scenario(RedisWindowCounter(client, 0.5))
        run(go, client)
    return with_redis


def fresh() -> str:
    return f"t{next(_KEYS)}-{secrets.token_hex(4)}"


def test_a_limit_of_n_allows_n_then_refuses(counters: Callable[[Scenario], None]) -> None:
    async def scenario(counter: WindowCounter) -> None:
        key = fresh()
        seen = [await counter.hit(key, 3, 60_000) for _ in range(5)]
        assert [c.allowed for c in seen] == [True, True, True, False, False]
        assert [c.remaining for c in seen] == [2, 1, 0, 0, 0]
        assert all(0 < c.retry_after_ms <= 120_000 for c in seen[3:])
    counters(scenario)


def test_callers_are_counted_apart(counters: Callable[[Scenario], None]) -> None:
    async def scenario(counter: WindowCounter) -> None:
        one, other = fresh(), fresh()
        assert [(await counter.hit(one, 1, 60_000)).allowed for _ in range(2)] == [True, False]
        assert (await counter.hit(other, 1, 60_000)).allowed
    counters(scenario)


def test_the_window_slides(counters: Callable[[Scenario], None]) -> None:
    async def scenario(counter: WindowCounter) -> None:
        key = fresh()
        for _ in range(2):
            assert (await counter.hit(key, 2, 1000)).allowed
        refused = await counter.hit(key, 2, 1000)
        assert not refused.allowed and 0 < refused.retry_after_ms <= 2000
        await asyncio.sleep(refused.retry_after_ms / 1000 + 0.05)
        assert (await counter.hit(key, 2, 1000)).allowed
        await asyncio.sleep(2.1)  # two whole windows: nothing counts any more
        assert [(await counter.hit(key, 2, 1000)).allowed for _ in range(3)] == [True, True, False]
    counters(scenario)


def test_redis_keeps_one_expiring_hash_per_caller(server: RedisServer) -> None:
    client = redis_client(server)
    key = "gk-test:" + fresh()

    async def scenario() -> None:
        counter = RedisWindowCounter(client, 0.5)
        for _ in range(3):
            await counter.hit(key, 2, 5000)
    run(scenario, client)
    sync = server.client()
    assert set(sync.hgetall(key)) == {b"w", b"c", b"p"}
    assert sync.hget(key, "c") in (b"1", b"2")  # 2, or 1 if a window boundary passed
    assert 0 < sync.pttl(key) <= 10_000


def test_a_redis_that_forgot_the_script_loads_it_again(server: RedisServer) -> None:
    client = redis_client(server)

    async def scenario() -> None:
        counter = RedisWindowCounter(client, 0.5)
        assert (await counter.hit(fresh(), 1, 60_000)).allowed
        await client.script_flush()
        assert (await counter.hit(fresh(), 1, 60_000)).allowed
    run(scenario, client)


# ------------------------------------------------------------------ the gate's call, failing open

CALLER = alice()
Budget = tuple[tuple[bytes, bytes], ...]


async def spent(checker: RateLimits, request: RequestView) -> Budget | RateLimited:
    """The stage's answer: the budget headers, or the refusal it raised."""
    try:
        return await checker.spend(request, CALLER)
    except RateLimited as exc:
        return exc


def sample(metrics: Metrics, result: str, rule_index: str = "0") -> float:
    value = metrics.registry.get_sample_value("gatekeeper_rate_limit_checks_total",
                                              {"rule": rule_index, "result": result})
    return value or 0.0


def test_over_the_limit_the_decision_is_refused_with_its_reason() -> None:
    metrics = Metrics()
    checker = limits([rule("/other"), rule("/api/*", limit=1, window_seconds=60)], metrics=metrics)

    async def scenario() -> tuple[Budget | RateLimited, ...]:
        return (await spent(checker, view()), await spent(checker, view()),
                await spent(checker, view("/unlimited")))

    first, second, unmatched = asyncio.run(scenario())
    assert not checker.covers("/unlimited") and checker.covers("/api/x")
    assert unmatched == ()  # no rule: no budget to tell
    assert first == ((b"x-ratelimit-limit", b"1"), (b"x-ratelimit-remaining", b"0"))
    assert isinstance(second, RateLimited) and second.rule == "rate_limits[1]"
    assert second.code == "rate_limited" and second.status == 429
    assert second.limit == 1 and 1 <= second.retry_after <= 120
    assert (sample(metrics, "allowed", "1"), sample(metrics, "limited", "1")) == (1, 1)


class CountedCounter(RedisWindowCounter):
    """The Redis counter, counting its round trips and keeping what each one raised."""

    def __init__(self, client: RedisClient, timeout_seconds: float) -> None:
        super().__init__(client, timeout_seconds)
        self.raised: list[BaseException | None] = []

    async def hit(self, key: str, limit: int, window_ms: int) -> Count:
        try:
            count = await super().hit(key, limit, window_ms)
        except CounterUnavailable as exc:
            self.raised.append(exc)
            raise
        self.raised.append(None)
        return count


def test_a_frozen_redis_lets_requests_through_quickly(server: RedisServer,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    client = redis_client(server, timeout=0.3)
    metrics = Metrics()
    counter = CountedCounter(client, 0.3)
    checker = limits([rule("/api/*", limit=1)], counter, metrics=metrics, prefix=fresh() + ":")

    async def scenario() -> list[BaseException | None]:
        assert not isinstance(await spent(checker, view()), RateLimited)
        assert isinstance(await spent(checker, view()), RateLimited)
        server.freeze()
        try:
            for _ in range(3):
                # (The bound only turns a request that waits for Redis into a failure.)
                assert await asyncio.wait_for(spent(checker, view()), timeout=10) == ()  # fail open
            frozen = counter.raised[2:]
        finally:
            server.thaw()
        await asyncio.sleep(1.1)  # the pause after a failure ends: enforced again
        assert isinstance(await spent(checker, view()), RateLimited)
        return frozen

    with caplog.at_level(logging.WARNING, logger="gatekeeper.ratelimit"):
        frozen = run(scenario, client)
    # One round trip while Redis was frozen, ended by the timeout (redis.timeout_seconds), and
    # none for the two requests right after the failure.
    assert len(frozen) == 1 and isinstance(frozen[0], CounterUnavailable), frozen
    assert isinstance(frozen[0].__cause__, TimeoutError | redis.TimeoutError), frozen[0].__cause__
    assert sample(metrics, "unavailable") == 3
    warnings = [r for r in caplog.records if r.name == "gatekeeper.ratelimit"]
    assert len(warnings) == 1 and "not enforced" in warnings[0].getMessage()


def test_a_redis_that_is_gone_lets_requests_through(tmp_path: Path) -> None:
    missing = Settings(redis=RedisSettings(url=f"unix://{tmp_path}/nothing.sock", timeout_seconds=0.3))
    client = connect(missing.redis_connection())
    checker = limits([rule("/api/*")], RedisWindowCounter(client, 0.3))

    async def scenario() -> Budget | RateLimited:
        return await spent(checker, view())
    assert run(scenario, client) == ()


# ------------------------------------------------------------------ the 429

def answer(accept: bytes | None) -> tuple[int, dict[str, str], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    error = RateLimited(limit=5, window_seconds=30, retry_after=7, rule="rate_limits[0]")
    refused = Decision(Outcome.ERROR, error.code, CALLER, error=error, rule=error.rule)
    status = asyncio.run(send_decision(send, refused, "req-12345678", accept))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    assert status == sent[0]["status"]
    return status, headers, sent[1]["body"]


def test_the_answer_is_429_with_retry_after_and_limit_headers() -> None:
    status, headers, body = answer(b"application/json")
    assert status == 429
    assert headers["retry-after"] == "7"
    assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"]) == ("5", "0")
    assert headers["cache-control"] == "no-store" and headers["x-request-id"] == "req-12345678"
    assert json.loads(body) == {"error": "rate_limited", "retry_after": 7, "request_id": "req-12345678",
                                "error_description": "more than 5 requests in 30 s; retry after 7 s"}


def test_a_browser_gets_a_page() -> None:
    status, headers, body = answer(b"text/html,*/*;q=0.8")
    assert status == 429 and headers["retry-after"] == "7"
    assert headers["content-type"].startswith("text/html") and b"Too many requests" in body
