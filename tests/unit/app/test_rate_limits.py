"""Rate limits, in process, counted in a real redis-server: the request over the limit is a 429
with Retry-After that never reaches the app, for HTTP and for a WebSocket handshake alike."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import Answer, InProcess, WebSocketAnswer, serve
from tests.support.fakes import bearer, mint
from tests.support.redis import RedisServer, run_redis
from tests.unit.app.conftest import MakeSettings

LIMIT = 3


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture
def limited(make_settings: MakeSettings, redis_server: RedisServer) -> Settings:
    """A fresh key prefix per test: each starts with a full allowance."""
    return make_settings(
        redis={"url": redis_server.url, "key_prefix": f"rl-unit-{secrets.token_hex(4)}:",
               "timeout_seconds": 1},
        rate_limits=[{"path": "/limited/*", "per": "subject", "limit": LIMIT, "window_seconds": 60}])


def test_the_request_over_the_limit_is_429_with_retry_after_and_never_reaches_the_app(
    limited: Settings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    token = bearer(mint(issuer, "rate-limited-alice"))

    async def scenario(gk: InProcess) -> list[Answer]:
        return [await gk.http("GET", "/limited/x", headers=[token]) for _ in range(LIMIT + 1)]

    answers = serve(limited, scenario)
    assert [a.status for a in answers] == [200] * LIMIT + [429]
    refused = answers[-1]
    assert 0 < int(refused.header("retry-after") or 0) <= 2 * 60  # sliding: the last window ages out
    assert refused.header("x-ratelimit-limit") == str(LIMIT)
    assert refused.json()["error"] == "rate_limited"
    assert len(upstream.recorder) == LIMIT


def test_another_subject_and_another_path_keep_their_own_allowance(
    limited: Settings, issuer: DevIssuer,
) -> None:
    alice, bob = bearer(mint(issuer, "alice-rl")), bearer(mint(issuer, "bob-rl"))

    async def scenario(gk: InProcess) -> tuple[int, int, int]:
        for _ in range(LIMIT + 1):
            await gk.http("GET", "/limited/x", headers=[alice])
        other_subject = await gk.http("GET", "/limited/x", headers=[bob])
        unlimited_path = await gk.http("GET", "/echo", headers=[alice])
        still_over = await gk.http("GET", "/limited/y", headers=[alice])
        return other_subject.status, unlimited_path.status, still_over.status

    assert serve(limited, scenario) == (200, 200, 429)


def test_a_websocket_handshake_over_the_limit_is_refused_with_the_same_429(
    limited: Settings, issuer: DevIssuer,
) -> None:
    token = bearer(mint(issuer, "ws-rl"))

    async def scenario(gk: InProcess) -> WebSocketAnswer:
        for _ in range(LIMIT):
            assert (await gk.http("GET", "/limited/x", headers=[token])).status == 200
        return await gk.websocket("/limited/ws", headers=[token])

    answer = serve(limited, scenario)
    assert not answer.accepted and answer.denial is not None
    assert answer.denial.status == 429 and answer.denial.header("retry-after") is not None
