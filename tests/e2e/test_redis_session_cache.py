"""The Redis session cache across real replicas: two gatekeeper processes sharing one real
redis-server, logging in at the dev OpenID Provider.

Each process keeps copies of the sessions it read and drops them when any replica publishes a
change on ``<prefix>sessions`` (sessions/redis_cache.py). What must hold:

- a sign-out on A is refused on B by the first request after A answered it: no wait, no poll;
- while B's subscription is down (Redis frozen or restarted), B reads Redis on every request and
  never serves a copy from before (a sign-out meanwhile would not reach it);
- an ACL user without pub/sub rights gets sessions that work, read through, and the same
  sign-out guarantee (its test runs before the outages: a restarted Redis forgets ACL users).

Whether B is using copies is read from Redis itself (its GET count), not assumed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, callback_of, login_oidc, served_login_issuer
from tests.support.oidc import login_with_http_client
from tests.support.poll import eventually
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import free_port

SESSION_SECRET = "cache-e2e-session-secret-0123456789abcdef"
COOKIE = "_gatekeeper"
API = {"accept": "application/json"}
BROWSER = {"accept": "text/html"}
NO_PUBSUB_USER = "no-pubsub"
NO_PUBSUB_PASSWORD = secrets.token_hex(12)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def port_a() -> int:
    return free_port()


@pytest.fixture(scope="module")
def port_c() -> int:
    return free_port()


@pytest.fixture(scope="module")
def provider(port_a: int, port_c: int) -> Iterator[DevIssuer]:
    with served_login_issuer([callback_of(port_a), callback_of(port_c)]) as (dev, _login):
        yield dev


def replica(factory: Callable[..., Gatekeeper], port: int, callback_port: int, dev: DevIssuer,
            redis: RedisServer, prefix: str, **redis_extra: Any) -> Gatekeeper:
    return factory(
        listen=f"127.0.0.1:{port}",
        oidc=login_oidc(dev, callback_port),
        session={"secret": SESSION_SECRET, "cookie_secure": False, "store": "redis",
                 "redis_url": redis.url, "redis_cache_seconds": 300},
        redis={"timeout_seconds": 0.5, "key_prefix": prefix, **redis_extra},
    )


@pytest.fixture(scope="module")
def pair(gatekeeper_factory: Callable[..., Gatekeeper], redis_server: RedisServer,
         provider: DevIssuer, port_a: int) -> tuple[Gatekeeper, Gatekeeper]:
    a = replica(gatekeeper_factory, port_a, port_a, provider, redis_server, "cache:")
    b = replica(gatekeeper_factory, free_port(), port_a, provider, redis_server, "cache:")
    return a, b


@pytest.fixture(scope="module")
def acl_pair(gatekeeper_factory: Callable[..., Gatekeeper], redis_server: RedisServer,
             provider: DevIssuer, port_c: int) -> tuple[Gatekeeper, Gatekeeper]:
    client = redis_server.client()
    try:  # keys and every command, but no channel: Redis 7's default for a new user
        client.acl_setuser(NO_PUBSUB_USER, enabled=True, passwords=[f"+{NO_PUBSUB_PASSWORD}"],
                           keys=["*"], reset_channels=True, categories=["+@all"])
    finally:
        client.close()
    user = {"username": NO_PUBSUB_USER, "password": NO_PUBSUB_PASSWORD}
    c = replica(gatekeeper_factory, port_c, port_c, provider, redis_server, "acl:", **user)
    d = replica(gatekeeper_factory, free_port(), port_c, provider, redis_server, "acl:", **user)
    return c, d


# ------------------------------------------------------------------ helpers


def log_in(gk: Gatekeeper) -> str:
    """A browser login through ``gk``; the session cookie."""
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER) as client:
        started = client.get("/oauth2/start", params={"rd": "/"})
        callback = login_with_http_client(client, started.headers["location"], "alice",
                                          "alice-password")
        assert client.get(callback).status_code == 302
        value = next((c.value for c in client.cookies.jar if c.name == COOKIE), None)
    assert value
    return value


def status(gk: Gatekeeper, cookie: str) -> int:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=API,
                      cookies={COOKIE: cookie}) as client:
        return client.get("/hello").status_code


def sign_out(gk: Gatekeeper, cookie: str) -> int:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=API,
                      cookies={COOKIE: cookie}) as client:
        return client.get("/oauth2/sign_out").status_code


def reads(server: RedisServer) -> int:
    client = server.client()
    try:
        stats: dict[str, Any] = client.info("commandstats")
        return int(stats.get("cmdstat_get", {}).get("calls", 0))
    finally:
        client.close()


def metric(gk: Gatekeeper, name: str, labels: str = "") -> float:
    with gk.admin() as admin:
        text = admin.get("/metrics").text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def subscribed(gk: Gatekeeper) -> bool:
    return metric(gk, "gatekeeper_session_cache_subscribed") == 1.0


def lost_subscriptions(gk: Gatekeeper) -> float:
    return metric(gk, "gatekeeper_session_invalidation_failures_total", '{operation="subscribe"}')


def copies_used(gk: Gatekeeper, cookie: str, server: RedisServer) -> bool:
    """``gk`` answers the session from its copy: three requests, no Redis read."""
    assert status(gk, cookie) == 200
    before = reads(server)
    served = [status(gk, cookie) for _ in range(3)]
    return served == [200] * 3 and reads(server) == before


# ------------------------------------------------------------------ the cache is on


def test_a_sign_out_on_a_is_refused_on_b_by_the_first_request_after_it(
        pair: tuple[Gatekeeper, Gatekeeper], redis_server: RedisServer) -> None:
    a, b = pair
    assert eventually(lambda: subscribed(a) and subscribed(b))
    for _ in range(3):  # a race lost once in three would show
        cookie = log_in(a)
        assert copies_used(b, cookie, redis_server), "b does not keep a copy: nothing is tested"
        assert sign_out(a, cookie) == 302
        assert status(b, cookie) == 401  # the first request after the sign-out's answer


def test_a_sign_out_on_b_is_refused_on_a_at_once_and_other_sessions_keep_their_copies(
        pair: tuple[Gatekeeper, Gatekeeper], redis_server: RedisServer) -> None:
    a, b = pair
    first, second = log_in(a), log_in(a)
    assert copies_used(b, first, redis_server) and copies_used(b, second, redis_server)
    assert sign_out(b, second) == 302  # signed out on b this time: refused on a at once
    assert status(a, second) == 401
    assert status(a, first) == 200 and status(b, first) == 200


# ------------------------------------------------------------------ an ACL user without pub/sub


def test_an_acl_user_without_pub_sub_rights_gets_working_sessions_read_through(
        acl_pair: tuple[Gatekeeper, Gatekeeper], redis_server: RedisServer) -> None:
    c, d = acl_pair
    assert eventually(lambda: lost_subscriptions(d) >= 1)  # tried, refused (NOPERM)
    assert not subscribed(c) and not subscribed(d)
    cookie = log_in(c)
    before = reads(redis_server)
    assert [status(d, cookie) for _ in range(3)] == [200] * 3
    assert reads(redis_server) == before + 3  # no copies: one read per request
    assert sign_out(c, cookie) == 302  # its PUBLISH is refused: the sign-out still works
    assert status(d, cookie) == 401
    publish_failures = '{operation="publish"}'
    assert metric(c, "gatekeeper_session_invalidation_failures_total", publish_failures) >= 1
    assert "session change not published" in c.process.output()


# ------------------------------------------------------------------ the subscription is down


@pytest.mark.parametrize("outage", ["frozen", "restarted"], ids=["redis frozen", "redis restarted"])
def test_while_the_subscription_is_down_b_reads_through_and_never_serves_a_stale_copy(
        pair: tuple[Gatekeeper, Gatekeeper], redis_server: RedisServer, outage: str) -> None:
    a, b = pair
    assert eventually(lambda: subscribed(b))
    cookie = log_in(a)
    assert copies_used(b, cookie, redis_server)
    lost = lost_subscriptions(b)
    if outage == "frozen":
        redis_server.freeze()
        try:
            assert eventually(lambda: lost_subscriptions(b) > lost), "b never noticed"
            # Its copy from a moment ago is not used: Redis is asked, and does not answer.
            assert status(b, cookie) == 503
        finally:
            redis_server.thaw()
    else:
        redis_server.restart()
        assert eventually(lambda: lost_subscriptions(b) > lost), "b never noticed"
    # a signs out while b may still be reconnecting: b cannot hear of it, and must not need to.
    assert eventually(lambda: sign_out(a, cookie) == 302)  # a's own connections may be stale
    assert status(b, cookie) == 401
    assert eventually(lambda: subscribed(b))  # and b subscribes again by itself
