"""Sessions in Redis across replicas, end to end: real gatekeeper processes sharing a real
redis-server, logging in at a real OpenID Provider.

    replicas A and B       panva's oidc-provider; its back-channel logout reaches A through a tap
                           that records each logout token (so a test can replay it)
    replicas C and D       the dev OpenID Provider, whose access tokens last 2 s and which counts
                           refresh grants (refresh once across replicas)

Both replicas of a pair have one config but their listen ports, and one redirect_url (A's or C's
callback): a login lands on the first one, and the session works on either.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, callback_of, login_oidc, served_login_issuer
from tests.support import forge
from tests.support.fakes import run
from tests.support.oidc import (
    OidcProvider,
    login_with_http_client,
    logout_with_http_client,
    run_oidc_provider,
)
from tests.support.poll import eventually
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import free_port, serve_asgi

SESSION_SECRET = "redis-e2e-session-secret-0123456789abcdef"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"accept": "application/json"}
COOKIE = "_gatekeeper"
ACCESS_TOKEN_TTL = 2  # the dev provider's, for the refresh test
BACKCHANNEL = "/oauth2/backchannel_logout"
# How long these tests give another replica to refuse an ended session: a loose bound (the
# change reaches it over pub/sub in milliseconds; test_redis_session_cache.py asserts that
# on the first request after the sign-out), with room for a loaded machine.
CACHE_BOUND = 3.0


def replica_config(port: int, redis: RedisServer, oidc: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "drain_seconds": 1,
        "websocket_recheck_seconds": 1,
        "pass_access_token": True,  # so a test knows the access token the session holds
        "oidc": oidc,
        "session": {"secret": SESSION_SECRET, "cookie_secure": False, "store": "redis",
                    "redis_url": redis.url},
        "redis": {"timeout_seconds": 0.5, "key_prefix": prefix},
    }


@dataclasses.dataclass
class Pair:
    a: Gatekeeper
    b: Gatekeeper


@dataclasses.dataclass
class Delivery:
    logout_token: str
    status: int
    body: dict[str, Any]


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def port_a() -> int:
    return free_port()


@pytest.fixture(scope="module")
def deliveries(port_a: int) -> Iterator[tuple[str, list[Delivery]]]:
    """A tap in front of A's back-channel logout: forwards each POST, records token and answer."""
    received: list[Delivery] = []

    async def tap(request: Request) -> Response:
        body = await request.body()
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            answer = await client.post(f"http://127.0.0.1:{port_a}{BACKCHANNEL}", content=body,
                                       headers={"content-type": request.headers["content-type"]})
        received.append(Delivery(parse_qs(body.decode())["logout_token"][0], answer.status_code,
                                 answer.json()))
        return Response(answer.content, answer.status_code, media_type=answer.headers["content-type"])

    with serve_asgi(Starlette(routes=[Route(BACKCHANNEL, tap, methods=["POST"])])) as url:
        yield url + BACKCHANNEL, received


@pytest.fixture(scope="module")
def op(port_a: int, deliveries: tuple[str, list[Delivery]]) -> Iterator[OidcProvider]:
    with run_oidc_provider(redirect_uris=[callback_of(port_a)],
                           post_logout_redirect_uris=[f"http://127.0.0.1:{port_a}/oauth2/signed_out"],
                           backchannel_logout_uri=deliveries[0]) as provider:
        yield provider


@pytest.fixture(scope="module")
def pair(gatekeeper_factory: Callable[..., Gatekeeper], redis_server: RedisServer, op: OidcProvider,
         port_a: int) -> Pair:
    oidc = {"issuer": op.issuer, "client_id": op.client_id, "client_secret": op.client_secret,
            "redirect_url": callback_of(port_a)}
    return Pair(a=gatekeeper_factory(**replica_config(port_a, redis_server, oidc, "gk:")),
                b=gatekeeper_factory(**replica_config(free_port(), redis_server, oidc, "gk:")))


@pytest.fixture(scope="module")
def port_c() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dev_op(port_c: int) -> Iterator[tuple[DevIssuer, DevLogin]]:
    with served_login_issuer([callback_of(port_c)], access_token_ttl_seconds=ACCESS_TOKEN_TTL) as pair:
        yield pair


@pytest.fixture(scope="module")
def refresh_pair(gatekeeper_factory: Callable[..., Gatekeeper], redis_server: RedisServer,
                 dev_op: tuple[DevIssuer, DevLogin], port_c: int) -> Pair:
    issuer, _ = dev_op
    oidc = login_oidc(issuer, port_c, refresh_margin_seconds=0)
    return Pair(a=gatekeeper_factory(**replica_config(port_c, redis_server, oidc, "refresh:")),
                b=gatekeeper_factory(**replica_config(free_port(), redis_server, oidc, "refresh:")))


# ------------------------------------------------------------------ helpers


def browser(gk: Gatekeeper) -> httpx.Client:
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER)


def with_cookie(gk: Gatekeeper, cookie: str, headers: dict[str, str] = BROWSER) -> httpx.Client:
    """A client that sends only the session cookie (no provider cookies): a 302 is a new login."""
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=headers,
                        cookies={COOKIE: cookie})


def log_in(client: httpx.Client, gk: Gatekeeper, user: str = "alice") -> str:
    """The protected page → the provider's form → the callback on ``gk``; the session cookie."""
    started = client.get("/hello")
    assert started.status_code == 302, started.text
    callback = login_with_http_client(client, started.headers["location"], user, f"{user}-password")
    assert callback.startswith(f"{gk.url}/oauth2/callback?"), callback
    back = client.get(callback)
    assert back.status_code == 302 and back.headers["location"] == "/hello", back.text
    value = next((c.value for c in client.cookies.jar if c.name == COOKIE), None)
    assert value, back.headers.get_list("set-cookie")
    return value


def status(gk: Gatekeeper, cookie: str, headers: dict[str, str] = BROWSER, path: str = "/hello") -> int:
    with with_cookie(gk, cookie, headers) as client:
        return client.get(path).status_code


def sends_to_login(gk: Gatekeeper, cookie: str, issuer: str) -> bool:
    with with_cookie(gk, cookie) as client:
        answer = client.get("/hello")
    return answer.status_code == 302 and answer.headers["location"].startswith(issuer)


def ends_cookie(response: httpx.Response) -> bool:
    cookies = response.headers.get_list("set-cookie")
    return any(c.startswith(f"{COOKIE}=") and "Max-Age=0" in c for c in cookies)


def redis_values(server: RedisServer, prefix: str) -> bytes:
    client = server.client()
    try:
        parts: list[bytes] = []
        for key in client.keys(f"{prefix}*"):
            assert isinstance(key, bytes)  # a client without decode_responses
            parts += [key, client.dump(key) or b""]
        return b"".join(parts)
    finally:
        client.close()


# ------------------------------------------------------------------ one session, two replicas


def test_a_login_through_a_is_a_session_on_b_and_the_cookie_is_only_a_ticket(
    pair: Pair, redis_server: RedisServer, upstream: Upstream
) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)
        assert client.get("/hello").status_code == 200
        token_via_a = upstream.recorder.last.header("x-auth-request-access-token")
    assert len(cookie) < 300 and "eyJ" not in cookie
    with with_cookie(pair.b, cookie) as on_b:
        assert on_b.get("/hello?via=b").status_code == 200
    seen = upstream.recorder.last
    # Beside the suite's bearer issuer: the subject names its issuer (issue 11 §1.9).
    assert seen.header("x-auth-request-user") == f"{pair.a.config['oidc']['issuer']}#alice-0001"
    assert seen.header("x-auth-request-email") == "alice@example.test"
    assert token_via_a and seen.header("x-auth-request-access-token") == token_via_a
    assert token_via_a not in cookie
    stored = redis_values(redis_server, "gk:")
    assert b"gk:session:" in stored
    for clear in (token_via_a.encode(), b"alice", b"eyJ"):
        assert clear not in stored


def test_the_session_survives_a_restart_of_b_and_of_redis(
    pair: Pair, redis_server: RedisServer, gatekeeper_factory: Callable[..., Gatekeeper]
) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)
    pair.b.process.stop()
    redis_server.restart()
    pair.b = gatekeeper_factory(**pair.b.config)
    assert status(pair.b, cookie) == 200
    assert status(pair.a, cookie) == 200


def test_sign_out_through_b_ends_the_session_on_a(pair: Pair, op: OidcProvider) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)
    assert status(pair.a, cookie) == 200
    with with_cookie(pair.b, cookie) as on_b:
        out = on_b.get("/oauth2/sign_out")
    assert out.status_code == 302 and out.headers["location"].startswith(op.issuer)
    assert ends_cookie(out)
    assert sends_to_login(pair.b, cookie, op.issuer)  # b ended it: at once there
    # a kept a copy: dropped when b's change arrives over pub/sub.
    assert eventually(lambda: sends_to_login(pair.a, cookie, op.issuer), seconds=CACHE_BOUND)


def test_an_open_websocket_of_a_session_signed_out_on_another_replica_is_closed(
        pair: Pair, op: OidcProvider) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)

    def sign_out_on_a() -> None:
        with with_cookie(pair.a, cookie) as on_a:
            assert on_a.get("/oauth2/sign_out").status_code == 302

    async def session() -> tuple[int | None, str | None]:
        url = "ws://" + pair.b.url.split("://", 1)[1] + "/ws"
        async with ws_connect(url, proxy=None, open_timeout=10,
                              additional_headers={"Cookie": f"{COOKIE}={cookie}"}) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 10) == "hi"
            await asyncio.to_thread(sign_out_on_a)
            with pytest.raises(ConnectionClosed):
                for _ in range(60):  # echoes until B's next check finds the session gone: ≤ 15 s
                    await ws.send("still there?")
                    await asyncio.wait_for(ws.recv(), 10)
                    await asyncio.sleep(0.25)
            return ws.close_code, ws.close_reason

    assert run(session()) == (1008, "session_ended")


# ------------------------------------------------------------------ back-channel logout


def test_a_logout_at_the_provider_ends_the_session_on_both_replicas(
    pair: Pair, op: OidcProvider, deliveries: tuple[str, list[Delivery]]
) -> None:
    _, received = deliveries
    with browser(pair.a) as client, browser(pair.a) as elsewhere:
        cookie = log_in(client, pair.a)
        other = log_in(elsewhere, pair.a, user="bob")
        assert status(pair.b, cookie) == 200 and status(pair.b, other) == 200
        before = len(received)
        # The user signs out at the provider itself (not through gatekeeper): it tells A.
        logout_with_http_client(client, f"{op.issuer}/session/end")
    assert eventually(lambda: len(received) > before), op.process.output()[-2000:]
    delivery = received[-1]
    assert delivery.status == 200 and delivery.body["sessions_ended"] == 1, delivery
    assert forge.decode_payload(delivery.logout_token)["sub"] == "alice-0001"
    assert sends_to_login(pair.a, cookie, op.issuer)  # a received the logout: at once there
    assert eventually(lambda: sends_to_login(pair.b, cookie, op.issuer), seconds=CACHE_BOUND)
    with with_cookie(pair.b, cookie, API) as api:
        assert api.get("/hello").status_code == 401
    assert status(pair.a, other) == 200, "bob's session is another provider session"


def test_a_forged_logout_token_is_refused(pair: Pair, deliveries: tuple[str, list[Delivery]]) -> None:
    _, received = deliveries
    assert received, "needs the logout token of the test before"
    real = received[-1].logout_token
    fresh = {"jti": "forged-" + str(time.time()), "iat": int(time.time())}
    edited = forge.tamper_payload(real, fresh)
    forgeries = {
        "signed by another key": forge.resign(edited, forge.attacker_key(), "RS256"),
        "claims edited": edited,
        "unsigned": forge.unsigned(forge.decode_header(real), {**forge.decode_payload(real), **fresh}),
        "not a JWT": "not-a-token",
    }
    for name, token in forgeries.items():
        for gk in (pair.a, pair.b):
            with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
                answer = client.post(BACKCHANNEL, data={"logout_token": token})
            assert answer.status_code == 400, (name, answer.text)
            assert answer.json()["error"] == "invalid_request"


def test_a_replayed_logout_token_is_refused_on_every_replica(
    pair: Pair, deliveries: tuple[str, list[Delivery]]
) -> None:
    _, received = deliveries
    assert received, "needs the logout token of the test before"
    real = received[-1].logout_token
    for gk in (pair.a, pair.b):
        with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
            answer = client.post(BACKCHANNEL, data={"logout_token": real})
        assert answer.status_code == 400
        assert answer.json()["error_description"] == "logout_token_replayed"


def test_back_channel_logout_takes_only_post(pair: Pair) -> None:
    with httpx.Client(base_url=pair.b.url, trust_env=False, timeout=10) as client:
        for method in ("GET", "PUT"):
            assert client.request(method, BACKCHANNEL).status_code == 405
        assert client.post(BACKCHANNEL, data={}).status_code == 400


LOGOUT_MAX_AGE_MINUTES = 60  # backchannel_logout_max_age_minutes of the gatekeeper below
LEEWAY = 30  # auth.leeway_seconds (the default)


@pytest.fixture(scope="module")
def logout_gk(gatekeeper_factory: Callable[..., Gatekeeper], redis_server: RedisServer,
              dev_op: tuple[DevIssuer, DevLogin], port_c: int) -> Gatekeeper:
    issuer, _ = dev_op
    oidc = login_oidc(issuer, port_c, backchannel_logout_max_age_minutes=LOGOUT_MAX_AGE_MINUTES)
    return gatekeeper_factory(**replica_config(free_port(), redis_server, oidc, "bcl:"))


def logout_token(issuer: DevIssuer, *, issued_ago: float, **claims: Any) -> str:
    """A logout token signed by the provider's own key (§2.4), issued ``issued_ago`` seconds ago
    and good for an hour from now by its exp, so only its iat can make it too old."""
    now = time.time()
    return issuer.mint("nobody", audience="gatekeeper", now=now - issued_ago, ttl_seconds=3600,
                       headers={"typ": "logout+jwt"}, omit=["nbf"],
                       claims={"events": {"http://schemas.openid.net/event/backchannel-logout": {}},
                               "exp": int(now) + 3600, **claims})


def post_logout(gk: Gatekeeper, token: str) -> httpx.Response:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        return client.post(BACKCHANNEL, data={"logout_token": token})


MAX_AGE = LOGOUT_MAX_AGE_MINUTES * 60


@pytest.mark.parametrize(("issued_ago", "accepted"), [
    pytest.param(0, True, id="just issued"),
    pytest.param(MAX_AGE - 60, True, id="a minute inside the bound"),
    pytest.param(MAX_AGE + LEEWAY + 60, False, id="a minute past the bound and the leeway"),
    pytest.param(86400, False, id="a day old"),
    pytest.param(365 * 86400, False, id="a year old"),
])
def test_a_logout_token_older_than_the_bound_is_refused(
    logout_gk: Gatekeeper, dev_op: tuple[DevIssuer, DevLogin], issued_ago: float, accepted: bool
) -> None:
    answer = post_logout(logout_gk, logout_token(dev_op[0], issued_ago=issued_ago))
    if accepted:
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_description"] == "logout_token_stale"


def test_a_logout_token_spelled_with_base64_padding_is_refused(
    logout_gk: Gatekeeper, dev_op: tuple[DevIssuer, DevLogin]
) -> None:
    token = logout_token(dev_op[0], issued_ago=0)
    padded = token + "=" * (-len(token.rsplit(".", 1)[1]) % 4)
    assert padded != token
    answer = post_logout(logout_gk, padded)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_description"] == "logout_token_malformed"
    assert post_logout(logout_gk, token).status_code == 200  # the token itself is good


def test_a_logout_tokens_jti_is_remembered_as_long_as_the_token_could_be_accepted(
    logout_gk: Gatekeeper, dev_op: tuple[DevIssuer, DevLogin], redis_server: RedisServer
) -> None:
    jti = f"jti-{time.time_ns()}"
    token = logout_token(dev_op[0], issued_ago=0, jti=jti)
    iat = forge.decode_payload(token)["iat"]
    assert post_logout(logout_gk, token).status_code == 200
    client = redis_server.client()
    try:
        keys = [k for k in client.keys("bcl:*") if isinstance(k, bytes) and k.endswith(jti.encode())]
        assert len(keys) == 1, keys
        remembered_until = time.time() + client.ttl(keys[0])
    finally:
        client.close()
    # Accepted until iat + max age + leeway: a replay up to then must find the jti.
    assert remembered_until >= iat + MAX_AGE + LEEWAY
    answer = post_logout(logout_gk, token)
    assert answer.status_code == 400 and answer.json()["error_description"] == "logout_token_replayed"


# ------------------------------------------------------------------ refresh once across replicas


def test_parallel_requests_on_two_replicas_after_expiry_refresh_once(
    refresh_pair: Pair, dev_op: tuple[DevIssuer, DevLogin], upstream: Upstream
) -> None:
    _, provider = dev_op
    with browser(refresh_pair.a) as client:
        cookie = log_in(client, refresh_pair.a)
        # Gatekeeper's expiry: int(time of the token answer) + expires_in, at most this.
        due = int(time.time()) + ACCESS_TOKEN_TTL
        assert client.get("/before").status_code == 200
    expired = upstream.recorder.by_path("/before")[-1].header("x-auth-request-access-token")
    refreshes = provider.grant_counts["refresh_token"]
    time.sleep(max(0.0, due - time.time()) + 0.05)
    replicas = [refresh_pair.a, refresh_pair.b] * 10
    path = f"/burst-{time.time_ns()}"

    with concurrent.futures.ThreadPoolExecutor(len(replicas)) as pool:
        statuses = list(pool.map(lambda gk: status(gk, cookie, path=path), replicas))
    assert statuses == [200] * len(replicas)
    assert provider.grant_counts["refresh_token"] - refreshes == 1
    # Every request, on either replica, went on with the one refreshed access token.
    tokens = {r.header("x-auth-request-access-token") for r in upstream.recorder.by_path(path)}
    assert len(tokens) == 1 and expired not in tokens
    # Later, on either replica, with the cookie the browser already has: the refreshed session.
    for gk in (refresh_pair.b, refresh_pair.a):
        assert status(gk, cookie) == 200
    assert provider.grant_counts["refresh_token"] - refreshes == 1


# ------------------------------------------------------------------ a Redis that hangs or dies


def test_a_frozen_redis_answers_session_requests_503_and_keeps_the_cookie(
    pair: Pair, redis_server: RedisServer, issuer: DevIssuer
) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)
    bearer = {"authorization": f"Bearer {issuer.mint('svc', audience=AUDIENCE)}", **API}
    with browser(pair.a) as late:
        started = late.get("/hello")
        callback = login_with_http_client(late, started.headers["location"], "bob", "bob-password")
        redis_server.freeze()
        try:
            # A login that comes back from the provider now cannot be stored: 503, never a 500.
            landed = late.get(callback)
            assert landed.status_code == 503 and "session_store_unavailable" in landed.text
            for gk in (pair.a, pair.b):
                check_degraded(gk, cookie, bearer)
        finally:
            redis_server.thaw()
    for gk in (pair.a, pair.b):
        def served(gk: Gatekeeper = gk) -> bool:
            return status(gk, cookie) == 200

        assert eventually(served)
        with gk.admin() as admin:
            assert admin.get("/readyz").json()["checks"]["sessions"]["detail"] == "redis reachable"


@pytest.mark.parametrize("accept", [BROWSER, API], ids=["a browser", "an API client"])
def test_a_sign_out_while_redis_hangs_is_503_and_nothing_pretends_it_worked(
    pair: Pair, redis_server: RedisServer, op: OidcProvider, accept: dict[str, str]
) -> None:
    with browser(pair.a) as client:
        cookie = log_in(client, pair.a)
    redis_server.freeze()
    try:
        with with_cookie(pair.a, cookie, accept) as page:
            failed = page.get("/oauth2/sign_out", headers={"sec-fetch-site": "same-origin"})
    finally:
        redis_server.thaw()
    # Neither the browser (its cookie kept) nor the provider (no redirect) is told it worked.
    assert failed.status_code == 503 and "location" not in failed.headers
    assert failed.headers["retry-after"] == "5" and not ends_cookie(failed)
    assert "session_store_unavailable" in failed.text
    assert eventually(lambda: status(pair.b, cookie) == 200)  # still signed in, as it said

    with with_cookie(pair.a, cookie) as page:  # once Redis is back the sign-out goes through
        done = page.get("/oauth2/sign_out", headers={"sec-fetch-site": "same-origin"})
    assert done.status_code == 302 and done.headers["location"].startswith(op.issuer)
    assert ends_cookie(done)
    for gk in (pair.a, pair.b):  # a copy of the cookie no longer works anywhere
        def refused(gk: Gatekeeper = gk) -> bool:
            return sends_to_login(gk, cookie, op.issuer)

        assert eventually(refused, CACHE_BOUND)


def check_degraded(gk: Gatekeeper, cookie: str, bearer: dict[str, str]) -> None:
    """Redis hangs: bearer tokens work, session requests answer 503 and keep their cookie."""
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as api:
        assert api.get("/hello", headers=bearer).status_code == 200
    with with_cookie(gk, cookie) as page, with_cookie(gk, cookie, API) as api:
        html, json = page.get("/hello"), api.get("/hello")
    assert html.status_code == 503 and html.headers["content-type"].startswith("text/html")
    assert "session_store_unavailable" in html.text
    assert json.status_code == 503 and json.json()["error"] == "session_store_unavailable"
    assert not ends_cookie(html) and not ends_cookie(json)
    with gk.admin() as admin:
        ready = admin.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["sessions"]["detail"].startswith("degraded")


def test_a_killed_redis_answers_503_and_then_only_saved_sessions_survive(
    pair: Pair, redis_server: RedisServer, op: OidcProvider
) -> None:
    with browser(pair.a) as client:
        saved = log_in(client, pair.a)
    redis_server.client().save()
    with browser(pair.a) as client:
        unsaved = log_in(client, pair.a)  # after the last snapshot
    redis_server.kill()
    try:
        for gk in (pair.a, pair.b):
            with with_cookie(gk, saved) as page:
                down = page.get("/hello")
            assert down.status_code == 503 and not ends_cookie(down)
    finally:
        redis_server.start()
    assert eventually(lambda: status(pair.b, saved) == 200)
    assert status(pair.a, saved) == 200
    # The session written after the snapshot is gone: log in again, never a 500.
    with with_cookie(pair.b, unsaved) as page:
        gone = page.get("/hello")
    assert gone.status_code == 302 and gone.headers["location"].startswith(op.issuer)
    assert ends_cookie(gone)
    with with_cookie(pair.a, unsaved, API) as api:
        assert api.get("/hello").status_code == 401
