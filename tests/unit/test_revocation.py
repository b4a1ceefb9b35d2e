"""The revocation list against a real redis-server, then POST /revoke on the admin app.

Each test runs its own event loop (``asyncio.run``) and its own key prefix on one shared server;
tests that stop or freeze Redis get a server of their own. Time that matters is injected (a wall
clock and a monotonic clock that a test can move forward); waits on the real thing (pub/sub,
resync) poll up to a bound and assert only that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from gatekeeper.authz import AuthenticatedOnly, PublicPaths
from gatekeeper.clients.redis import connect
from gatekeeper.errors import BadRequest, RevocationStale, SessionRevoked, TokenRevoked
from gatekeeper.exchange import Exchange
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.ops.admin import UpstreamProbe, create_admin_app
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import Outcome, Principal, Via
from gatekeeper.revocation import RevocationList
from gatekeeper.revocation_entry import (
    MAX_AHEAD_SECONDS,
    MAX_VALUE_CHARS,
    Revocation,
    parse_request,
)
from gatekeeper.settings import Settings
from gatekeeper.subjects import SubjectNamespaces
from tests.support.fakes import run
from tests.support.redis import RedisServer, run_redis

SECRET = "s3cr3t-" + secrets.token_hex(20)  # 47 characters
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with run_redis() as redis_server:
        yield redis_server


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


class Clocks:
    """Real time plus an offset a test can add to: ``wall`` (epoch) and ``monotonic``."""

    def __init__(self) -> None:
        self.wall_offset = 0.0
        self.monotonic_offset = 0.0

    def wall(self) -> float:
        return time.time() + self.wall_offset

    def monotonic(self) -> float:
        return time.monotonic() + self.monotonic_offset


def settings(url: str, **revocation: Any) -> Settings:
    values = {"enabled": True, "admin_secret": SECRET, "resync_seconds": 1, "max_stale_seconds": 5}
    values.update(revocation)
    return Settings.model_validate({"redis": {"url": url, "timeout_seconds": 0.3},
                                    "revocation": values})


@contextlib.asynccontextmanager
async def replica(url: str, prefix: str, *, clocks: Clocks | None = None,
                  **revocation: Any) -> AsyncIterator[RevocationList]:
    """One gatekeeper's revocation list: its own Redis client, started and closed."""
    config = settings(url, **revocation)
    client = connect(config.redis_connection())
    clocks = clocks or Clocks()
    revocations = RevocationList(client, config.revocation, prefix, Metrics(),
                                 clock=clocks.wall, monotonic=clocks.monotonic)
    await revocations.start()
    try:
        yield revocations
    finally:
        await revocations.aclose()
        await client.aclose()


def who(subject: str = "alice", jti: str | None = None, via: Via = "bearer") -> Principal:
    claims = {"sub": subject} if jti is None else {"sub": subject, "jti": jti}
    return Principal(subject=subject, roles=(), claims=claims, via=via)


def refuses(revocations: RevocationList, principal: Principal) -> bool:
    try:
        revocations.check(principal)
    except TokenRevoked:
        return True
    return False


async def eventually(condition: Callable[[], bool], within: float) -> float:
    """Poll ``condition``; return how long it took, fail after ``within`` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def in_(seconds: float) -> float:
    return time.time() + seconds


# -- the list ---------------------------------------------------------------------------------
def test_a_revoked_jti_is_refused_and_other_tokens_of_the_subject_pass(server: RedisServer,
                                                                      prefix: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:
            revocations.check(who(jti="one"))
            await revocations.revoke(Revocation("jti", "one", in_(60)))
            with pytest.raises(TokenRevoked) as raised:
                revocations.check(who(jti="one"))
            assert raised.value.code == "token_revoked" and raised.value.status == 401
            revocations.check(who(jti="two"))
            revocations.check(who("bob", jti="two"))
            revocations.check(who())  # a principal without a jti
    run(scenario())


def test_a_revoked_subject_refuses_every_token_and_session_of_it(server: RedisServer,
                                                                prefix: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:
            await revocations.revoke(Revocation("sub", "alice", in_(60)))
            for principal in (who(jti="a1"), who(jti="a2"), who(), who(via="session")):
                assert refuses(revocations, principal)
            # A session's is told apart: the gate ends it and sends a browser to sign in again.
            with pytest.raises(SessionRevoked) as raised:
                revocations.check(who(via="session"))
            assert raised.value.code == "session_revoked" and raised.value.status == 401
            with pytest.raises(TokenRevoked) as raised_token:
                revocations.check(who())
            assert not isinstance(raised_token.value, SessionRevoked)
            revocations.check(who("bob", jti="b1"))
            revocations.check(who("alice2"))
    run(scenario())


def test_a_revocation_ends_at_its_expiry(server: RedisServer, prefix: str) -> None:
    clocks = Clocks()

    async def scenario() -> None:
        async with replica(server.url, prefix, clocks=clocks) as revocations:
            await revocations.revoke(Revocation("jti", "one", in_(30)))
            await revocations.revoke(Revocation("sub", "bob", in_(30)))
            assert refuses(revocations, who(jti="one")) and refuses(revocations, who("bob"))
            clocks.wall_offset = 31
            revocations.check(who(jti="one"))
            revocations.check(who("bob"))
            await revocations.resync()  # expired entries leave the list
            assert (await revocations.readiness()).detail.startswith("0 revoked")
    run(scenario())


def test_revoking_again_never_shortens_a_revocation(server: RedisServer, prefix: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:
            late, early = round(in_(600)), round(in_(60))
            first = await revocations.revoke(Revocation("jti", "one", late))
            second = await revocations.revoke(Revocation("jti", "one", early))
            assert first.expires_at == second.expires_at == late
            with server.client() as redis:
                assert redis.zscore(f"{prefix}revoked", "jti:one") == late
    run(scenario())


def test_another_replica_applies_a_revocation_within_a_second_by_pubsub(server: RedisServer,
                                                                       prefix: str) -> None:
    async def scenario() -> None:
        # A resync once an hour: only the published message can carry the revocation in time.
        slow: dict[str, Any] = {"resync_seconds": 3600, "max_stale_seconds": 7200}
        async with replica(server.url, prefix, **slow) as a, replica(server.url, prefix, **slow) as b:
            await eventually(lambda: b.subscribed, within=5)
            await asyncio.sleep(0.1)  # past the resync that follows subscribing
            await a.revoke(Revocation("jti", "one", in_(60)))
            await eventually(lambda: refuses(b, who(jti="one")), within=1.0)
            b.check(who(jti="two"))
    run(scenario())


def test_a_missed_message_is_healed_by_the_next_resync(server: RedisServer, prefix: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:  # resync_seconds: 1
            await eventually(lambda: revocations.subscribed, within=5)
            await asyncio.sleep(0.1)  # past the resync that follows subscribing
            with server.client() as redis:  # stored, never published
                redis.zadd(f"{prefix}revoked", {"jti:silent": in_(60), "sub:quiet": in_(60)})
            await eventually(lambda: refuses(revocations, who(jti="silent")), within=3)
            assert refuses(revocations, who("quiet"))
    run(scenario())


def test_revocations_redis_lost_are_written_back(server: RedisServer, prefix: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:
            expires = round(in_(60))
            await revocations.revoke(Revocation("jti", "one", expires))
            with server.client() as redis:
                redis.delete(f"{prefix}revoked")  # a restart without persistence
                await revocations.resync()
                assert refuses(revocations, who(jti="one"))
                assert redis.zscore(f"{prefix}revoked", "jti:one") == expires
    run(scenario())


@pytest.mark.parametrize("message", [
    b"jti:x", b"jti:x soon", b"jti:x nan", b"jti:x inf", b"kid:x 1900000000", b"jti: 1900000000",
    b"jti:a\x00b 1900000000", b"\xff\xfe 1900000000",
    ("jti:" + "x" * (MAX_VALUE_CHARS + 1) + " 1900000000").encode(),
], ids=lambda m: f"the message {m[:24]!r} is ignored")
def test_malformed_messages_are_ignored(server: RedisServer, prefix: str, message: bytes) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations:
            await eventually(lambda: revocations.subscribed, within=5)
            with server.client() as redis:
                redis.publish(f"{prefix}revocations", message)
                redis.publish(f"{prefix}revocations", f"jti:after {in_(60)}")
            await eventually(lambda: refuses(revocations, who(jti="after")), within=1)
            assert (await revocations.readiness()).detail.startswith("1 revoked")
    run(scenario())


def test_a_frozen_redis_leaves_the_cached_list_answering_until_the_staleness_bound() -> None:
    clocks = Clocks()

    async def scenario(server: RedisServer) -> None:
        async with replica(server.url, "gk:", clocks=clocks) as revocations:  # max_stale_seconds: 5
            await revocations.revoke(Revocation("jti", "one", in_(60)))
            metrics = revocations._metrics.registry
            server.freeze()
            try:
                # Redis answers nothing; the list in memory still does, both ways.
                assert refuses(revocations, who(jti="one"))
                revocations.check(who(jti="two"))
                await eventually(lambda: revocations.last_error is not None, within=3)
                check = await revocations.readiness()
                assert check.ok and check.detail.startswith("stale: 1 revoked, served from memory")
                assert (metrics.get_sample_value("gatekeeper_revocation_sync_failures_total",
                                                 {"operation": "resync"}) or 0) >= 1
                clocks.monotonic_offset = 6  # past max_stale_seconds without a good sync
                with pytest.raises(RevocationStale) as raised:
                    revocations.check(who(jti="two"))
                assert raised.value.status == 503 and raised.value.code == "revocation_list_stale"
                check = await revocations.readiness()
                assert not check.ok and "beyond max_stale_seconds 5" in check.detail
                assert refuses(revocations, who(jti="one"))  # revoked stays revoked, not 503
            finally:
                server.thaw()
            await eventually(lambda: revocations.last_error is None, within=5)
            revocations.check(who(jti="two"))
            assert refuses(revocations, who(jti="one"))
            assert (await revocations.readiness()).ok
            assert metrics.get_sample_value("gatekeeper_revocation_entries") == 1
            synced = metrics.get_sample_value("gatekeeper_revocation_last_sync_timestamp_seconds")
            assert synced is not None and abs(synced - time.time()) < 5

    with run_redis() as own:
        run(scenario(own))


def test_a_redis_down_at_start_fails_closed_until_the_first_sync() -> None:
    async def scenario(server: RedisServer) -> None:
        server.stop()
        async with contextlib.AsyncExitStack() as stack:
            # start() does not wait for Redis: it returns after its one failed read (the bound
            # only turns a start that waits for Redis, which stays down here, into a failure).
            revocations = await asyncio.wait_for(
                stack.enter_async_context(replica(server.url, "gk:")), timeout=30)
            failures = revocations._metrics.registry.get_sample_value(
                "gatekeeper_revocation_sync_failures_total", {"operation": "resync"})
            assert failures == 1 and revocations.last_error is not None
            with pytest.raises(RevocationStale):
                revocations.check(who())
            check = await revocations.readiness()
            assert not check.ok and check.detail.startswith("stale: never synced")
            await asyncio.to_thread(server.start)
            await eventually(lambda: (revocations.subscribed
                                      and revocations.last_error is None), within=5)
            revocations.check(who())
            assert (await revocations.readiness()).ok

    with run_redis() as own:
        run(scenario(own))


def test_a_restarted_redis_is_subscribed_to_again(server: RedisServer, prefix: str) -> None:
    async def scenario(own: RedisServer) -> None:
        slow: dict[str, Any] = {"resync_seconds": 3600, "max_stale_seconds": 7200}
        async with replica(own.url, prefix, **slow) as a, replica(own.url, prefix, **slow) as b:
            await eventually(lambda: b.subscribed, within=5)
            await asyncio.to_thread(own.restart)
            await eventually(lambda: b.subscribed, within=5)
            await a.revoke(Revocation("sub", "alice", in_(60)))
            await eventually(lambda: refuses(b, who()), within=1)

    with run_redis() as own:
        run(scenario(own))


# -- in the pipeline ---------------------------------------------------------------------------
class Fixed:
    """An authenticator that answers with one principal (None: not mine)."""

    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal

    async def authenticate(self, request: Exchange) -> Principal | None:
        return self.principal


def test_the_pipeline_refuses_revoked_sessions_and_fails_closed_when_stale(
        server: RedisServer, prefix: str) -> None:
    clocks = Clocks()

    def request(path: str) -> Exchange:
        return Exchange({"type": "http", "method": "GET", "path": path, "headers": []}, path, "test-req", 0.0)

    async def scenario() -> None:
        async with replica(server.url, prefix, clocks=clocks) as revocations:
            authenticator = Fixed(who("alice", via="session"))
            pipeline = Pipeline([authenticator], AuthenticatedOnly(PublicPaths(["/public/*"])),
                                HeaderPolicy(Settings().header_section()), revocations=revocations)
            assert (await pipeline.decide(request("/app"))).allowed
            await revocations.revoke(Revocation("sub", "alice", in_(60)))
            decision = await pipeline.decide(request("/app"))
            assert decision.outcome is Outcome.UNAUTHENTICATED and decision.reason == "session_revoked"
            with pytest.raises(TokenRevoked):
                await pipeline.authenticate(request("/app"))

            authenticator.principal = who("bob", jti="b1")
            clocks.monotonic_offset = 3600  # as if no sync had worked for an hour
            decision = await pipeline.decide(request("/app"))
            assert decision.outcome is Outcome.ERROR and decision.reason == "revocation_list_stale"
            assert decision.error is not None and decision.error.status == 503
            authenticator.principal = None  # anonymous: public paths need no revocation list
            assert (await pipeline.decide(request("/public/x"))).allowed
    run(scenario())


def test_an_open_connection_is_no_longer_allowed_once_revoked_expired_or_the_list_is_stale(
        server: RedisServer, prefix: str) -> None:
    # What an open WebSocket is re-checked against: no I/O, the reason code when it must end.
    clocks = Clocks()

    async def scenario() -> None:
        async with replica(server.url, prefix, clocks=clocks) as revocations:
            pipeline = Pipeline([], AuthenticatedOnly(PublicPaths(["/public/*"])),
                                HeaderPolicy(Settings().header_section()), revocations=revocations)
            now = time.time()
            alice = dataclasses.replace(who("alice", jti="a1"), expires_at=now + 60)
            assert pipeline.still_allowed(alice, "GET", "/app", now) is None
            assert pipeline.still_allowed(alice, "GET", "/app", now + 60) == "expired"
            await revocations.revoke(Revocation("jti", "a1", in_(60)))
            assert pipeline.still_allowed(alice, "GET", "/app", now) == "token_revoked"
            session = dataclasses.replace(who("carol", via="session"), expires_at=now + 60)
            await revocations.revoke(Revocation("sub", "carol", in_(60)))
            assert pipeline.still_allowed(session, "GET", "/app", now) == "session_revoked"
            bob = dataclasses.replace(who("bob"), expires_at=now + 60)
            assert pipeline.still_allowed(bob, "GET", "/app", now) is None
            clocks.monotonic_offset = 3600
            assert pipeline.still_allowed(bob, "GET", "/app", now) == "revocation_list_stale"
    run(scenario())


# -- parsing POST /revoke ---------------------------------------------------------------------
@pytest.mark.parametrize(("body", "expected"), [
    (b'{"jti": "abc", "expires_at": 1800000600}', Revocation("jti", "abc", 1_800_000_600.0)),
    (b'{"sub": "alice@example.com", "expires_at": 1800000000.5}',
     Revocation("sub", "alice@example.com", 1_800_000_000.5)),
    (b'{"sub": "name with spaces", "expires_at": 1800000001}',
     Revocation("sub", "name with spaces", 1_800_000_001.0)),
], ids=["a jti with an integer expiry", "a subject with a fractional expiry",
        "a subject with spaces"])
def test_a_good_request_parses(body: bytes, expected: Revocation) -> None:
    assert parse_request(body, NOW) == expected


BAD_BODIES = {
    "a body that is not JSON is refused": b"jti=abc",
    "a body that is not UTF-8 is refused": b"\xff\xfe{}",
    "a JSON array is refused": b'[{"jti": "abc", "expires_at": 1800000600}]',
    "neither jti nor sub is refused": b'{"expires_at": 1800000600}',
    "both jti and sub are refused": b'{"jti": "a", "sub": "b", "expires_at": 1800000600}',
    "an unknown field is refused": b'{"jti": "a", "expires_at": 1800000600, "aud": "x"}',
    "iss with a jti is refused": b'{"jti": "a", "expires_at": 1800000600, "iss": "https://main.example"}',
    "an issuer that is not configured is refused":
        b'{"sub": "alice", "expires_at": 1800000600, "iss": "https://other.example"}',
    "a sub that reads as another issuer's is refused": b'{"sub": "https://partner.example#alice", '
        b'"expires_at": 1800000600, "iss": "https://main.example"}',
    "an empty jti is refused": b'{"jti": "", "expires_at": 1800000600}',
    "a numeric jti is refused": b'{"jti": 12, "expires_at": 1800000600}',
    "a jti of one character too many is refused": json.dumps(
        {"jti": "j" * (MAX_VALUE_CHARS + 1), "expires_at": NOW + 60}).encode(),
    "a jti with a newline is refused": b'{"jti": "a\\nb", "expires_at": 1800000600}',
    "a missing expiry is refused": b'{"jti": "abc"}',
    "an expiry as a string is refused": b'{"jti": "abc", "expires_at": "1800000600"}',
    "an expiry as a boolean is refused": b'{"jti": "abc", "expires_at": true}',
    "an expiry of NaN is refused": b'{"jti": "abc", "expires_at": NaN}',
    "an expiry of Infinity is refused": b'{"jti": "abc", "expires_at": Infinity}',
    "a huge integer expiry is refused": b'{"jti": "abc", "expires_at": 1' + b"0" * 400 + b"}",
    "an expiry in the past is refused": b'{"jti": "abc", "expires_at": 1799999999}',
    "an expiry of now is refused": b'{"jti": "abc", "expires_at": 1800000000}',
    "an expiry over 366 days ahead is refused": json.dumps(
        {"jti": "abc", "expires_at": NOW + MAX_AHEAD_SECONDS + 1}).encode(),
}


# The main issuer mapped into the plain name space, a partner namespaced by its URL.
TWO_ISSUERS = SubjectNamespaces({"https://main.example": "",
                                 "https://partner.example": "https://partner.example#"})


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_a_bad_request_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_request(body, NOW, TWO_ISSUERS)
    assert raised.value.status == 400 and raised.value.description


@pytest.mark.parametrize(("body", "member"), [
    ({"sub": "alice"}, "sub:alice"),
    ({"sub": "alice", "iss": "https://main.example"}, "sub:alice"),
    ({"sub": "alice", "iss": "https://partner.example"}, "sub:https://partner.example#alice"),
    ({"sub": "https://partner.example#alice"}, "sub:https://partner.example#alice"),
], ids=["a plain sub is the plain name space", "the main issuer's sub is its plain subject",
        "the partner's sub gets the partner's prefix", "a namespaced subject is taken as it is"])
def test_a_sub_is_revoked_in_its_issuers_name_space(body: dict[str, str], member: str) -> None:
    """issue 11 §1.9: revoking the partner's alice is not revoking the main issuer's."""
    parsed = parse_request(json.dumps({**body, "expires_at": NOW + 60}).encode(), NOW, TWO_ISSUERS)
    assert parsed.member == member


# -- the admin endpoint -----------------------------------------------------------------------
@contextlib.asynccontextmanager
async def admin(revocations: RevocationList | None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(Metrics(), {}, UpstreamProbe("127.0.0.1", 9), revocations=revocations)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_revoke_is_not_served_when_revocation_is_disabled() -> None:
    async def scenario() -> None:
        async with admin(None) as client:
            response = await client.post("/revoke", headers=bearer(SECRET),
                                         json={"jti": "a", "expires_at": in_(60)})
            assert response.status_code == 404
    run(scenario())


@pytest.mark.parametrize("headers", [
    {}, bearer("wrong-" + SECRET), bearer(SECRET[:-1]), bearer(SECRET + "x"), bearer(""),
    {"Authorization": f"Basic {SECRET}"}, {"Authorization": SECRET},
], ids=["no Authorization is refused", "a wrong secret is refused", "a prefix of the secret is refused",
        "the secret plus a character is refused", "an empty bearer is refused",
        "the secret with the Basic scheme is refused", "the secret without a scheme is refused"])
def test_revoke_needs_the_admin_secret(server: RedisServer, prefix: str, headers: dict[str, str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations, admin(revocations) as client:
            response = await client.post("/revoke", headers=headers,
                                         json={"jti": "a", "expires_at": in_(60)})
            assert response.status_code == 401
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
            revocations.check(who(jti="a"))
            with server.client() as redis:
                assert redis.zcard(f"{prefix}revoked") == 0

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "revoke refused" in logged
    assert SECRET[:12] not in logged


def test_revoke_stores_publishes_and_applies(server: RedisServer, prefix: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations, admin(revocations) as client:
            expires = round(in_(3600))
            response = await client.post("/revoke", headers=bearer(SECRET),
                                         json={"jti": "abc", "expires_at": expires})
            assert response.status_code == 200
            assert response.json() == {"revoked": "jti:abc", "expires_at": expires}
            assert refuses(revocations, who(jti="abc"))  # here, at once
            with server.client() as redis:
                assert redis.zscore(f"{prefix}revoked", "jti:abc") == expires
            response = await client.post("/revoke", headers={**bearer(SECRET)},
                                         json={"sub": "mallory", "expires_at": expires + 0.5})
            assert response.json() == {"revoked": "sub:mallory", "expires_at": expires + 0.5}
            assert (await client.get("/revoke", headers=bearer(SECRET))).status_code == 405

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert SECRET[:12] not in "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


@pytest.mark.parametrize(("body", "why"), [
    (b"{", "the body must be a JSON object"),
    (b'{"jti": "a", "sub": "b", "expires_at": 1}', "give exactly one of jti or sub"),
    (b'{"jti": "a", "expires_at": 1}', "expires_at must be in the future"),
    (b'{"jti": "' + b"a" * 5000 + b'", "expires_at": 1}', "the body must be at most 4096 bytes"),
], ids=["a broken body gets 400", "jti and sub together get 400", "a past expiry gets 400",
        "a body over 4 KiB gets 400"])
def test_revoke_explains_a_bad_body(server: RedisServer, prefix: str, body: bytes, why: str) -> None:
    async def scenario() -> None:
        async with replica(server.url, prefix) as revocations, admin(revocations) as client:
            response = await client.post("/revoke", headers=bearer(SECRET), content=body)
            assert response.status_code == 400
            assert response.json() == {"error": "bad_request", "error_description": why}
    run(scenario())


def test_revoke_answers_503_when_redis_is_down_and_changes_nothing() -> None:
    async def scenario(server: RedisServer) -> None:
        async with replica(server.url, "gk:") as revocations, admin(revocations) as client:
            server.freeze()
            try:
                response = await client.post("/revoke", headers=bearer(SECRET),
                                             json={"jti": "abc", "expires_at": in_(60)})
                revocations.check(who(jti="abc"))  # not pretended locally either
            finally:
                server.thaw()
            assert response.status_code == 503
            assert response.json()["error"] == "revocation_store_unavailable"
            assert "retry" in response.json()["error_description"]

    with run_redis() as own:
        run(scenario(own))
