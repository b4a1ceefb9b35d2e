"""Opaque bearer tokens by RFC 7662 introspection, end to end: a real gatekeeper process, a
scripted introspection endpoint on loopback (tests/support/introspection.py), the real app.

Gatekeepers here (the module issuer's JWKS is real: its JWTs keep working next to introspection):

    basic     the module issuer, introspected at endpoint A (client_secret_basic), long cache
    post      the same, client_secret_post, a short cache (1 s) and short negatives
    two       the module issuer at A and a second issuer at B: the answer of one issuer is never
              taken for the other's
    always    ``basic`` with ``mode: always``: the issuer's own JWTs are introspected too
    budget    ``basic`` with ``calls_per_client_per_minute: 2``
    keyless   an issuer that only introspects (``mode: always``) and publishes no keys at all
    revoking  ``basic`` with the revocation list (a real redis-server): it applies to an
              introspected token as to a JWT, cached answer or not

Every refused token must be refused before the app: the recording upstream must not see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, served_issuer
from tests.support import forge
from tests.support.introspection import IntrospectionServer, Reply
from tests.support.poll import eventually
from tests.support.redis import run_redis
from tests.support.servers import free_port, serve_asgi

SECRET = "s3cret-introspection-client:/+"  # characters that must be form-encoded in Basic
ADMIN_SECRET = "admin-" + "0" * 40


@dataclass
class World:
    issuer: DevIssuer
    second: DevIssuer
    a: IntrospectionServer
    b: IntrospectionServer
    upstream: Upstream
    gks: dict[str, Gatekeeper]

    def get(self, via: str, token: str) -> httpx.Response:
        with self.gks[via].client() as client:
            return client.get("/private", headers={"Authorization": f"Bearer {token}"})

    def good(self, subject: str = "alice", issuer: str | None = None, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        answer: dict[str, Any] = {"active": True, "sub": subject, "aud": AUDIENCE,
                                  "iss": issuer or self.issuer.issuer, "exp": now + 300, "iat": now,
                                  "token_type": "Bearer", "roles": ["reader"]}
        answer.update(changes)
        return {k: v for k, v in answer.items() if v is not None}


def _introspection(url: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": f"{url}/introspect", "client_id": "gk", "client_secret": SECRET, **extra}


@pytest.fixture(scope="module")
def world(issuer: DevIssuer, upstream: Upstream,
          gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[World]:
    a = IntrospectionServer("gk", SECRET)
    b = IntrospectionServer("gk", SECRET)
    with ExitStack() as stack:
        redis = stack.enter_context(run_redis())
        url_a = stack.enter_context(serve_asgi(a, lifespan="off"))
        url_b = stack.enter_context(serve_asgi(b, lifespan="off"))
        second = stack.enter_context(served_issuer())

        def issuers(*entries: tuple[DevIssuer, dict[str, Any]]) -> dict[str, Any]:
            return {"issuers": [{"issuer": dev.issuer, "audience": [AUDIENCE],
                                 "introspection": introspection} for dev, introspection in entries]}

        gks = {
            "basic": gatekeeper_factory(auth=issuers(
                (issuer, _introspection(url_a, timeout_seconds=1, max_ttl_seconds=3600)))),
            "post": gatekeeper_factory(auth=issuers(
                (issuer, _introspection(url_a, auth_method="client_secret_post",
                                        max_ttl_seconds=1, negative_ttl_seconds=1)))),
            "two": gatekeeper_factory(auth=issuers(
                (issuer, _introspection(url_a, max_ttl_seconds=3600, token_prefixes=["at-a_"])),
                (second, _introspection(url_b, max_ttl_seconds=3600, token_prefixes=["at-b_"])))),
            "always": gatekeeper_factory(auth=issuers(
                (issuer, _introspection(url_a, mode="always", max_ttl_seconds=3600)))),
            "budget": gatekeeper_factory(auth=issuers(
                (issuer, _introspection(url_a, calls_per_client_per_minute=2)))),
            # An issuer of opaque tokens only: nothing answers at its address (no discovery, no
            # JWKS); its endpoint is configured.
            "keyless": gatekeeper_factory(auth={"issuers": [{
                "issuer": f"http://127.0.0.1:{free_port()}/opaque-only", "audience": [AUDIENCE],
                "introspection": _introspection(url_a, mode="always", max_ttl_seconds=3600)}]}),
            "revoking": gatekeeper_factory(
                auth=issuers((issuer, _introspection(url_a, max_ttl_seconds=3600))),
                redis={"url": redis.url},
                revocation={"enabled": True, "admin_secret": ADMIN_SECRET, "resync_seconds": 1}),
        }
        yield World(issuer, second, a, b, upstream, gks)


# -- the table of hostile answers -----------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    reply: Callable[[World], Reply]
    status: int
    code: str


_BIG = b'{"active": true, "pad": "' + b"x" * 200_000 + b'"}'

HOSTILE = {
    "active-false": Hostile(lambda w: Reply(json={"active": False}), 401, "inactive_token"),
    "no-active": Hostile(lambda w: Reply(json=w.good(active=None)), 401, "inactive_token"),
    "active-string-true": Hostile(lambda w: Reply(json=w.good(active="true")), 401, "inactive_token"),
    "active-one": Hostile(lambda w: Reply(json=w.good(active=1)), 401, "inactive_token"),
    "wrong-iss": Hostile(lambda w: Reply(json=w.good(iss=w.second.issuer)), 401, "bad_issuer"),
    "wrong-aud": Hostile(lambda w: Reply(json=w.good(aud="another-api")), 401, "bad_audience"),
    "aud-list-without-ours": Hostile(lambda w: Reply(json=w.good(aud=["x", "y"])), 401, "bad_audience"),
    "no-aud": Hostile(lambda w: Reply(json=w.good(aud=None)), 401, "missing_claim"),
    "no-exp": Hostile(lambda w: Reply(json=w.good(exp=None)), 401, "missing_claim"),
    "expired": Hostile(lambda w: Reply(json=w.good(exp=int(time.time()) - 600)), 401, "expired"),
    "exp-a-string": Hostile(lambda w: Reply(json=w.good(exp="9999999999")), 401, "invalid_claim"),
    "no-sub": Hostile(lambda w: Reply(json=w.good(subject="")), 401, "missing_claim"),
    "refresh-token": Hostile(lambda w: Reply(json=w.good(token_type="refresh_token")), 401,
                             "wrong_token_type"),
    "keycloak-refresh-typ": Hostile(lambda w: Reply(json=w.good(token_type=None, typ="Refresh")), 401,
                                    "wrong_token_type"),
    "dpop-bound": Hostile(lambda w: Reply(json=w.good(token_type="DPoP", cnf={"jkt": "x"})), 401,
                          "wrong_token_type"),
    "cnf-bound": Hostile(lambda w: Reply(json=w.good(cnf={"x5t#S256": "x"})), 401, "bound_token"),
    "json-array": Hostile(lambda w: Reply(json=[True]), 503, "introspection_unavailable"),
    "not-json": Hostile(lambda w: Reply(raw=b"<html>active</html>"), 503, "introspection_unavailable"),
    "huge-body": Hostile(lambda w: Reply(raw=_BIG), 503, "introspection_unavailable"),
    "http-500": Hostile(lambda w: Reply(json=w.good(), status=500), 503, "introspection_unavailable"),
    "slow": Hostile(lambda w: Reply(json=w.good(), delay=3.0), 503, "introspection_unavailable"),
}


@pytest.mark.parametrize("case", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_answers_are_refused_before_the_app(world: World, case: Hostile,
                                                    request: pytest.FixtureRequest) -> None:
    token = f"opaque-{request.node.callspec.id}"
    world.a.script[token] = case.reply(world)
    before = len(world.upstream.recorder)
    response = world.get("basic", token)
    assert (response.status_code, response.json()["error"]) == (case.status, case.code)
    assert len(world.upstream.recorder) == before
    if case.status == 503:
        # Only that token: a JWT of the same issuer still passes while the endpoint misbehaves.
        assert world.get("basic", world.issuer.mint("jwt-user", audience=AUDIENCE)).status_code == 200


def test_active_opaque_token_is_mapped_like_a_jwt_and_cached(world: World) -> None:
    world.a.script["opaque-good"] = Reply(json=world.good("carol", roles=["admin", "ops"]))
    for _ in range(3):
        assert world.get("basic", "opaque-good").status_code == 200
    seen = world.upstream.recorder.last
    assert seen.header("x-auth-request-user") == "carol"
    assert seen.header("x-auth-request-groups") == "admin,ops"
    assert world.a.times_asked("opaque-good") == 1
    assert [a.method for a in world.a.asked if a.token == "opaque-good"] == ["client_secret_basic"]


def test_client_secret_post_and_a_revocation_picked_up_after_the_ttl(world: World) -> None:
    world.a.script["opaque-revoked"] = Reply(json=world.good("dave"))
    assert world.get("post", "opaque-revoked").status_code == 200
    assert [a.method for a in world.a.asked if a.token == "opaque-revoked"] == ["client_secret_post"]
    world.a.script["opaque-revoked"] = Reply(json={"active": False})  # revoked at the issuer
    assert eventually(lambda: world.get("post", "opaque-revoked").status_code == 401, seconds=20)


def test_two_issuers_never_share_an_answer_nor_see_each_others_tokens(world: World) -> None:
    """Each issuer is asked only about the opaque tokens its prefix names: a bearer credential
    is never shown to a party that did not issue it (the config refuses two introspecting
    issuers without prefixes: tests/unit/settings/test_introspection_routing.py)."""
    world.b.script["at-b_opaque"] = Reply(json=world.good("erin", issuer=world.second.issuer))
    for _ in range(2):
        response = world.get("two", "at-b_opaque")
        assert response.status_code == 200
        assert world.upstream.recorder.last.header("x-auth-request-user") == \
            f"{world.second.issuer}#erin"  # B's subject, in B's name space
    assert (world.a.times_asked("at-b_opaque"), world.b.times_asked("at-b_opaque")) == (0, 1)
    world.a.script["at-a_opaque"] = Reply(json=world.good("erin"))
    assert world.get("two", "at-a_opaque").status_code == 200
    assert world.upstream.recorder.last.header("x-auth-request-user") == f"{world.issuer.issuer}#erin"
    assert (world.a.times_asked("at-a_opaque"), world.b.times_asked("at-a_opaque")) == (1, 0)
    # B answering with A's issuer name is refused: its word is about its own tokens only.
    world.b.script["at-b_says-a"] = Reply(json=world.good("mallory"))
    assert world.get("two", "at-b_says-a").status_code == 401
    # A token of neither prefix is shown to nobody, and refused.
    world.a.script["at-c_opaque"] = Reply(json=world.good("erin"))
    world.b.script["at-c_opaque"] = Reply(json=world.good("erin", issuer=world.second.issuer))
    assert world.get("two", "at-c_opaque").status_code == 401
    assert (world.a.times_asked("at-c_opaque"), world.b.times_asked("at-c_opaque")) == (0, 0)


def test_neither_the_token_nor_the_secret_is_logged(world: World) -> None:
    world.a.script["opaque-secret-token-1234"] = Reply(json=world.good(), status=500)
    assert world.get("basic", "opaque-secret-token-1234").status_code == 503
    for gk in world.gks.values():
        output = gk.process.output()
        assert SECRET not in output and "opaque-secret-token-1234" not in output


# -- the token itself: refused before any introspection call ----------------------------------


TOKENS = {
    "unsigned-jwt-for-an-opaque-only-issuer": (
        lambda w: forge.unsigned({"typ": "JWT"}, w.good(), alg="none"), "alg_none"),
    "too-large": (lambda w: "o" * 20_000, "token_too_large"),
}


@pytest.mark.parametrize("case", list(TOKENS.values()), ids=list(TOKENS))
def test_tokens_refused_without_asking_the_issuer(world: World, case: Any) -> None:
    make, code = case
    token = make(world)
    world.a.script[token] = Reply(json=world.good())  # would pass, if it were asked
    response = world.get("basic", token)
    assert (response.status_code, response.json()["error"]) == (401, code)
    assert world.a.times_asked(token) == 0


def test_the_revocation_list_applies_to_an_introspected_token(world: World) -> None:
    world.a.script["opaque-jti"] = Reply(json=world.good("frank", jti="op-jti-1"))
    world.a.script["opaque-sub"] = Reply(json=world.good("grace"))
    for token in ("opaque-jti", "opaque-sub"):
        assert world.get("revoking", token).status_code == 200  # now cached for an hour
    with world.gks["revoking"].admin() as admin:
        for body in ({"jti": "op-jti-1"}, {"sub": "grace"}):
            revoked = admin.post("/revoke", json={**body, "expires_at": int(time.time()) + 3600},
                                 headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
            assert revoked.status_code == 200, revoked.text

    def refused(token: str) -> bool:
        response = world.get("revoking", token)
        return response.status_code == 401 and response.json()["error"] == "token_revoked"

    assert eventually(lambda: refused("opaque-jti") and refused("opaque-sub"), seconds=10)
    assert (world.a.times_asked("opaque-jti"), world.a.times_asked("opaque-sub")) == (1, 1)


def test_mode_always_asks_about_the_issuers_own_jwts(world: World) -> None:
    good_jwt = world.issuer.mint("henry", audience=AUDIENCE)
    revoked_jwt = world.issuer.mint("ivan", audience=AUDIENCE)  # signed well, inactive at A
    world.a.script[good_jwt] = Reply(json=world.good("henry"))
    world.a.script[revoked_jwt] = Reply(json={"active": False})
    assert world.get("basic", revoked_jwt).status_code == 200  # opaque_only: verified locally
    assert world.a.times_asked(revoked_jwt) == 0
    assert world.get("always", good_jwt).status_code == 200
    response = world.get("always", revoked_jwt)
    assert (response.status_code, response.json()["error"]) == (401, "inactive_token")
    assert (world.a.times_asked(good_jwt), world.a.times_asked(revoked_jwt)) == (1, 1)


def test_an_issuer_that_only_introspects_needs_no_keys_to_be_ready(world: World) -> None:
    """GitHub-style deployments: opaque tokens only, no JWKS to fetch. Readiness does not wait
    for keys that will never exist, and its tokens are introspected."""
    gk = world.gks["keyless"]
    with gk.admin() as admin:
        ready = admin.get("/readyz")
    assert ready.status_code == 200, ready.json()
    issuer = gk.config["auth"]["issuers"][0]["issuer"]
    world.a.script["keyless-opaque"] = Reply(json=world.good("judy", issuer=issuer))
    response = world.get("keyless", "keyless-opaque")
    assert response.status_code == 200
    assert world.upstream.recorder.last.header("x-auth-request-user") == "judy"
    world.a.script["keyless-inactive"] = Reply(json={"active": False})
    assert world.get("keyless", "keyless-inactive").status_code == 401


def test_a_client_sending_made_up_tokens_is_held_to_its_budget(world: World) -> None:
    """Each made-up token would be a call to the issuer: past two a minute this client gets 429
    with Retry-After, and the issuer is not asked; a token already answered still passes."""
    world.a.script["budget-good"] = Reply(json=world.good("kim"))
    assert world.get("budget", "budget-good").status_code == 200
    assert world.get("budget", "budget-made-up-1").status_code == 401  # the second call
    refused = world.get("budget", "budget-made-up-2")
    assert (refused.status_code, refused.json()["error"]) == (429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert world.a.times_asked("budget-made-up-2") == 0
    assert world.get("budget", "budget-good").status_code == 200  # cached: costs nothing
