"""What a newcomer stumbled on at browser login (ISSUE12 §4), each through a real gatekeeper
process and a dev OpenID Provider (gatekeeper/dev/login.py) over HTTP.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, callback_of, login_oidc, served_login_issuer
from tests.support.oidc import cancel_at_provider, login_with_http_client
from tests.support.servers import free_port

SESSION_SECRET = "stumbles-e2e-session-secret-0123456789abcdef"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def browser(gk: Gatekeeper) -> httpx.Client:
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER)


# -- extra authorization parameters (Google's refresh token) ------------------------------------

def test_extra_auth_params_reach_the_provider_beside_the_protocols_own(
    start_gatekeeper: Callable[..., Gatekeeper], login_issuer: DevIssuer, login_port: int
) -> None:
    gk = start_gatekeeper(
        listen=f"127.0.0.1:{login_port}",
        oidc=login_oidc(login_issuer, login_port,
                        extra_auth_params={"prompt": "consent", "access_type": "offline"}),
        session={"secret": SESSION_SECRET, "cookie_secure": False})
    with browser(gk) as client:
        started = client.get("/hello")
    assert started.status_code == 302
    query = query_of(started.headers["location"])
    assert query["prompt"] == ["consent"] and query["access_type"] == ["offline"]
    for own in ("state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri",
                "client_id", "response_type", "scope"):
        assert len(query[own]) == 1, own  # the protocol's own, once each


# -- an issuer written differently from the provider's own -------------------------------------

def test_an_issuer_with_a_trailing_slash_is_named_with_the_fix_in_readyz_the_page_and_the_log(
    start_gatekeeper: Callable[..., Gatekeeper], login_issuer: DevIssuer, login_port: int
) -> None:
    written = login_issuer.issuer + "/"
    gk = start_gatekeeper(
        listen=f"127.0.0.1:{login_port}",
        oidc={**login_oidc(login_issuer, login_port), "issuer": written},
        session={"secret": SESSION_SECRET, "cookie_secure": False})
    fix = f"set oidc.issuer to {login_issuer.issuer!r}"
    with gk.admin() as admin:
        ready = admin.get("/readyz")
    assert ready.status_code == 503
    detail = ready.json()["checks"]["oidc"]["detail"]
    assert repr(written) in detail and fix in detail, detail
    assert "ValueError" not in detail
    with browser(gk) as client:
        page = client.get("/hello")
    assert page.status_code == 502 and page.headers["content-type"].startswith("text/html")
    text = html.unescape(page.text)
    assert repr(written) in text and repr(login_issuer.issuer) in text and fix in text, text
    assert "not reachable" not in text
    [line] = [line for line in gk.process.output().splitlines() if "oidc discovery failed" in line][:1]
    assert repr(written) in line and fix in line, line


# -- sign-out at a provider with RP-initiated logout keeps rd ---------------------------------

@pytest.fixture(scope="module")
def logout_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def logout_gk(gatekeeper_factory: Callable[..., Gatekeeper], logout_port: int) -> Iterator[Gatekeeper]:
    base = f"http://127.0.0.1:{logout_port}"
    with served_login_issuer([callback_of(logout_port)],
                             post_logout_redirect_uris=[f"{base}/oauth2/signed_out"]) as (dev, _):
        yield gatekeeper_factory(listen=f"127.0.0.1:{logout_port}", oidc=login_oidc(dev, logout_port),
                                 session={"secret": SESSION_SECRET, "cookie_secure": False})


def signed_in(client: httpx.Client) -> None:
    started = client.get("/hello")
    callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
    assert client.get(callback).status_code == 302
    assert client.get("/hello").status_code == 200


def through_the_providers_logout(client: httpx.Client, gk: Gatekeeper, sign_out: str) -> httpx.Response:
    """Sign out at gatekeeper, follow the provider's logout back; gatekeeper's answer there."""
    out = client.get(sign_out)
    assert out.status_code == 302 and urlsplit(out.headers["location"]).path == "/logout"
    assert query_of(out.headers["location"])["post_logout_redirect_uri"] == [
        f"{gk.url}/oauth2/signed_out"]  # one fixed URL, registered once
    back = client.get(out.headers["location"])
    assert back.status_code == 302 and back.headers["location"].startswith(f"{gk.url}/oauth2/signed_out")
    return client.get(back.headers["location"])


@pytest.mark.parametrize(("rd", "lands"), [
    ("/somewhere?x=1", "/somewhere?x=1"),
    ("//evil.example/x", "/"),
], ids=["a same-origin rd survives the provider's logout", "a hostile rd is made safe as before"])
def test_sign_out_at_the_provider_goes_on_to_rd(logout_gk: Gatekeeper, rd: str, lands: str) -> None:
    with browser(logout_gk) as client:
        signed_in(client)
        answer = through_the_providers_logout(client, logout_gk,
                                              "/oauth2/sign_out?" + urlencode({"rd": rd}))
        assert answer.status_code == 302 and answer.headers["location"] == lands
        assert client.get("/hello").status_code == 302  # signed out: sent to log in


def test_sign_out_without_rd_ends_on_a_signed_out_page(logout_gk: Gatekeeper) -> None:
    with browser(logout_gk) as client:
        signed_in(client)
        answer = through_the_providers_logout(client, logout_gk, "/oauth2/sign_out")
        assert answer.status_code == 200 and "You are signed out." in answer.text
        assert client.get("/hello").status_code == 302


# -- a login begun on another host name than the redirect_url's --------------------------------

@pytest.fixture(scope="module")
def localhost_gk(gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[Gatekeeper]:
    """Listens on 127.0.0.1, but its redirect_url names localhost (a newcomer's first config)."""
    port = free_port()
    callback = f"http://localhost:{port}/oauth2/callback"
    with served_login_issuer([callback]) as (dev, _):
        yield gatekeeper_factory(listen=f"127.0.0.1:{port}",
                                 oidc={**login_oidc(dev, port), "redirect_url": callback},
                                 session={"secret": SESSION_SECRET, "cookie_secure": False})


def on_localhost(gk: Gatekeeper) -> str:
    return gk.url.replace("127.0.0.1", "localhost")


@pytest.mark.parametrize("begin", ["/hello?x=1", "/oauth2/start?rd=%2Fhello%3Fx%3D1"],
                         ids=["a protected page", "the start route"])
def test_a_login_begun_on_127_0_0_1_moves_to_the_redirect_urls_host_and_completes(
    localhost_gk: Gatekeeper, begin: str
) -> None:
    with browser(localhost_gk) as client:
        moved = client.get(begin)
        assert moved.status_code == 302
        location = moved.headers["location"]
        assert location.startswith(f"{on_localhost(localhost_gk)}/oauth2/start?"), location
        assert query_of(location)["rd"] == ["/hello?x=1"]
        assert not [c for c in moved.headers.get_list("set-cookie") if "_login_" in c]  # none here
        started = client.get(location)  # on localhost now: the login begins there
        assert started.status_code == 302 and "_gatekeeper_login_" in started.headers["set-cookie"]
        callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
        assert callback.startswith(f"{on_localhost(localhost_gk)}/oauth2/callback?")
        back = client.get(callback)
        assert back.status_code == 302 and back.headers["location"] == "/hello?x=1"
        assert client.get(f"{on_localhost(localhost_gk)}/hello").status_code == 200


def test_a_moved_start_is_not_moved_again(localhost_gk: Gatekeeper) -> None:
    """A proxy in front that rewrites Host must not make the move loop: one move, then begin."""
    with browser(localhost_gk) as client:
        started = client.get("/oauth2/start", params={"rd": "/hello", "moved": "1"})
    assert started.status_code == 302 and "_gatekeeper_login_" in started.headers["set-cookie"]


def test_a_callback_without_its_login_says_which_host_the_login_must_use(localhost_gk: Gatekeeper) -> None:
    with browser(localhost_gk) as client:
        answer = client.get(f"{on_localhost(localhost_gk)}/oauth2/callback",
                            params={"state": "s" * 32, "code": "c"})
    assert answer.status_code == 400 and "login_state_unknown" in answer.text
    assert f"open the site at {on_localhost(localhost_gk)}" in html.unescape(answer.text)


# -- a cancelled login offers the page it began on ----------------------------------------------

@pytest.mark.parametrize(("referer", "back"), [
    ("{gk}/public/home?tab=2", "/public/home?tab=2"),
    ("https://elsewhere.example/page", None),
    (None, None),
], ids=["our own page: offered", "another site's page: not offered", "no referer: not offered"])
def test_a_cancelled_login_offers_the_page_it_began_on(logout_gk: Gatekeeper, referer: str | None,
                                                       back: str | None) -> None:
    headers = {} if referer is None else {"referer": referer.format(gk=logout_gk.url)}
    with browser(logout_gk) as client:
        started = client.get("/hello", headers=headers)
        answer = client.get(cancel_at_provider(client, started.headers["location"]))
    assert answer.status_code == 403 and "Sign-in cancelled" in answer.text
    links = {label: html.unescape(href) for href, label in
             re.findall(r'<a class="button" href="([^"]*)">([^<]*)</a>', answer.text)}
    assert links.get("Back to the page you came from") == back
    assert query_of(links["Sign in again"])["rd"] == ["/hello"]
