"""Gatekeeper's own cookies never reach the app, however the Cookie header is spelled.

A real gatekeeper process, a browser session from a real login (the dev OpenID Provider), and
hostile Cookie headers sent over a raw socket beside the real session cookie. The app's own
record is read with the parsers of Starlette, Django, aiohttp and ``SimpleCookie``
(tests/support/cookies.py): none may find a cookie of gatekeeper's in it — not even a copy
gatekeeper never read — while gatekeeper still reads the real session (the app gets the user).

Unit level (every layout, and generated ones): tests/unit/test_cookies.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import pytest

from gatekeeper.sessions.cookie import owns
from tests.conftest import Gatekeeper, Upstream, callback_of, login_oidc, served_login_issuer
from tests.e2e.test_proxy import raw_request, request_bytes
from tests.support.cookies import app_cookies
from tests.support.oidc import login_with_http_client
from tests.support.servers import free_port

NAME = "_gatekeeper"  # session.cookie_name's default
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def signed_in(gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[tuple[Gatekeeper, str]]:
    """A gatekeeper with a login, and the Cookie text of one logged-in browser's session."""
    port = free_port()
    with served_login_issuer([callback_of(port)]) as (dev, _):
        gk = gatekeeper_factory(listen=f"127.0.0.1:{port}", oidc=login_oidc(dev, port),
                                session={"secret": secrets.token_urlsafe(32), "cookie_secure": False})
        with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER) as browser:
            started = browser.get("/page")
            assert started.status_code == 302, started.text
            callback = login_with_http_client(browser, started.headers["location"], "alice",
                                              "alice-password")
            assert browser.get(callback).status_code == 302
            session = [(c.name, c.value) for c in browser.cookies.jar if c.name.startswith(NAME)]
        assert session and all(owns(n.encode(), NAME.encode()) for n, _ in session), session
        yield gk, "; ".join(f"{name}={value}" for name, value in session)


@pytest.mark.parametrize("lines", [
    pytest.param(['{real}; theme="x; _gatekeeper=FAKE"'], id="a quoted value hiding ours"),
    pytest.param(["$Version=1; {real}; $Path=/"], id="RFC 2965 $Version and $Path"),
    pytest.param(["{real}; _gatekeeper=FAKE"], id="our name twice"),
    pytest.param(["{real}; app=a=b=="], id="an app value holding '='"),
    pytest.param(["app=1 flag; {real}"], id="a bare word, on which SimpleCookie gives up"),
    pytest.param(["app=1", "{real}", "_gatekeeper_1=FAKE"], id="three Cookie lines"),
    pytest.param(["{real}; \xa0_gatekeeper=FAKE"], id="a no-break space before our name"),
    pytest.param(["{real}; _gatekeeper\x85=FAKE"], id="a NEL after our name"),
    pytest.param(["{real}; app=1 _gatekeeper=FAKE"], id="ours after white space in an app cookie"),
    pytest.param(["{real}; x _gatekeeper_1=FAKE"], id="ours after a bare word"),
    pytest.param(["{real}; app=1\t_gatekeeper_login_abc=FAKE"], id="a login-state cookie after a tab"),
])
def test_no_cookie_of_gatekeepers_reaches_the_app(
    signed_in: tuple[Gatekeeper, str], upstream: Upstream, lines: list[str]
) -> None:
    gk, real = signed_in
    headers = [("Host", "gk.test"), ("Accept", "application/json"),
               *(("Cookie", line.format(real=real)) for line in lines)]
    before = len(upstream.recorder)
    response = raw_request(gk.url, request_bytes("GET", "/echo/cookies-hygiene", headers))
    assert response.status == 200, response.body  # the real session was read
    assert len(upstream.recorder) == before + 1
    seen = upstream.recorder.last
    assert seen.header("x-auth-request-user")  # as the signed-in user
    forwarded = [value for name, value in seen.headers if name.lower() == b"cookie"]
    assert not any(b"FAKE" in line for line in forwarded), forwarded
    leaked = {(reader, name) for reader, name, _ in app_cookies(forwarded)
              if owns(name.encode("latin-1"), NAME.encode())}
    assert not leaked, forwarded
