"""Rate limits across replicas, end to end: two gatekeeper processes sharing one redis-server,
requests alternating between them, the recording upstream counting what got through.

    /limited/*          per subject, 5 per 30 s
    /public/limited/*   per client_ip, 3 per 30 s (public: anonymous callers)
    /status/*           per subject, 100 per 30 s (the app states a budget of its own)
    everything else     unlimited

Each test uses subjects of its own; all callers share the address 127.0.0.1, so only one test
uses the per-address rule.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.fakes import run
from tests.support.redis import RedisServer, run_redis

Pair = tuple[Gatekeeper, Gatekeeper]
RULES = [
    {"path": "/limited/*", "per": "subject", "limit": 5, "window_seconds": 30},
    {"path": "/public/limited/*", "per": "client_ip", "limit": 3, "window_seconds": 30},
    {"path": "/status/*", "per": "subject", "limit": 100, "window_seconds": 30},
]


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(gatekeeper_factory: Callable[..., Gatekeeper],
             redis_server: RedisServer) -> Pair:
    config = {
        "public_paths": ["/public/*"],
        "redis": {"url": redis_server.url, "key_prefix": f"rl-e2e-{secrets.token_hex(4)}:",
                  "timeout_seconds": 0.5},
        "rate_limits": RULES,
    }
    return gatekeeper_factory(**config), gatekeeper_factory(**config)


def alternate(replicas: Pair, path: str, count: int,
              headers: dict[str, str] | None = None) -> list[httpx.Response]:
    """``count`` requests, replica A, B, A, B, …"""
    clients = [r.client() for r in replicas]
    try:
        return [client.get(path, headers=headers or {})
                for client, _ in zip(itertools.cycle(clients), range(count), strict=False)]
    finally:
        for client in clients:
            client.close()


def bearer(issuer: DevIssuer, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(subject, audience=AUDIENCE)}"}


def subject() -> str:
    return f"user-{secrets.token_hex(4)}"


def test_the_limit_holds_across_replicas(replicas: Pair, issuer: DevIssuer,
                                         upstream: Upstream) -> None:
    path = f"/limited/{secrets.token_hex(4)}"
    responses = alternate(replicas, path, 8, bearer(issuer, subject()))
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    assert len(upstream.recorder.by_path(path)) == 5, "exactly five reached the app"
    # The allowed ones tell the client its budget, counted across both replicas.
    assert [r.headers.get("x-ratelimit-limit") for r in responses[:5]] == ["5"] * 5
    assert [r.headers.get("x-ratelimit-remaining") for r in responses[:5]] == ["4", "3", "2", "1", "0"]
    unlimited = alternate(replicas, "/unlimited", 1, bearer(issuer, subject()))[0]
    assert unlimited.status_code == 200 and "x-ratelimit-limit" not in unlimited.headers
    # An app that states its own budget keeps it: gatekeeper's would contradict it.
    own = alternate(replicas, "/status/200?ratelimit=7", 1, bearer(issuer, subject()))[0]
    assert own.headers.get_list("x-ratelimit-limit") == ["7"]
    assert "x-ratelimit-remaining" not in own.headers
    for refused in responses[5:]:  # on B, A and B again
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-limit"] == "5"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.json()["error"] == "rate_limited"


def test_another_subject_is_not_affected(replicas: Pair, issuer: DevIssuer) -> None:
    spent, fresh = bearer(issuer, subject()), bearer(issuer, subject())
    assert [r.status_code for r in alternate(replicas, "/limited/a", 6, spent)][-1] == 429
    assert [r.status_code for r in alternate(replicas, "/limited/a", 5, fresh)] == [200] * 5


def test_an_unlimited_path_is_not_affected(replicas: Pair, issuer: DevIssuer) -> None:
    spent = bearer(issuer, subject())
    assert [r.status_code for r in alternate(replicas, "/limited/b", 6, spent)][-1] == 429
    assert [r.status_code for r in alternate(replicas, "/unlimited/b", 10, spent)] == [200] * 10
    assert [r.status_code for r in alternate(replicas, "/limited", 2, spent)] == [200] * 2  # not below


def test_anonymous_callers_are_limited_by_address(replicas: Pair) -> None:
    # No trusted_proxies: a made-up X-Forwarded-For per request changes nothing.
    with replicas[0].client() as a, replicas[1].client() as b:
        seen = [(a, b)[n % 2].get(f"/public/limited/{n}", headers={"X-Forwarded-For": f"203.0.113.{n}"})
                for n in range(5)]
    assert [r.status_code for r in seen] == [200, 200, 200, 429, 429]
    assert seen[3].headers["x-ratelimit-limit"] == "3" and "retry-after" in seen[4].headers
    assert [r.status_code for r in alternate(replicas, "/public/other", 4)] == [200] * 4


def test_a_refusal_is_logged_and_counted(replicas: Pair, issuer: DevIssuer) -> None:
    user = subject()
    alternate(replicas, "/limited/c", 7, bearer(issuer, user))  # the 6th on B, the 7th on A
    deadline = time.monotonic() + 5
    while True:
        lines = [line for replica in replicas for line in replica.access_log()
                 if user in line and '"rate_limited"' in line]
        if len(lines) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 2 and all('"status": 429' in line and '"rate_limits[0]"' in line
                                   for line in lines), lines
    for replica in replicas:
        with replica.admin() as admin:
            metrics = admin.get("/metrics").text
        assert 'gatekeeper_rate_limit_checks_total{result="limited",rule="0"}' in metrics


def test_websocket_upgrades_count_against_the_limit_and_the_refusal_is_a_429(
        replicas: Pair, issuer: DevIssuer) -> None:
    headers = bearer(issuer, subject())
    path = f"/limited/{secrets.token_hex(4)}"

    async def open_and_close(gk: Gatekeeper) -> int:
        url = "ws://" + gk.url.split("://", 1)[1] + path
        try:
            async with ws_connect(url, proxy=None, open_timeout=10, additional_headers=headers) as ws:
                await ws.send("hi")
                await asyncio.wait_for(ws.recv(), 10)
                return 101
        except InvalidStatus as exc:
            assert 1 <= int(exc.response.headers["retry-after"]) <= 60
            return exc.response.status_code

    async def sessions() -> list[int]:
        return [await open_and_close(gk) for gk, _ in zip(itertools.cycle(replicas), range(7), strict=False)]

    assert run(sessions()) == [101] * 5 + [429] * 2
    assert [r.status_code for r in alternate(replicas, path, 1, headers)] == [429]  # one budget


@pytest.fixture(scope="module")
def ingress(gatekeeper_factory: Callable[..., Gatekeeper], replicas: Pair) -> Gatekeeper:
    """A third replica answering forward-auth checks (Traefik-style), on the same Redis budget."""
    return gatekeeper_factory(redis=replicas[0].config["redis"], rate_limits=RULES,
                              trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "traefik"})


def test_http_websocket_and_forward_auth_spend_one_budget(
        replicas: Pair, ingress: Gatekeeper, issuer: DevIssuer) -> None:
    headers = bearer(issuer, subject())
    path = f"/limited/{secrets.token_hex(4)}"

    def http() -> tuple[int, str | None]:
        with replicas[0].client() as client:
            response = client.get(path, headers=headers)
        return response.status_code, response.headers.get("retry-after")

    def forward_auth() -> tuple[int, str | None]:
        with ingress.client() as client:
            response = client.get("/oauth2/auth", headers={
                **headers, "X-Forwarded-Uri": path, "X-Forwarded-Method": "GET"})
        return response.status_code, response.headers.get("retry-after")

    async def opened() -> tuple[int, str | None]:
        url = "ws://" + replicas[1].url.split("://", 1)[1] + path
        try:
            async with ws_connect(url, proxy=None, open_timeout=10, additional_headers=headers):
                return 101, None
        except InvalidStatus as exc:
            return exc.response.status_code, exc.response.headers.get("retry-after")

    def websocket() -> tuple[int, str | None]:
        return asyncio.run(opened())

    ways = {"http": http, "forward-auth": forward_auth, "websocket": websocket}
    within = [(name, ways[name]()[0]) for name in
              ("http", "forward-auth", "websocket", "http", "forward-auth")]
    assert within == [("http", 200), ("forward-auth", 202), ("websocket", 101), ("http", 200),
                      ("forward-auth", 202)]
    for name, way in ways.items():  # the budget is spent whichever way the next one comes
        status, retry_after = way()
        assert (name, status) == (name, 429)
        assert retry_after is not None and 1 <= int(retry_after) <= 60
