"""Browser login end to end: a real gatekeeper process, a real OpenID Provider (panva's certified
oidc-provider under node) and an HTTP client that keeps cookies the way a browser does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import Gatekeeper, Upstream
from tests.support.fakes import run
from tests.support.oidc import OidcProvider, login_with_http_client, run_oidc_provider
from tests.support.servers import free_port

SESSION_SECRET = "e2e-session-secret-0123456789abcdef-xyz"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ACCESS_TOKEN_TTL = 3  # seconds: short, so refresh happens during the module


@pytest.fixture(scope="module")
def listen_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(listen_port: int) -> Iterator[OidcProvider]:
    base = f"http://127.0.0.1:{listen_port}"
    with run_oidc_provider(redirect_uris=[f"{base}/oauth2/callback"],
                           post_logout_redirect_uris=[f"{base}/oauth2/signed_out"],
                           access_token_ttl=ACCESS_TOKEN_TTL) as provider:
        yield provider


def oidc_config(op: OidcProvider, listen_port: int, **extra: object) -> dict[str, object]:
    return {
        "listen": f"127.0.0.1:{listen_port}",
        "oidc": {"issuer": op.issuer, "client_id": op.client_id, "client_secret": op.client_secret,
                 "redirect_url": f"http://127.0.0.1:{listen_port}/oauth2/callback",
                 "refresh_margin_seconds": 1, **extra},
        "session": {"secret": SESSION_SECRET, "cookie_secure": False},
    }


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], op: OidcProvider, listen_port: int) -> Gatekeeper:
    return gatekeeper_factory(**oidc_config(op, listen_port))


def browser(gk: Gatekeeper) -> httpx.Client:
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER)


def log_in(client: httpx.Client, gk: Gatekeeper, path: str = "/hello?x=1", user: str = "alice",
           password: str | None = None) -> httpx.Response:
    """Protected page → provider → login form → callback; returns the callback's answer."""
    first = client.get(path)
    assert first.status_code == 302, first.text
    callback = login_with_http_client(client, first.headers["location"], user,
                                      password or f"{user}-password")
    assert callback.startswith(f"{gk.url}/oauth2/callback?"), callback
    return client.get(callback)


def test_a_browser_is_sent_to_the_provider_with_pkce_state_and_nonce(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    with browser(gk) as client:
        response = client.get("/hello")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == op.issuer
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["client_id"] == op.client_id
    assert query["redirect_uri"] == f"{gk.url}/oauth2/callback"
    assert query["state"] and query["nonce"] and query["state"] != query["nonce"]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"_gatekeeper_login_{query['state']}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/;" in cookie


def test_login_returns_to_the_original_page_and_the_app_sees_the_identity(
    gk: Gatekeeper, upstream: Upstream, op: OidcProvider
) -> None:
    with browser(gk) as client:
        back = log_in(client, gk, "/hello?x=1")
        assert back.status_code == 302 and back.headers["location"] == "/hello?x=1"
        session_cookies = [c for c in back.headers.get_list("set-cookie") if c.startswith("_gatekeeper=")]
        assert session_cookies and "HttpOnly" in session_cookies[0]
        client.cookies.set("app_cookie", "kept")
        page = client.get("/hello?x=1")
    assert page.status_code == 200
    seen = upstream.recorder.last
    # The login issuer is one of two configured here: the subject names it (issue 11 §1.9).
    assert seen.header("x-auth-request-user") == f"{op.issuer}#alice-0001"
    assert seen.header("x-auth-request-issuer") == op.issuer
    assert seen.header("x-auth-request-email") == "alice@example.test"
    assert seen.header("x-auth-request-groups") == "admin,user"
    cookie_header = seen.header("cookie") or ""
    assert "_gatekeeper" not in cookie_header and "app_cookie=kept" in cookie_header


def test_api_calls_without_credentials_get_401_not_a_redirect(gk: Gatekeeper) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False) as client:
        for headers in ({"accept": "application/json"}, {**BROWSER, "x-requested-with": "XMLHttpRequest"},
                        {**BROWSER, "sec-fetch-mode": "cors"}):
            response = client.get("/hello", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.post("/hello", headers=BROWSER).status_code == 401


def test_userinfo_returns_the_session_identity(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        log_in(client, gk, user="bob")
        info = client.get("/oauth2/userinfo")
    assert info.status_code == 200
    body = info.json()
    assert body["sub"] == "bob-0002" and body["email"] == "bob@example.test"
    assert body["roles"] == ["user"] and body["via"] == "session"


def test_userinfo_without_a_session_is_401(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        assert client.get("/oauth2/userinfo").status_code == 401


def test_sign_out_ends_the_session_and_continues_at_the_provider(gk: Gatekeeper, op: OidcProvider) -> None:
    with browser(gk) as client:
        log_in(client, gk)
        assert client.get("/hello").status_code == 200
        out = client.get("/oauth2/sign_out?rd=/goodbye")
        assert out.status_code == 302
        location = urlsplit(out.headers["location"])
        assert out.headers["location"].startswith(op.issuer)
        query = {k: v[0] for k, v in parse_qs(location.query).items()}
        assert query["post_logout_redirect_uri"] == f"{gk.url}/oauth2/signed_out"
        assert query["state"] == "/goodbye"  # rd, back at signed_out after the provider
        assert query["id_token_hint"].count(".") == 2
        expired = [c for c in out.headers.get_list("set-cookie") if c.startswith("_gatekeeper=")]
        assert expired and "Max-Age=0" in expired[0]
        assert client.get("/hello").status_code == 302  # logged out: back to the provider


def test_a_callback_whose_state_was_not_started_here_is_refused(gk: Gatekeeper) -> None:
    with browser(gk) as attacker, browser(gk) as victim:
        started = attacker.get("/hello")
        callback = login_with_http_client(attacker, started.headers["location"], "alice", "alice-password")
        # The victim's browser opens the attacker's callback URL (login CSRF): no state cookie.
        response = victim.get(callback)
    assert response.status_code == 400
    assert "login_state_unknown" in response.text
    assert "set-cookie" not in response.headers or "_gatekeeper=" not in response.headers["set-cookie"]


def test_a_replayed_code_is_refused(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        started = client.get("/hello")
        login_cookie = started.headers["set-cookie"].split(";", 1)[0]
        callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
        assert client.get(callback).status_code == 302
    with httpx.Client(base_url=gk.url, trust_env=False, headers=BROWSER) as replay:
        name, value = login_cookie.split("=", 1)
        replay.cookies.set(name, value)
        response = replay.get(callback)
    assert response.status_code == 400
    assert "token_invalid_grant" in response.text


def test_logins_started_in_several_tabs_all_complete(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        tabs = [client.get(path) for path in ("/hello?tab=1", "/hello?tab=2", "/hello?tab=3")]
        callbacks = [login_with_http_client(client, tab.headers["location"], "alice", "alice-password")
                     for tab in tabs]
        landed = [client.get(callback) for callback in reversed(callbacks)]
    assert [r.headers.get("location") for r in landed] == ["/hello?tab=3", "/hello?tab=2", "/hello?tab=1"]


def test_the_session_outlives_the_access_token_by_refreshing_it(
    gk: Gatekeeper, upstream: Upstream, op: OidcProvider
) -> None:
    with browser(gk) as client:
        log_in(client, gk)
        first = client.get("/oauth2/userinfo").json()["expires_at"]
        time.sleep(ACCESS_TOKEN_TTL + 0.5)
        page = client.get("/hello")
        assert page.status_code == 200
        assert any(c.startswith("_gatekeeper=") for c in page.headers.get_list("set-cookie"))
        second = client.get("/oauth2/userinfo").json()["expires_at"]
    assert second > first
    assert upstream.recorder.last.header("x-auth-request-user") == f"{op.issuer}#alice-0001"


def test_parallel_requests_after_expiry_refresh_once(gk: Gatekeeper) -> None:
    """The provider rotates refresh tokens and revokes the grant on reuse: had two requests
    refreshed with the same token, the later requests would be logged out."""
    with browser(gk) as client:
        log_in(client, gk)
        time.sleep(ACCESS_TOKEN_TTL + 0.5)
        jar = {c.name: c.value for c in client.cookies.jar
               if c.name.startswith("_gatekeeper") and c.value is not None}

        def fetch(_: int) -> int:
            with httpx.Client(base_url=gk.url, trust_env=False, headers=BROWSER, cookies=jar) as c:
                return c.get("/hello").status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(fetch, range(16)))
        assert statuses == [200] * 16
        # The old cookie once more, after the refresh finished: still the refreshed session.
        assert fetch(0) == 200
        time.sleep(ACCESS_TOKEN_TTL + 0.5)
        for _ in range(2):  # and the refreshed session refreshes again with the new token
            assert client.get("/hello").status_code == 200


def test_a_websocket_handshake_that_refreshes_the_session_hands_the_browser_its_new_cookie(
    gk: Gatekeeper,
) -> None:
    with browser(gk) as client:
        log_in(client, gk)
        time.sleep(ACCESS_TOKEN_TTL + 0.5)  # the access token is due for a refresh
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar
                           if c.name.startswith("_gatekeeper"))

    async def handshake() -> list[str]:
        url = "ws://" + gk.url.split("://", 1)[1] + "/ws"
        async with ws_connect(url, proxy=None, open_timeout=10,
                              additional_headers={"Cookie": cookie}) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 10) == "hi"
            assert ws.response is not None
            return ws.response.headers.get_all("set-cookie")

    cookies = run(handshake())
    # Without it the browser would keep the old session, whose refresh token is now spent.
    assert any(c.startswith("_gatekeeper=") and "Max-Age=0" not in c for c in cookies), cookies
