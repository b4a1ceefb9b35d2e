"""The browser login in a real headless Chromium: gatekeeper as a process, panva's oidc-provider
under node, and the recording upstream, whose JSON echo is the page the user lands on.

What a person sees: the protected page sends them to the provider's form; they sign in and are back
on the page they asked for, which shows who they are; signing out passes the provider's confirmation
and ends on the public landing page; the next visit asks them to sign in again. A sign-out link
on another site only leads to a page that asks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.conftest import Gatekeeper
from tests.support.browser import chromium_page
from tests.support.oidc import OidcProvider, OidcUser, run_oidc_provider
from tests.support.servers import free_port, serve_asgi

SESSION_SECRET = "browser-e2e-session-secret-0123456789abcdef"
MODEL = Path(__file__).resolve().parents[2] / "policies" / "model.conf"
# "/" is the public landing page: the provider sends the browser there after signing out.
POLICY = """\
p, role:anonymous, /, GET|HEAD, allow
p, role:authenticated, /hello, GET|HEAD, allow
p, role:authenticated, /docs/*, GET|HEAD, allow
p, role:admin, /admin/*, GET|HEAD, allow
"""
PAGE = "/hello?from=browser"
# Encoded path and query characters, and a query that names other places: all must survive.
ENCODED_PAGE = "/docs/caf%C3%A9%20cr%C3%A8me?q=caf%C3%A9+%26+more&next=%2Fadmin%2F&u=//evil.example"


@pytest.fixture(scope="module")
def listen_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(listen_port: int) -> Iterator[OidcProvider]:
    base = f"http://127.0.0.1:{listen_port}"
    with run_oidc_provider(redirect_uris=[f"{base}/oauth2/callback"],
                           post_logout_redirect_uris=[f"{base}/oauth2/signed_out"]) as provider:
        yield provider


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], op: OidcProvider, listen_port: int,
       tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    policy = tmp_path_factory.mktemp("policy") / "policy.csv"
    policy.write_text(POLICY)
    return gatekeeper_factory(
        listen=f"127.0.0.1:{listen_port}",
        public_paths=["/"],
        oidc={"issuer": op.issuer, "client_id": op.client_id, "client_secret": op.client_secret,
              "redirect_url": f"http://127.0.0.1:{listen_port}/oauth2/callback"},
        session={"secret": SESSION_SECRET, "cookie_secure": False},
        policy={"model": str(MODEL), "policy": str(policy), "watch": False},
    )


def at_provider_form(page: Page, op: OidcProvider) -> bool:
    return page.url.startswith(op.issuer + "/interaction/") and page.text_content("h1") == "Sign in"


def submit_login_form(page: Page, op: OidcProvider, user: OidcUser) -> None:
    """Fill in the provider's form, and allow access when the consent form follows."""
    assert at_provider_form(page, op), page.url
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", user.password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if page.url.startswith(op.issuer) and page.text_content("h1") == "Allow access":
        with page.expect_navigation():
            page.click("button[type=submit]")


def sign_in(page: Page, gk: Gatekeeper, op: OidcProvider, user: OidcUser, path: str = PAGE) -> None:
    page.goto(gk.url + path)
    submit_login_form(page, op, user)


def echo(page: Page) -> dict[str, Any]:
    """The upstream's JSON description of the request, as Chromium shows it."""
    shown: dict[str, Any] = json.loads(page.inner_text("pre"))
    return shown


def header(shown: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in shown["headers"] if key.lower() == name.lower()]


@contextlib.contextmanager
def another_page(html: str) -> Iterator[str]:
    """``html`` served from another port of 127.0.0.1 (the same site, another origin); yields
    its URL."""
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    with serve_asgi(Starlette(routes=[Route("/", page)])) as url:
        yield url + "/"


def gatekeeper_cookies(page: Page, gk: Gatekeeper) -> list[dict[str, Any]]:
    return [dict(c) for c in page.context.cookies(gk.url) if c["name"].startswith("_gatekeeper")]


def test_chromium_signs_in_and_lands_on_the_page_it_asked_for_showing_who_it_is(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    alice = op.users["alice"]
    with chromium_page() as page:
        sign_in(page, gk, op, alice)
        assert page.url == gk.url + PAGE
        shown = echo(page)
        assert shown["path"] == "/hello" and shown["query"] == "from=browser"
        assert header(shown, "x-auth-request-user") == [f"{op.issuer}#{alice.sub}"]
        assert header(shown, "x-auth-request-email") == [alice.email]
        assert header(shown, "x-auth-request-groups") == ["admin,user"]

        cookies = gatekeeper_cookies(page, gk)
        assert cookies and not [c for c in cookies if c["name"].startswith("_gatekeeper_login_")]
        for cookie in cookies:
            assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax", cookie
        # Scripts on the page see the app's own cookies, never the session.
        page.evaluate("document.cookie = 'app_cookie=visible; path=/'")
        visible = page.evaluate("document.cookie")
        assert "app_cookie=visible" in visible and "_gatekeeper" not in visible
        page.reload()
        sent_to_app = "; ".join(header(echo(page), "cookie"))
        assert "app_cookie=visible" in sent_to_app and "_gatekeeper" not in sent_to_app

        response = page.goto(gk.url + "/admin/panel")
        assert response is not None and response.status == 200
        assert header(echo(page), "x-auth-request-user") == [f"{op.issuer}#{alice.sub}"]

        page.goto(gk.url + "/oauth2/userinfo")
        info = json.loads(page.inner_text("pre"))
    assert info["sub"] == alice.sub and info["email"] == alice.email
    assert info["roles"] == list(alice.roles) and info["via"] == "session"


def test_signing_out_confirms_at_the_provider_and_the_next_visit_asks_to_sign_in(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    with chromium_page() as page:
        sign_in(page, gk, op, op.users["alice"])
        assert page.url == gk.url + PAGE

        page.goto(gk.url + "/oauth2/sign_out?rd=/")
        assert page.url.startswith(op.issuer + "/session/end"), page.url
        assert page.text_content("h1") == "Sign out"
        with page.expect_navigation():
            page.click("button[type=submit]")
        # Back through the registered post_logout_redirect_uri (/oauth2/signed_out) to rd.
        assert page.url == gk.url + "/"
        assert header(echo(page), "x-auth-request-user") == []  # the public page, signed out
        assert gatekeeper_cookies(page, gk) == []

        page.goto(gk.url + PAGE)
        assert at_provider_form(page, op), page.url  # the provider's session ended too


def test_bob_in_a_fresh_browser_returns_to_an_encoded_url_and_is_denied_the_admin_pages(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    bob = op.users["bob"]
    with chromium_page() as page:
        sign_in(page, gk, op, bob, ENCODED_PAGE)
        assert page.url == gk.url + ENCODED_PAGE
        shown = echo(page)
        assert shown["raw_path"] == ENCODED_PAGE.split("?")[0]
        assert shown["query"] == ENCODED_PAGE.split("?")[1]
        assert header(shown, "x-auth-request-user") == [f"{op.issuer}#{bob.sub}"]
        assert header(shown, "x-auth-request-email") == [bob.email]

        response = page.goto(gk.url + "/admin/panel")
        assert response is not None and response.status == 403
        assert response.headers["content-type"].startswith("text/html")
        assert page.title() == "Access denied"
        assert "not allowed to open this page" in (page.text_content("main") or "")


def test_cancelling_at_the_provider_shows_sign_in_cancelled_with_a_way_back(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    with chromium_page() as page:
        page.goto(gk.url + PAGE)
        assert at_provider_form(page, op), page.url
        with page.expect_navigation():
            page.click("text=Cancel")
        assert page.url.startswith(gk.url + "/oauth2/callback?error=access_denied"), page.url
        assert page.title() == "Sign-in cancelled"
        assert "Reason: access_denied" in (page.text_content("main") or "")
        assert gatekeeper_cookies(page, gk) == []

        with page.expect_navigation():
            page.click("text=Sign in again")
        assert at_provider_form(page, op), page.url


def test_signing_in_again_after_cancelling_returns_to_the_page_first_asked_for(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    with chromium_page() as page:
        page.goto(gk.url + PAGE)
        with page.expect_navigation():
            page.click("text=Cancel")
        with page.expect_navigation():
            page.click("text=Sign in again")
        submit_login_form(page, op, op.users["alice"])
        assert page.url == gk.url + PAGE  # lands on gk.url + "/" today


def test_a_link_on_another_site_cannot_sign_the_user_out_without_asking(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    lure = f'<a id="prize" href="{gk.url}/oauth2/sign_out">Claim your prize</a>'
    # localhost and 127.0.0.1 are different sites to the browser: the link is cross-site.
    with another_page(lure) as lure_url, chromium_page() as page:
        sign_in(page, gk, op, op.users["alice"])
        assert page.url == gk.url + PAGE
        page.goto(lure_url.replace("127.0.0.1", "localhost"))
        with page.expect_navigation():
            page.click("#prize")
        assert page.text_content("h1") == "Sign out?"  # asked, not signed out
        assert gatekeeper_cookies(page, gk)
        with page.expect_navigation():
            page.click("a.button:text-is('Stay signed in')")
        page.goto(gk.url + PAGE)
        assert header(echo(page), "x-auth-request-user") == [f"{op.issuer}#{op.users['alice'].sub}"]

        page.goto(lure_url.replace("127.0.0.1", "localhost"))
        with page.expect_navigation():
            page.click("#prize")
        with page.expect_navigation():
            page.click("a.button:text-is('Sign out')")  # the user's choice, on our page: same-origin
        assert page.url.startswith(op.issuer + "/session/end"), page.url
        assert page.text_content("h1") == "Sign out"  # the provider's own confirmation


def test_a_protected_page_in_a_frame_asks_the_top_window_to_sign_in(
    gk: Gatekeeper, op: OidcProvider
) -> None:
    # 127.0.0.1 on another port: the same site (cookies go along), another origin.
    holder = f'<h1>Dashboard</h1><iframe src="{gk.url}{PAGE}"></iframe>'
    with another_page(holder) as holder_url, chromium_page() as page:
        page.goto(holder_url)
        frame = page.frame_locator("iframe")
        assert frame.locator("h1").inner_text() == "Sign-in required"
        assert not [c for c in gatekeeper_cookies(page, gk) if c["name"].startswith("_gatekeeper_login_")]
        with page.expect_navigation():
            frame.locator("a.button").click()  # target=_top: the whole window goes to sign in
        submit_login_form(page, op, op.users["alice"])
        assert page.url == gk.url + PAGE  # another origin held the frame: back to the framed page
        page.goto(holder_url)
        shown = json.loads(frame.locator("pre").inner_text())
        assert header(shown, "x-auth-request-user") == [f"{op.issuer}#{op.users['alice'].sub}"]
