"""Signing keys: rotation, issuer outages, single-flight and rate-limited refetches, TTL bounds.

The end-to-end tests each start a fresh DevIssuer and a fresh gatekeeper process, since the key
cache's state is the thing under test. The unit-level tests drive ``IssuerKeys`` against a real
DevIssuer over HTTP too, with a fixed clock where the TTL matters.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.metrics import Metrics
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.jwks import IssuerKeys, SigningKey, cache_ttl, parse_jwks
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, gatekeeper_config, served_issuer
from tests.support import forge
from tests.support.fakes import FakeClock, mint
from tests.support.servers import run_process

# -- helpers -------------------------------------------------------------------------------------


@contextmanager
def gatekeeper_for(
    issuer: DevIssuer, upstream: Upstream, tmp_path: Path, **auth: Any
) -> Iterator[Gatekeeper]:
    """A gatekeeper process trusting ``issuer`` only (``auth`` keys override), stopped on exit."""
    config = gatekeeper_config(issuer, upstream.url, auth=auth)
    path = tmp_path / f"gatekeeper-{secrets.token_hex(4)}.yaml"
    path.write_text(yaml.safe_dump(config))
    admin_url = f"http://{config['admin_listen']}"
    with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                     ready_url=f"{admin_url}/healthz") as handle:
        yield Gatekeeper(url=f"http://{config['listen']}", admin_url=admin_url, process=handle,
                         config=config, config_path=path)


def call(gk: Gatekeeper, token: str) -> httpx.Response:
    with gk.client() as client:
        return client.get("/private", headers={"Authorization": f"Bearer {token}"})


def burst(gk: Gatekeeper, tokens: list[str], concurrency: int = 500) -> Counter[tuple[int, str]]:
    """Send every token at once (at most ``concurrency`` connections): (status, error) counts.

    A bare HTTP/1.1 client on asyncio streams, one connection per request: httpx needs ~3 ms
    of CPU per request and slows down with many connections, so with it the requests would
    trickle in one pool-full at a time instead of landing together while a fetch is in flight.
    """
    host, port = gk.config["listen"].rsplit(":", 1)

    async def one(token: str, gate: asyncio.Semaphore) -> tuple[int, str]:
        async with gate:
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(f"GET /private HTTP/1.1\r\nHost: {host}:{port}\r\n"
                             f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
                response = await asyncio.wait_for(reader.read(), 30)  # to EOF: Connection: close
            finally:
                writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, "" if status == 200 else json.loads(body)["error"]

    async def run() -> list[tuple[int, str]]:
        gate = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(one(t, gate) for t in tokens))

    return Counter(asyncio.run(run()))


def wait_until_ready(gk: Gatekeeper, timeout: float = 30.0) -> httpx.Response:
    """Poll /readyz until 200 or ``timeout``; return the last answer (a wait, not a measurement)."""
    deadline = time.monotonic() + timeout
    with gk.admin() as admin:
        while True:
            response = admin.get("/readyz")
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
            time.sleep(0.1)


# -- end to end ----------------------------------------------------------------------------------


def test_a_rotated_key_is_fetched_on_its_first_token(upstream: Upstream, tmp_path: Path) -> None:
    with (served_issuer(algorithms=("RS256",)) as issuer,
          gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=0) as gk):
        old_kid = issuer.key().kid
        assert call(gk, mint(issuer, "before")).status_code == 200
        fetches = issuer.fetch_counts["/jwks"]

        new_kid = issuer.rotate()
        token = mint(issuer, "after")
        assert forge.decode_header(token)["kid"] == new_kid
        response = call(gk, token)
        assert response.status_code == 200, response.text
        assert upstream.recorder.last.header("x-auth-request-user") == "after"
        assert issuer.fetch_counts["/jwks"] == fetches + 1
        # The old key is still published, so its tokens still pass.
        assert call(gk, mint(issuer, "old-key", kid=old_kid)).status_code == 200

        # A kid the issuer never published: refetched once, still unknown, refused.
        forged = forge.signed({"kid": "never-published"}, forge.decode_payload(token),
                              forge.attacker_key("RS256"), "RS256")
        response = call(gk, forged)
        assert response.status_code == 401 and response.json()["error"] == "unknown_kid"
        assert issuer.fetch_counts["/jwks"] == fetches + 2


@pytest.mark.parametrize("withdraw", [
    pytest.param(lambda i, kid: i.rotate(drop_old=True), id="the key is rotated out"),
    pytest.param(lambda i, kid: (i.remove_key(kid), i.add_key("RS256", kid=kid)),
                 id="the same kid now names another key"),
])
def test_a_cached_token_stops_working_once_its_key_leaves_the_jwks(
    upstream: Upstream, tmp_path: Path, withdraw: Callable[[DevIssuer, str], object]
) -> None:
    with (served_issuer(algorithms=("RS256",)) as issuer,
          gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=0) as gk):
        old_kid = issuer.key().kid
        cached = mint(issuer, "cached")
        assert call(gk, cached).status_code == 200
        assert call(gk, cached).status_code == 200  # a cache hit now

        withdraw(issuer, old_kid)
        # A token under a kid gatekeeper has not seen makes it fetch the JWKS again.
        trigger = forge.signed({"kid": "not-yet-seen"}, forge.decode_payload(mint(issuer, "x")),
                               forge.attacker_key("RS256"), "RS256")
        fetches = issuer.fetch_counts["/jwks"]
        assert call(gk, trigger).status_code == 401
        assert issuer.fetch_counts["/jwks"] == fetches + 1

        before = len(upstream.recorder)
        response = call(gk, cached)
        assert response.status_code == 401, response.text
        assert response.json()["error"] in ("unknown_kid", "bad_signature")
        assert len(upstream.recorder) == before
        assert call(gk, mint(issuer, "new-key")).status_code == 200


def test_a_rotation_right_after_start_is_picked_up_on_its_first_token(
    upstream: Upstream, tmp_path: Path
) -> None:
    """The start-up fetch does not use up the unknown-kid budget (issue 11 §2.5): a long interval
    here, so a rotation just after start would otherwise wait a minute."""
    with (served_issuer(algorithms=("RS256",)) as issuer,
          gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=60) as gk):
        assert wait_until_ready(gk).status_code == 200  # the start-up fetch has landed
        fetches = issuer.fetch_counts["/jwks"]

        issuer.rotate(drop_old=True)
        response = call(gk, mint(issuer, "rotated"))

        assert response.status_code == 200, response.text
        assert issuer.fetch_counts["/jwks"] == fetches + 1
        # A flood of made-up kids in the same interval costs no further fetch.
        now = int(time.time())
        claims = {"iss": issuer.issuer, "sub": "x", "aud": AUDIENCE, "iat": now, "exp": now + 300}
        key = forge.attacker_key("RS256")
        forged = [forge.signed({"kid": f"flood-{i}"}, claims, key, "RS256") for i in range(200)]
        assert burst(gk, forged) == Counter({(401, "unknown_kid"): 200})
        assert issuer.fetch_counts["/jwks"] == fetches + 1


def test_known_keys_keep_working_while_the_issuer_is_down(upstream: Upstream, tmp_path: Path) -> None:
    with (served_issuer(algorithms=("RS256",)) as issuer,
          gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=0) as gk):
        assert call(gk, mint(issuer, "warm-up")).status_code == 200
        issuer.down = True

        response = call(gk, mint(issuer, "during-outage"))  # a new token: no cache hit
        assert response.status_code == 200, response.text

        attempts = sum(issuer.fetch_counts.values())
        issuer.rotate()
        before = len(upstream.recorder)
        response = call(gk, mint(issuer, "new-key"))
        # Keys exist, so an unknown kid is the token's problem (401), not ours (503).
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unknown_kid"
        assert len(upstream.recorder) == before
        assert sum(issuer.fetch_counts.values()) > attempts, "no refetch was even tried"

        with gk.admin() as admin:
            ready = admin.get("/readyz")
        assert ready.status_code == 200, ready.text
        check = ready.json()["checks"][f"issuer {issuer.issuer}"]
        assert check["ok"] is True and "503" in check["stale_error"]


def test_a_burst_on_a_new_kid_fetches_once_and_unknown_kids_are_rate_limited(
    upstream: Upstream, tmp_path: Path
) -> None:
    with served_issuer(algorithms=("RS256",)) as issuer:
        with gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=0) as gk:
            assert call(gk, mint(issuer, "warm-up")).status_code == 200
            issuer.rotate()
            tokens = [mint(issuer, f"burst-{i}") for i in range(500)]  # distinct: no cache hits
            issuer.jwks_delay_seconds = 0.5  # every verifier piles onto one slow fetch
            fetches = issuer.fetch_counts["/jwks"]
            assert burst(gk, tokens) == Counter({(200, ""): 500})
            assert issuer.fetch_counts["/jwks"] == fetches + 1

        issuer.jwks_delay_seconds = 0.0  # fast fetches: without the rate limit, many would happen
        with gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=30) as gk:
            key = forge.attacker_key("RS256")
            now = int(time.time())
            claims = {"iss": issuer.issuer, "sub": "x", "aud": AUDIENCE, "iat": now, "exp": now + 300}
            fetches = issuer.fetch_counts["/jwks"]
            for _wave in range(3):  # without the rate limit, each wave would fetch at least once
                forged = [forge.signed({"kid": f"forged-{secrets.token_hex(8)}"}, claims, key, "RS256")
                          for _ in range(100)]
                assert burst(gk, forged) == Counter({(401, "unknown_kid"): 100})
            assert issuer.fetch_counts["/jwks"] - fetches <= 1


@dataclass(frozen=True)
class Outage:
    start: Callable[[DevIssuer], None]
    detail: str  # in /readyz's reason


def _down(issuer: DevIssuer) -> None:
    issuer.down = True


def _jwks_uri(url: Callable[[DevIssuer], str]) -> Callable[[DevIssuer], None]:
    def start(issuer: DevIssuer) -> None:
        issuer.discovery_overrides = {"jwks_uri": url(issuer)}
    return start


@pytest.mark.parametrize("outage", [
    pytest.param(Outage(_down, "HTTP 503"), id="the issuer answers 503"),
    pytest.param(Outage(_jwks_uri(lambda i: "http://127.0.0.1:port/jwks"), "InvalidURL"),
                 id="discovery names a jwks_uri that is not a URL"),
])
def test_gatekeeper_starts_without_keys_and_becomes_ready_when_they_come(
    upstream: Upstream, tmp_path: Path, outage: Outage
) -> None:
    with served_issuer(algorithms=("RS256",)) as issuer:
        outage.start(issuer)
        # A long rate limit: only the background retry may fetch, requests never do.
        with gatekeeper_for(issuer, upstream, tmp_path, jwks_min_refresh_seconds=30) as gk:
            name = f"issuer {issuer.issuer}"
            with gk.admin() as admin:
                ready = admin.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert name in ready.json()["failing"]
            assert outage.detail in ready.json()["checks"][name]["detail"]

            before = len(upstream.recorder)
            for token in (mint(issuer, "early"), mint(issuer, "early", include_kid=False)):
                response = call(gk, token)
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "keys_unavailable"
                assert response.headers["retry-after"].isdigit()
            assert len(upstream.recorder) == before

            issuer.down = False
            issuer.discovery_overrides = {}
            ready = wait_until_ready(gk)
            assert ready.status_code == 200, ready.text
            response = call(gk, mint(issuer, "later"))
            assert response.status_code == 200, response.text
            assert "Traceback" not in gk.process.output()


# -- IssuerKeys against a real issuer, without a gatekeeper process -------------------------------


@pytest.fixture
def lone_issuer() -> Iterator[DevIssuer]:
    with served_issuer(algorithms=("RS256",)) as issuer:
        yield issuer


def _keys(issuer: DevIssuer, http: httpx.AsyncClient, auth: AuthSettings | None = None,
          **settings: Any) -> IssuerKeys:
    return IssuerKeys(IssuerSettings(issuer=issuer.issuer, audience=[AUDIENCE], **settings),
                      auth or AuthSettings(), http, Metrics(), clock=lambda: 1000.0)


def test_unknown_kids_cost_one_fetch_per_interval_and_start_up_costs_none(lone_issuer: DevIssuer) -> None:
    clock = FakeClock(1000.0)
    interval = AuthSettings().jwks_min_refresh_seconds

    async def flood(keys: IssuerKeys, wave: int) -> set[str]:
        kids = [f"made-up-{wave}-{i}" for i in range(100)]
        results = await asyncio.gather(*(keys.key_for(kid, "RS256") for kid in kids),
                                       return_exceptions=True)
        return {getattr(r, "code", type(r).__name__) for r in results}

    async def scenario() -> list[int]:
        counts = []
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = IssuerKeys(IssuerSettings(issuer=lone_issuer.issuer, audience=[AUDIENCE]),
                              AuthSettings(), http, Metrics(), clock=clock)
            await keys.start()  # returns before the first fetch ends
            try:
                lone_issuer.rotate(drop_old=True)  # right after start: maybe before, maybe after
                new_kid = lone_issuer.key().kid
                assert (await keys.key_for(new_kid, "RS256")).kid == new_kid
                counts.append(lone_issuer.fetch_counts["/jwks"])
                for wave in range(3):  # same interval: no fetch at all
                    assert await flood(keys, wave) == {"unknown_kid"}
                counts.append(lone_issuer.fetch_counts["/jwks"])
                for wave in range(3, 6):  # a new interval each time: one fetch each
                    clock.now += interval
                    assert await flood(keys, wave) == {"unknown_kid"}
                    counts.append(lone_issuer.fetch_counts["/jwks"])
            finally:
                await keys.aclose()
        return counts

    counts = asyncio.run(scenario())
    assert counts[0] <= 2, "start-up, then at most one more for the rotated kid"
    assert counts[1] - counts[0] <= 1
    assert counts[2:] == [counts[1] + 1, counts[1] + 2, counts[1] + 3]


def test_a_token_that_comes_before_the_first_fetch_ends_waits_for_it(lone_issuer: DevIssuer) -> None:
    lone_issuer.jwks_delay_seconds = 0.5  # start() returns long before the keys are in

    async def scenario() -> str | None:
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = _keys(lone_issuer, http)
            await keys.start()
            try:
                assert not keys.ready
                return (await keys.key_for(lone_issuer.key().kid, "RS256")).kid
            finally:
                await keys.aclose()
    assert asyncio.run(scenario()) == lone_issuer.key().kid
    assert lone_issuer.fetch_counts["/jwks"] == 1


@pytest.mark.parametrize(("max_age", "delay"), [
    pytest.param(120, 108.0, id="max-age 120 is kept and refreshed at 90 percent"),
    pytest.param(5, 54.0, id="max-age 5 is raised to the 60 s floor"),
    pytest.param(100_000, 3240.0, id="max-age 100000 is cut to the 3600 s ceiling"),
])
def test_the_jwks_max_age_sets_the_refresh_within_bounds(
    lone_issuer: DevIssuer, max_age: int, delay: float
) -> None:
    lone_issuer.jwks_max_age_seconds = max_age

    async def scenario() -> float:
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = _keys(lone_issuer, http)
            assert await keys.refresh() is True
            return keys.next_refresh_delay()
    assert asyncio.run(scenario()) == delay


def test_failed_refreshes_back_off_even_with_stale_keys(lone_issuer: DevIssuer) -> None:
    async def scenario() -> list[float]:
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = _keys(lone_issuer, http)
            assert await keys.refresh() is True
            lone_issuer.down = True
            delays = []
            for _ in range(3):
                assert await keys.refresh() is False
                assert keys.ready and keys.last_error is not None and "503" in keys.last_error
                delays.append(keys.next_refresh_delay())
            lone_issuer.down = False
            assert await keys.refresh() is True and keys.last_error is None
            return delays
    # Not 1 s apart: stale keys used to mean a retry every second for as long as the outage lasts.
    assert asyncio.run(scenario()) == [2.0, 4.0, 8.0]


@pytest.mark.parametrize("jwks_uri", [
    pytest.param("{issuer}/no-such-jwks", id="a path that is 404"),
    pytest.param("http://127.0.0.1:99999/jwks", id="a port out of range"),
    pytest.param("http://127.0.0.1:port/jwks", id="a port that is not a number"),
    pytest.param("http://127.0.0.1:1/jwks", id="a port nobody listens on"),
    pytest.param("ftp://127.0.0.1/jwks", id="not http at all"),
])
def test_a_bad_discovered_jwks_uri_fails_the_refresh_and_is_read_again(
    lone_issuer: DevIssuer, jwks_uri: str
) -> None:
    lone_issuer.discovery_overrides = {"jwks_uri": jwks_uri.format(issuer=lone_issuer.issuer)}

    async def scenario() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = _keys(lone_issuer, http)
            for _ in range(2):
                assert await keys.refresh() is False  # a failed refresh, never an exception
                assert not keys.ready and keys.last_error
            lone_issuer.discovery_overrides = {}  # the issuer fixes its discovery document
            assert await keys.refresh() is True and keys.ready
    asyncio.run(scenario())
    assert lone_issuer.fetch_counts["/.well-known/openid-configuration"] == 3


def test_an_explicit_jwks_uri_skips_discovery(lone_issuer: DevIssuer) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            keys = _keys(lone_issuer, http, jwks_uri=lone_issuer.jwks_uri)
            assert await keys.refresh() is True
    asyncio.run(scenario())
    assert lone_issuer.fetch_counts["/.well-known/openid-configuration"] == 0
    assert lone_issuer.fetch_counts["/jwks"] == 1


# -- cache_ttl -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "ttl"), [
    pytest.param(None, 300, id="no Cache-Control means the default"),
    pytest.param("public, max-age=120", 120, id="max-age inside bounds is kept"),
    pytest.param("private,max-age=90", 90, id="max-age after a comma without space is found"),
    pytest.param("MAX-AGE=600", 600, id="the directive name is case-insensitive"),
    pytest.param("max-age=0", 60, id="max-age 0 is raised to the floor"),
    pytest.param("max-age=5", 60, id="a short max-age is raised to the floor"),
    pytest.param("max-age=999999999999999999999", 3600, id="a huge max-age is cut to the ceiling"),
    pytest.param("no-cache", 300, id="no max-age means the default"),
    pytest.param("s-maxage=30", 300, id="s-maxage is not max-age"),
    pytest.param("stale-max-age=30", 300, id="a longer directive ending in max-age is not max-age"),
    pytest.param("max-age=-5", 300, id="a negative max-age means the default"),
    pytest.param('max-age="120"', 300, id="a quoted max-age means the default"),
])
def test_cache_ttl_honours_max_age_within_bounds(header: str | None, ttl: float) -> None:
    assert cache_ttl(header, AuthSettings()) == ttl


def test_cache_ttl_uses_the_configured_bounds() -> None:
    auth = AuthSettings(jwks_min_ttl_seconds=10, jwks_max_ttl_seconds=100, jwks_default_ttl_seconds=50)
    assert [cache_ttl(h, auth) for h in (None, "max-age=5", "max-age=70", "max-age=500")] == [
        50, 10, 70, 100]


# -- parse_jwks and SigningKey.fits --------------------------------------------------------------


def _rsa(**extra: Any) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(forge.attacker_key("RS256").public_key(), as_dict=True), **extra}


def _ec(made_for: str, **extra: Any) -> dict[str, Any]:
    """A public EC JWK on the curve ``made_for`` needs (ES256: P-256...)."""
    return {**ECAlgorithm.to_jwk(forge.attacker_key(made_for).public_key(), as_dict=True), **extra}


def _okp(**extra: Any) -> dict[str, Any]:
    return {**OKPAlgorithm.to_jwk(forge.attacker_key("EdDSA").public_key(), as_dict=True), **extra}


def test_parse_jwks_keeps_public_signature_keys_only() -> None:
    private_rsa = RSAAlgorithm.to_jwk(forge.attacker_key("RS256"), as_dict=True)
    document = {"keys": [
        _rsa(kid="rsa", use="sig", alg="RS256"),
        _ec("ES256", kid="ec"),
        _okp(kid="okp"),
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "oct", "alg": "HS256"},
        _rsa(kid="enc", use="enc"),
        {**private_rsa, "kid": "private"},
        _rsa(kid="hmac-alg", alg="HS256"),
        {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
        {"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "PGP", "kid": "unknown-kty"},
        {"kid": "no-kty"},
        "a string", 42, None, ["a", "list"],
    ]}
    keys = parse_jwks(document)
    assert [k.kid for k in keys] == ["rsa", "ec", "okp"]
    assert [(k.kty, k.crv, k.alg) for k in keys] == [
        ("RSA", None, "RS256"), ("EC", "P-256", None), ("OKP", "Ed25519", None)]


@pytest.mark.parametrize("document", [
    pytest.param({"keys": "not a list"}, id="keys that are not a list"),
    pytest.param({"no_keys": []}, id="no keys member"),
    pytest.param([], id="a JSON array"),
    pytest.param("jwks", id="a string"),
])
def test_parse_jwks_refuses_what_is_not_a_jwks(document: Any) -> None:
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks(document)


def _one(jwk: dict[str, Any]) -> SigningKey:
    (key,) = parse_jwks({"keys": [jwk]})
    return key


@pytest.mark.parametrize(("make", "fits", "misfits"), [
    pytest.param(lambda: _rsa(), ["RS256", "RS512", "PS256"], ["ES256", "EdDSA", "HS256", "none"],
                 id="an RSA key without alg fits every RSA algorithm and nothing else"),
    pytest.param(lambda: _rsa(alg="RS256"), ["RS256"], ["RS384", "PS256", "ES256"],
                 id="an RSA key bound to RS256 fits RS256 only"),
    pytest.param(lambda: _ec("ES256"), ["ES256"], ["ES384", "ES512", "RS256", "EdDSA"],
                 id="a P-256 key fits ES256 only"),
    pytest.param(lambda: _ec("ES384"), ["ES384"], ["ES256", "ES512", "RS256"],
                 id="a P-384 key fits ES384 only"),
    pytest.param(lambda: _ec("ES384", alg="ES256"), [], ["ES256", "ES384"],
                 id="a P-384 key that claims ES256 fits nothing"),
    pytest.param(lambda: _okp(), ["EdDSA"], ["ES256", "RS256"],
                 id="an Ed25519 key fits EdDSA only"),
    pytest.param(lambda: _okp(alg="EdDSA"), ["EdDSA"], ["ES256"],
                 id="an Ed25519 key bound to EdDSA fits EdDSA"),
])
def test_a_key_fits_only_algorithms_of_its_type(
    make: Callable[[], dict[str, Any]], fits: list[str], misfits: list[str]
) -> None:
    key = _one(make())
    assert [alg for alg in fits if key.fits(alg)] == fits
    assert [alg for alg in misfits if key.fits(alg)] == []
