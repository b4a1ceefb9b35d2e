"""DPoP (RFC 9449) end to end: real gatekeeper processes, the real dev issuer over HTTP minting
tokens bound by ``cnf.jkt``, the recording upstream, and one real redis-server shared by two
replicas (``auth.dpop.replay_store: redis``), so a proof replayed on the other replica is caught.

Every refused request is refused before the app (the upstream records nothing for its path) and
carries the ``WWW-Authenticate: DPoP algs=...`` challenge of RFC 9449 §7.1. The full attack table
runs in tests/unit/authn/test_dpop.py; here each class of refusal crosses the real wire once.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper.authn.dpop_replay import Nonces
from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.dpop import DpopClient
from tests.support.redis import RedisServer, run_redis

CHALLENGE = re.compile(r'DPoP algs="ES256 ES384 PS256 RS256 EdDSA", error="(?P<error>[a-z_]+)", '
                       r'error_description="[^"\\]*"')
CLIENT = DpopClient()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(gatekeeper_factory: Callable[..., Gatekeeper],
             redis: RedisServer) -> tuple[Gatekeeper, Gatekeeper]:
    config: dict[str, Any] = {"redis": {"url": redis.url},
                              "auth": {"dpop": {"enabled": True, "replay_store": "redis"}}}
    return gatekeeper_factory(**config), gatekeeper_factory(**config)


@pytest.fixture(scope="module")
def with_nonce(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    return gatekeeper_factory(auth={"dpop": {"enabled": True, "require_nonce": True}})


def bound(issuer: DevIssuer, client: DpopClient = CLIENT) -> str:
    return issuer.mint("alice", audience=AUDIENCE, claims={"cnf": {"jkt": client.jkt}})


def path() -> str:
    return f"/echo/{uuid.uuid4().hex}"  # one path per request: the upstream's record is its own


def send(gk: Gatekeeper, where: str, headers: dict[str, str], method: str = "GET") -> httpx.Response:
    with gk.client() as client:
        return client.request(method, where, headers=headers)


def refused(response: httpx.Response, upstream: Upstream, where: str, code: str, error: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == code
    match = CHALLENGE.fullmatch(response.headers["www-authenticate"])
    assert match is not None and match["error"] == error, response.headers["www-authenticate"]
    assert upstream.recorder.by_path(where) == []


def test_a_good_proof_reaches_the_app(replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer,
                                      upstream: Upstream) -> None:
    gk, where, token = replicas[0], path(), bound(issuer)
    response = send(gk, where, CLIENT.headers("GET", gk.url + where, token))
    assert response.status_code == 200, response.text
    assert len(upstream.recorder.by_path(where)) == 1


def test_a_proof_replayed_on_the_same_and_on_the_other_replica_is_refused(
        replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer, upstream: Upstream) -> None:
    first, second = replicas
    where, token = path(), bound(issuer)
    headers = CLIENT.headers("GET", first.url + where, token)
    assert send(first, where, headers).status_code == 200
    upstream.recorder.clear()
    refused(send(first, where, headers), upstream, where, "dpop_replayed", "invalid_dpop_proof")
    # The other replica: its own Host differs, so a proof naming its URL, with the same jti.
    jti_proof = CLIENT.headers("GET", second.url + where, token, claims={"jti": "replayed-jti"})
    assert send(first, where, CLIENT.headers("GET", first.url + where, token,
                                             claims={"jti": "replayed-jti"})).status_code == 200
    upstream.recorder.clear()
    refused(send(second, where, jti_proof), upstream, where, "dpop_replayed", "invalid_dpop_proof")


@pytest.mark.parametrize(("change", "code"), [
    ({"method": "POST"}, "dpop_wrong_htm"),
    ({"url": "http://elsewhere.example/echo"}, "dpop_wrong_htu"),
    ({"claims": {"ath": "A" * 43}}, "dpop_wrong_ath"),
    ({"claims": {"iat": int(time.time()) - 3600}}, "dpop_iat_window"),
    ({"alg": "none"}, "dpop_bad_algorithm"),
], ids=["wrong htm", "wrong htu", "wrong ath", "expired iat", "alg none"])
def test_a_bad_proof_is_refused_before_the_app(
        replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer, upstream: Upstream,
        change: dict[str, Any], code: str) -> None:
    gk, where, token = replicas[0], path(), bound(issuer)
    change = dict(change)
    method, url = change.pop("method", "GET"), change.pop("url", gk.url + where)
    headers = {"Authorization": f"DPoP {token}", "DPoP": CLIENT.proof(method, url, token, **change)}
    refused(send(gk, where, headers), upstream, where, code, "invalid_dpop_proof")


def test_a_bound_token_as_bearer_and_an_unbound_token_as_dpop_are_refused(
        replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer, upstream: Upstream) -> None:
    gk, where = replicas[0], path()
    refused(send(gk, where, {"Authorization": f"Bearer {bound(issuer)}"}), upstream, where,
            "bound_token", "invalid_token")
    unbound = issuer.mint("alice", audience=AUDIENCE)
    refused(send(gk, where, CLIENT.headers("GET", gk.url + where, unbound)), upstream, where,
            "dpop_unbound_token", "invalid_token")
    other = DpopClient()
    refused(send(gk, where, other.headers("GET", gk.url + where, bound(issuer))), upstream, where,
            "dpop_key_mismatch", "invalid_token")
    assert send(gk, where, {"Authorization": f"Bearer {unbound}"}).status_code == 200


def test_a_nonce_is_asked_for_then_accepted(with_nonce: Gatekeeper, issuer: DevIssuer,
                                            upstream: Upstream) -> None:
    gk, where, token = with_nonce, path(), bound(issuer)
    response = send(gk, where, CLIENT.headers("GET", gk.url + where, token))
    refused(response, upstream, where, "use_dpop_nonce", "use_dpop_nonce")
    nonce = response.headers["dpop-nonce"]
    retry = send(gk, where, CLIENT.headers("GET", gk.url + where, token, claims={"nonce": nonce}))
    assert retry.status_code == 200, retry.text


def test_redis_down_fails_closed(replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer,
                                 redis: RedisServer, upstream: Upstream) -> None:
    gk, where, token = replicas[1], path(), bound(issuer)
    redis.freeze()
    try:
        response = send(gk, where, CLIENT.headers("GET", gk.url + where, token))
    finally:
        redis.thaw()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "replay_store_unavailable"
    assert upstream.recorder.by_path(where) == []


def test_a_request_without_credentials_is_offered_both_schemes(
        replicas: tuple[Gatekeeper, Gatekeeper], gatekeeper: Gatekeeper) -> None:
    """RFC 9449 §7.1: with DPoP on, a 401 names the DPoP scheme and its algs beside Bearer; a
    gatekeeper without DPoP offers Bearer only."""
    with replicas[0].client() as client:
        challenges = client.get("/echo").headers.get_list("www-authenticate")
    assert challenges == ['Bearer realm="gatekeeper"', 'DPoP algs="ES256 ES384 PS256 RS256 EdDSA"']
    with gatekeeper.client() as client:
        assert client.get("/echo").headers.get_list("www-authenticate") == ['Bearer realm="gatekeeper"']


@pytest.fixture(scope="module")
def nonce_secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dpop") / "nonce-secret"
    path.write_bytes(b"a-shared-dpop-nonce-secret-of-40-bytes!!\n")
    return path


@pytest.fixture(scope="module")
def shared_nonce(gatekeeper_factory: Callable[..., Gatekeeper], nonce_secret: Path) -> Gatekeeper:
    return gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], auth={"dpop": {
        "enabled": True, "require_nonce": True, "nonce_secret_file": str(nonce_secret),
        "nonce_lifetime_seconds": 300}})


@pytest.mark.parametrize("forward_auth", [False, True], ids=["proxied", "forward-auth check"])
def test_an_answer_brings_the_next_nonce_when_the_client_s_is_past_half_its_life(
        shared_nonce: Gatekeeper, nonce_secret: Path, issuer: DevIssuer, forward_auth: bool) -> None:
    """RFC 9449 §8.2: the client switches to the next nonce before its own expires, without a
    refused request. The test issues nonces with the replicas' shared secret."""
    nonces = Nonces(nonce_secret.read_bytes().strip(), 300)
    gk, token, now = shared_nonce, bound(issuer), time.time()
    answers = []
    for age in (200, 10):
        where = path()
        headers = CLIENT.headers("GET", gk.url + where, token,
                                 claims={"nonce": nonces.issue(now - age)})
        if forward_auth:
            headers |= {"X-Original-URI": where, "X-Original-Method": "GET",
                        "X-Forwarded-Host": gk.url.removeprefix("http://"), "X-Forwarded-Proto": "http"}
        response = send(gk, "/oauth2/auth" if forward_auth else where, headers)
        assert response.status_code == (202 if forward_auth else 200), response.text
        answers.append(response.headers.get("dpop-nonce"))
    old, fresh = answers
    assert old is not None and nonces.valid(old, time.time()) and not nonces.expiring(old, time.time())
    assert fresh is None  # a nonce in the first half of its life: nothing new to say
