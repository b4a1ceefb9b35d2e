"""Browser login, in process: who is sent to the provider and who gets a 401, a whole login
through the dev OpenID Provider (on 127.0.0.1) into a session, and the session's identity at
the app. The provider is real; gatekeeper runs in this process behind httpx's ASGI transport,
whose cookie jar plays the browser's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream, served_login_issuer
from tests.support.asgi import HOST, InProcess, request, serve
from tests.support.oidc import login_with_http_client
from tests.unit.app.conftest import MakeSettings

CALLBACK = f"http://{HOST.decode()}/oauth2/callback"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
           "sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}
API = {"accept": "application/json"}


@pytest.fixture(scope="module")
def provider() -> Iterator[DevIssuer]:
    with served_login_issuer([CALLBACK]) as (dev, _login):
        yield dev


@pytest.fixture(scope="module")
def login_settings(make_settings: MakeSettings, provider: DevIssuer) -> Settings:
    return make_settings(
        oidc={"issuer": provider.issuer, "client_id": "gatekeeper",
              "client_secret": "dev-client-secret", "redirect_url": CALLBACK},
        session={"secret": "unit-app-session-secret-0123456789abcdef", "cookie_secure": False})


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def test_a_navigation_without_a_session_is_sent_to_the_provider_with_pkce(
    login_settings: Settings, provider: DevIssuer, upstream: Upstream,
) -> None:
    answer = request(login_settings, "GET", "/hello?x=1", headers=BROWSER.items())
    assert answer.status == 302
    location = answer.header("location") or ""
    assert location.startswith(f"{provider.issuer}/authorize?")
    query = query_of(location)
    assert (query["response_type"], query["client_id"], query["redirect_uri"]) == (
        "code", "gatekeeper", CALLBACK)
    assert query["code_challenge_method"] == "S256" and query["state"] and query["nonce"]
    cookies = answer.header_values("set-cookie")
    assert cookies and all("HttpOnly" in c for c in cookies)
    assert len(upstream.recorder) == 0


def test_an_api_call_without_a_session_is_401_not_a_redirect(login_settings: Settings) -> None:
    answer = request(login_settings, "GET", "/hello", headers=API.items())
    assert answer.status == 401
    assert answer.header("www-authenticate") == 'Bearer realm="gatekeeper"'
    assert answer.header("location") is None and answer.header_values("set-cookie") == []


def test_a_frame_gets_a_sign_in_button_for_the_top_window_and_no_login_cookie(
    login_settings: Settings,
) -> None:
    frame = {**BROWSER, "sec-fetch-dest": "iframe"}
    answer = request(login_settings, "GET", "/hello?x=1", headers=frame.items())
    assert answer.status == 401
    assert answer.header_values("set-cookie") == []
    assert re.search(r'<a class="button" href="[^"]*" target="_top">Sign in</a>', answer.text)


def test_a_callback_whose_state_was_not_started_here_makes_no_session(
    login_settings: Settings, upstream: Upstream,
) -> None:
    answer = request(login_settings, "GET", "/oauth2/callback?code=c&state=made-up-state",
                     headers=BROWSER.items())
    assert 400 <= answer.status < 500
    assert not any(c.startswith("_gatekeeper=") for c in answer.header_values("set-cookie"))
    assert len(upstream.recorder) == 0


async def _log_in(gk: InProcess, start: str) -> httpx.Response:
    """start (a path at gatekeeper) → the provider's forms (real HTTP) → the callback."""
    first = await gk.client.get(start, headers=BROWSER)
    assert first.status_code == 302, first.text

    def at_provider() -> str:
        with httpx.Client(trust_env=False, timeout=10) as browser:
            return login_with_http_client(browser, first.headers["location"], "alice",
                                          "alice-password")

    callback = await asyncio.to_thread(at_provider)
    assert callback.startswith(CALLBACK + "?"), callback
    return await gk.client.get(callback, headers=BROWSER)


def test_a_login_returns_to_its_page_and_the_app_sees_the_session_identity_not_its_cookie(
    login_settings: Settings, provider: DevIssuer, upstream: Upstream,
) -> None:
    async def scenario(gk: InProcess) -> tuple[httpx.Response, httpx.Response]:
        back = await _log_in(gk, "/hello?x=1")
        gk.client.cookies.set("theme", "dark", domain=HOST.decode())  # one of the app's own
        spoofed = {**BROWSER, "x-auth-request-user": "mallory"}
        return back, await gk.client.get("/hello?x=1", headers=spoofed)

    back, page = serve(login_settings, scenario)
    assert back.status_code == 302 and back.headers["location"] == "/hello?x=1"
    assert any(c.startswith("_gatekeeper=") for c in back.headers.get_list("set-cookie"))
    assert page.status_code == 200, page.text
    seen = upstream.recorder.last
    # Two issuers (the bearer one and the provider): the subject is named by its issuer (§1.9).
    assert seen.header_values("x-auth-request-user") == [f"{provider.issuer}#alice"]
    assert seen.header_values("cookie") == ["theme=dark"]  # the session is ours: not the app's


@pytest.mark.parametrize(("site", "asks"), [("cross-site", True), ("same-origin", False)],
                         ids=["a link from another site asks first", "our own page signs out"])
def test_sign_out(login_settings: Settings, site: str, asks: bool) -> None:
    async def scenario(gk: InProcess) -> tuple[httpx.Response, int]:
        await _log_in(gk, "/hello")
        out = await gk.client.get("/oauth2/sign_out", headers={**BROWSER, "sec-fetch-site": site})
        after = await gk.client.get("/hello", headers=BROWSER)
        return out, after.status_code

    out, after = serve(login_settings, scenario)
    ends = [c for c in out.headers.get_list("set-cookie") if c.startswith("_gatekeeper=")]
    if asks:
        assert out.status_code == 200 and "Sign out?" in out.text
        assert out.headers["x-frame-options"] == "DENY"
        assert not ends and after == 200  # still signed in
    else:
        assert out.status_code == 302 and ends
        assert after == 302  # signed out: a navigation is sent to log in again
