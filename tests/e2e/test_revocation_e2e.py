"""Token revocation across replicas: two gatekeeper processes share one real redis-server.

A revocation posted to one replica's admin listener reaches both within a second; a Redis that
dies leaves bearer traffic flowing from the cached list (``/readyz`` says stale) until
``max_stale_seconds``, then authenticated requests fail closed with 503; a Redis that comes back
empty is refilled from the replicas' memory. A revoked subject's browser session ends (cookie
and Redis copy) and the same subject cannot sign in again. Every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevUser
from tests.conftest import Gatekeeper, callback_of, login_oidc, served_login_issuer
from tests.support.fakes import mint
from tests.support.oidc import login_with_http_client
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import free_port

ADMIN_SECRET = secrets.token_urlsafe(30)  # 40 characters
MAX_STALE = 5


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(gatekeeper_factory: Callable[..., Gatekeeper],
             redis: RedisServer) -> tuple[Gatekeeper, Gatekeeper]:
    config: dict[str, Any] = {
        "redis": {"url": redis.url},
        "revocation": {"enabled": True, "admin_secret": ADMIN_SECRET, "resync_seconds": 1,
                       "max_stale_seconds": MAX_STALE},
    }
    return gatekeeper_factory(**config), gatekeeper_factory(**config)


def jti(token: str) -> str:
    value: str = jwt.decode(token, options={"verify_signature": False})["jti"]
    return value


def get(gk: Gatekeeper, token: str | None, path: str = "/echo") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with gk.client() as client:
        return client.get(path, headers=headers)


def error(response: httpx.Response) -> str | None:
    if response.headers.get("content-type") != "application/json":
        return None
    code: str | None = response.json().get("error")
    return code


def revoke(gk: Gatekeeper, body: dict[str, Any], secret: str = ADMIN_SECRET) -> httpx.Response:
    with gk.admin() as admin:
        return admin.post("/revoke", json=body, headers={"Authorization": f"Bearer {secret}"})


def revocation_check(gk: Gatekeeper) -> tuple[int, dict[str, Any]]:
    with gk.admin() as admin:
        response = admin.get("/readyz")
    check: dict[str, Any] = response.json()["checks"]["revocation"]
    return response.status_code, check


def poll(condition: Callable[[], bool], what: str, within: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def refused(gk: Gatekeeper, token: str) -> bool:
    response = get(gk, token)
    return response.status_code == 401 and error(response) == "token_revoked"


def test_a_revocation_reaches_both_replicas_within_a_second(
        replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer, redis: RedisServer) -> None:
    a, b = replicas
    alice, alice_again, bob = mint(issuer, "alice"), mint(issuer, "alice"), mint(issuer, "bob")
    carol, carol_again = mint(issuer, "carol"), mint(issuer, "carol")
    for gk in (a, b):
        for token in (alice, alice_again, bob, carol):
            assert get(gk, token).status_code == 200
        assert revocation_check(gk)[1]["ok"]

    expires_at = int(time.time()) + 3600
    assert revoke(a, {"jti": jti(alice), "expires_at": expires_at}, "x" * 40).status_code == 401
    assert revoke(a, {"jti": jti(alice)}).status_code == 400
    response = revoke(a, {"jti": jti(alice), "expires_at": expires_at})
    assert response.status_code == 200, response.text
    assert response.json() == {"revoked": f"jti:{jti(alice)}", "expires_at": expires_at}
    poll(lambda: refused(a, alice) and refused(b, alice), "alice's token refused on both",
         within=1.0)
    answer = get(b, alice)
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    for gk in (a, b):  # only that token: the subject's other token and other subjects pass
        assert get(gk, alice_again).status_code == 200
        assert get(gk, bob).status_code == 200

    # A subject, revoked on the other replica: every token of carol's, old and new.
    response = revoke(b, {"sub": "carol", "expires_at": expires_at})
    assert response.status_code == 200, response.text
    poll(lambda: refused(a, carol) and refused(b, carol), "carol refused on both", within=1.0)
    assert refused(a, carol_again) and refused(a, mint(issuer, "carol"))
    with redis.client() as client:
        assert client.zscore("gatekeeper:revoked", "sub:carol") == expires_at


def test_redis_down_serves_the_cached_list_then_fails_closed_then_recovers(
        replicas: tuple[Gatekeeper, Gatekeeper], issuer: DevIssuer, redis: RedisServer) -> None:
    a, b = replicas
    dave, erin = mint(issuer, "dave"), mint(issuer, "erin")
    response = revoke(a, {"jti": jti(dave), "expires_at": int(time.time()) + 3600})
    assert response.status_code == 200
    poll(lambda: refused(a, dave) and refused(b, dave), "dave refused on both", within=1.0)

    redis.kill()  # SIGKILL, no snapshot: it comes back empty
    # Bearer traffic keeps flowing from the cached list, which still refuses dave.
    for gk in (a, b):
        assert get(gk, erin).status_code == 200
        assert refused(gk, dave)
    poll(lambda: all(revocation_check(gk)[1]["detail"].startswith("stale:") for gk in (a, b)),
         "/readyz says the list is stale", within=3)
    status, check = revocation_check(a)
    assert check["ok"] and status == 200, check
    assert revoke(a, {"sub": "frank", "expires_at": int(time.time()) + 60}).status_code == 503

    # Past max_stale_seconds: authenticated requests fail closed; public paths still serve.
    poll(lambda: all(get(gk, erin).status_code == 503 for gk in (a, b)),
         "503 once the list is older than max_stale_seconds", within=MAX_STALE + 5)
    answer = get(a, erin)
    assert error(answer) == "revocation_list_stale"
    assert get(a, None, "/public/x").status_code == 200
    for gk in (a, b):  # not before: its last good sync is at least max_stale_seconds old
        status, check = revocation_check(gk)
        assert status == 503 and not check["ok"] and "beyond max_stale_seconds" in check["detail"]
        age = re.match(r"stale: last sync ([0-9.]+)s ago", check["detail"])
        assert age is not None and float(age[1]) >= MAX_STALE, check
    with a.admin() as admin:
        assert "gatekeeper_revocation_sync_failures_total" in admin.get("/metrics").text

    redis.start()  # empty: the replicas write back what they hold
    poll(lambda: all(get(gk, erin).status_code == 200 for gk in (a, b)), "recovery", within=10)
    for gk in (a, b):
        assert refused(gk, dave)
        assert revocation_check(gk)[1]["ok"]
    with redis.client() as client:
        poll(lambda: client.zscore("gatekeeper:revoked", f"jti:{jti(dave)}") is not None,
             "dave's revocation written back to redis", within=3)
    for gk in (a, b):
        output = gk.process.output()
        assert "revocation list sync failed" in output
        assert "authenticated requests get 503 until redis answers" in output
        assert ADMIN_SECRET not in output and dave not in output


# --- sessions: a revoked subject's browser session ends, and it cannot log in again ------------

BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"accept": "application/json"}
COOKIE = "_gatekeeper"


@pytest.fixture(scope="module", params=["cookie", "redis"])
def login_replica(request: pytest.FixtureRequest, gatekeeper_factory: Callable[..., Gatekeeper],
                  redis: RedisServer) -> Iterator[tuple[Gatekeeper, str]]:
    """A gatekeeper with browser login at the dev provider, cookie or Redis sessions, and the
    revocation list; and its Redis key prefix."""
    port = free_port()
    prefix = f"sessions-{request.param}:"
    with served_login_issuer([callback_of(port)]) as (issuer, login):
        login.users["carol"] = CAROL  # revoked by the WebSocket test only
        yield gatekeeper_factory(
            listen=f"127.0.0.1:{port}",
            oidc=login_oidc(issuer, port),
            session={"secret": secrets.token_urlsafe(32), "cookie_secure": False, "store": request.param},
            redis={"url": redis.url, "key_prefix": prefix},
            revocation={"enabled": True, "admin_secret": ADMIN_SECRET, "resync_seconds": 1,
                        "max_stale_seconds": MAX_STALE},
        ), prefix


CAROL = DevUser("carol", "carol-password", "carol", "Carol", "carol@example.test", ("user",))


def log_in(gk: Gatekeeper, user: str) -> tuple[str | None, httpx.Response]:
    """A browser asks for a page and signs in at the provider: its session cookie (if any) and
    the callback's answer."""
    with gk.client(headers=BROWSER) as client:
        started = client.get("/echo")
        assert started.status_code == 302, started.text
        callback = login_with_http_client(client, started.headers["location"], user, f"{user}-password")
        answer = client.get(callback)
        return session_cookie(client), answer


def session_cookie(client: httpx.Client) -> str | None:
    return next((c.value for c in client.cookies.jar if c.name == COOKIE), None)


def ends_session_cookie(response: httpx.Response) -> bool:
    cookies = response.headers.get_list("set-cookie")
    return any(c.startswith(f"{COOKIE}=") and "Max-Age=0" in c for c in cookies)


def stored_sessions(redis_server: RedisServer, prefix: str) -> int:
    client = redis_server.client()
    try:
        return len(client.keys(f"{prefix}session:*"))
    finally:
        client.close()


def with_session(gk: Gatekeeper, cookie: str, headers: dict[str, str]) -> httpx.Response:
    with gk.client(headers=headers, cookies={COOKIE: cookie}) as client:
        return client.get("/echo")


def test_a_revoked_subject_s_session_ends_and_cannot_sign_in_again(
        login_replica: tuple[Gatekeeper, str], redis: RedisServer) -> None:
    gk, prefix = login_replica
    store = gk.config["session"]["store"]
    cookie, back = log_in(gk, "alice")
    assert back.status_code == 302 and back.headers["location"] == "/echo", back.text
    assert cookie
    signed_in: str = cookie  # the lambda below reads this one; `cookie` is reused further down
    assert with_session(gk, cookie, API).status_code == 200
    if store == "redis":
        assert stored_sessions(redis, prefix) == 1

    # The login issuer is not the bearer one: its subjects are namespaced, revoked with iss.
    login_issuer = gk.config["oidc"]["issuer"]
    assert revoke(gk, {"sub": "alice", "iss": login_issuer,
                       "expires_at": time.time() + 3600}).status_code == 200
    poll(lambda: with_session(gk, signed_in, BROWSER).status_code != 200, "the session refused", 5)

    # A browser is sent to sign in again, and its session cookie is cleared.
    navigation = with_session(gk, cookie, BROWSER)
    assert navigation.status_code == 302 and "/authorize" in navigation.headers["location"], navigation.text
    assert ends_session_cookie(navigation)
    if store == "redis":  # ended where it is kept too: no refresh can bring it back
        assert stored_sessions(redis, prefix) == 0
    # The cookie replayed (an API client, or a copy) is still refused.
    replayed = with_session(gk, cookie, API)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == ("session_revoked" if store == "cookie" else "session_ended")

    # Signing in again as alice is refused at the callback, with a page that says why.
    cookie, again = log_in(gk, "alice")
    assert again.status_code == 403 and "Access revoked" in again.text, again.text
    assert "access_revoked" in again.text
    assert cookie is None
    if store == "redis":
        assert stored_sessions(redis, prefix) == 0

    # Another subject is unaffected.
    cookie, back = log_in(gk, "bob")
    assert back.status_code == 302
    assert cookie and with_session(gk, cookie, API).status_code == 200


def test_a_websocket_upgrade_with_a_revoked_session_ends_it_as_a_request_does(
        login_replica: tuple[Gatekeeper, str], redis: RedisServer) -> None:
    gk, prefix = login_replica
    cookie, back = log_in(gk, "carol")
    assert back.status_code == 302 and cookie, back.text
    stored = stored_sessions(redis, prefix)  # carol's, and others' of earlier tests
    assert revoke(gk, {"sub": "carol", "iss": gk.config["oidc"]["issuer"],
                       "expires_at": time.time() + 3600}).status_code == 200

    async def upgrade() -> tuple[int, list[str]]:
        url = "ws://" + gk.url.split("://", 1)[1] + "/ws"
        try:
            async with ws_connect(url, proxy=None, open_timeout=10, origin=gk.url,  # type: ignore[arg-type]
                                  additional_headers={"Cookie": f"{COOKIE}={cookie}"}):
                return 101, []
        except InvalidStatus as exc:
            return exc.response.status_code, exc.response.headers.get_all("set-cookie")

    # Only WebSocket upgrades until the revocation is seen: nothing else may end the session.
    answers: list[tuple[int, list[str]]] = []

    def refused() -> bool:
        answers.append(asyncio.run(upgrade()))
        return answers[-1][0] != 101

    poll(refused, "the upgrade refused", 5)
    status, set_cookie = answers[-1]
    assert status == 401
    assert any(c.startswith(f"{COOKIE}=") and "Max-Age=0" in c for c in set_cookie), set_cookie
    if gk.config["session"]["store"] == "redis":  # and ended where it is kept
        assert stored_sessions(redis, prefix) == stored - 1
