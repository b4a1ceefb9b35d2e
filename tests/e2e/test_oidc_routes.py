"""The browser-login routes end to end: a real gatekeeper process, two dev OpenID Providers
(gatekeeper/dev/login.py) and an httpx client that keeps cookies the way a browser does.

Covered: choosing among several providers (chooser page, ``provider=``, ``hosts``), hostile
``rd`` values on the way in (``/start``) and out (``/sign_out``), the allow-list, the error pages
of the callback, which cookies reach the app, and the ``browser_login`` modes.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from gatekeeper.login.state import PendingLogin
from gatekeeper.sessions.crypto import SessionCipher
from tests.conftest import Gatekeeper, Upstream, callback_of, served_login_issuer
from tests.support.oidc import cancel_at_provider, login_with_http_client
from tests.support.servers import free_port

SESSION_SECRET = "routes-e2e-session-secret-0123456789abcdef"
OTHER_SECRET = "routes-e2e-other-gatekeeper-secret-0123456789"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"accept": "application/json"}
CORP_SECRET = "corp-client-secret-" + secrets.token_hex(8)
PARTNER_SECRET = "partner-client-secret-" + secrets.token_hex(8)
GATEKEEPERS = ("main", "allow", "never", "always")  # one listen port each, registered up front


@dataclasses.dataclass
class Op:
    """One dev OpenID Provider as gatekeeper is configured for it."""

    id: str
    issuer: DevIssuer
    login: DevLogin
    client_id: str
    client_secret: str

    @property
    def url(self) -> str:
        return self.issuer.issuer

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "issuer": self.url, "client_id": self.client_id,
                "client_secret": self.client_secret, **extra}


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in GATEKEEPERS}


@pytest.fixture(scope="module")
def corp(ports: dict[str, int]) -> Iterator[Op]:
    with served_login_issuer([callback_of(p) for p in ports.values()], client_id="gk-corp",
                             client_secret=CORP_SECRET) as (dev, login):
        yield Op("corp", dev, login, "gk-corp", CORP_SECRET)


@pytest.fixture(scope="module")
def partner(ports: dict[str, int]) -> Iterator[Op]:
    with served_login_issuer([callback_of(p) for p in ports.values()], client_id="gk-partner",
                             client_secret=PARTNER_SECRET) as (dev, login):
        yield Op("partner", dev, login, "gk-partner", PARTNER_SECRET)


def login_config(port: int, providers: list[dict[str, Any]], secret: str = SESSION_SECRET,
                 **oidc: Any) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "oidc": {"providers": providers, "redirect_url": callback_of(port), **oidc},
        "session": {"secret": secret, "cookie_secure": False},
    }


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], ports: dict[str, int], corp: Op,
       partner: Op) -> Gatekeeper:
    """Two providers: the chooser, ``provider=`` and ``hosts`` decide."""
    return gatekeeper_factory(**login_config(ports["main"], [
        corp.config(display_name="Corp", hosts=["corp.localtest"]),
        partner.config(display_name="Partner", hosts=["partner.localtest"]),
    ]))


@pytest.fixture(scope="module")
def allow_gk(gatekeeper_factory: Callable[..., Gatekeeper], ports: dict[str, int], corp: Op) -> Gatekeeper:
    """One provider, and ``rd`` may also name hosts under .good.example."""
    return gatekeeper_factory(**login_config(ports["allow"], [corp.config()], secret=OTHER_SECRET,
                                             allowed_redirect_domains=[".good.example"]))


def browser(gk: Gatekeeper, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers={**BROWSER, **headers})


def log_in(client: httpx.Client, gk: Gatekeeper, start: str, user: str = "alice",
           **params: str) -> httpx.Response:
    """``start`` (a path) → provider (its form, or a silent login from its session cookie) →
    callback; returns the callback's answer."""
    first = client.get(start, params=params or None)
    assert first.status_code == 302, first.text
    callback = login_with_http_client(client, first.headers["location"], user, f"{user}-password")
    assert callback.startswith(f"{gk.url}/oauth2/callback?"), callback
    return client.get(callback)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def set_cookies(response: httpx.Response, name: str) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


# -- several providers ---------------------------------------------------------------------------

def test_a_navigation_with_several_providers_goes_to_the_chooser(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        response = client.get("/hello")
    assert response.status_code == 302
    assert response.headers["location"] == "/oauth2/start?rd=%2Fhello"
    assert not any(c.startswith("_gatekeeper_login_") for c in response.headers.get_list("set-cookie"))


def test_the_chooser_lists_every_provider(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        page = client.get("/oauth2/start?rd=%2Fhello")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', page.text)]
    assert hrefs == ["/oauth2/start?provider=corp&rd=%2Fhello", "/oauth2/start?provider=partner&rd=%2Fhello"]
    assert ">Corp<" in page.text and ">Partner<" in page.text
    assert "set-cookie" not in page.headers


@pytest.mark.parametrize("query", ["provider=unknown&rd=/x", "provider=&rd=/x", "provider=CORP&rd=/x"],
                         ids=["an unknown provider", "an empty provider", "provider ids are exact"])
def test_a_provider_that_is_not_configured_gets_the_chooser(gk: Gatekeeper, query: str) -> None:
    with browser(gk) as client:
        page = client.get(f"/oauth2/start?{query}")
    assert page.status_code == 200
    assert "provider=corp" in page.text and "provider=partner" in page.text


def test_provider_names_the_provider_to_log_in_with(gk: Gatekeeper, partner: Op) -> None:
    with browser(gk) as client:
        response = client.get("/oauth2/start?provider=partner&rd=/x")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{partner.url}/authorize?")
    query = query_of(location)
    assert query["client_id"] == "gk-partner" and query["redirect_uri"] == f"{gk.url}/oauth2/callback"
    [login_cookie] = set_cookies(response, f"_gatekeeper_login_{query['state']}")
    assert "Path=/;" in login_cookie and "HttpOnly" in login_cookie


@pytest.mark.parametrize(("host", "path", "provider"), [
    ("corp.localtest", "/hello", "corp"),
    ("partner.localtest", "/hello", "partner"),
    ("CORP.LocalTest", "/hello", "corp"),
    ("corp.localtest:8443", "/hello", "corp"),
    ("partner.localtest", "/oauth2/start?rd=/x", "partner"),
], ids=["a navigation on corp's host", "a navigation on partner's host", "the host in any case",
        "the host with a port", "the start route on partner's host"])
def test_a_host_of_a_provider_goes_straight_to_it(gk: Gatekeeper, corp: Op, partner: Op, host: str,
                                                  path: str, provider: str) -> None:
    expected = {"corp": corp, "partner": partner}[provider]
    with browser(gk, host=host) as client:
        response = to_the_login_host(gk, client.get(path))
    assert response.status_code == 302
    assert response.headers["location"].startswith(f"{expected.url}/authorize?")
    assert query_of(response.headers["location"])["client_id"] == expected.client_id


def test_an_explicit_provider_wins_over_the_host(gk: Gatekeeper, partner: Op) -> None:
    with browser(gk, host="corp.localtest") as client:
        response = to_the_login_host(gk, client.get("/oauth2/start?provider=partner&rd=/x"))
    assert response.headers["location"].startswith(f"{partner.url}/authorize?")


def to_the_login_host(gk: Gatekeeper, response: httpx.Response) -> httpx.Response:
    """These hosts are not the redirect_url's (127.0.0.1), where the login cookie must be set: the
    login moves there first, naming the provider the host chose; that start's answer."""
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{gk.url}/oauth2/start?") and query_of(location)["moved"] == "1"
    with browser(gk) as client:
        return client.get(location)


@pytest.mark.parametrize(("provider", "user", "sub"), [("corp", "alice", "alice"), ("partner", "bob", "bob")])
def test_a_full_login_through_each_provider(gk: Gatekeeper, upstream: Upstream, corp: Op, partner: Op,
                                           provider: str, user: str, sub: str) -> None:
    op = {"corp": corp, "partner": partner}[provider]
    with browser(gk) as client:
        back = log_in(client, gk, "/oauth2/start", user, provider=provider, rd="/hello?from=login")
        assert back.status_code == 302 and back.headers["location"] == "/hello?from=login"
        assert set_cookies(back, "_gatekeeper")
        info = client.get("/oauth2/userinfo")
        page = client.get("/hello?from=login")
    assert info.status_code == 200
    body = info.json()
    assert body["issuer"] == op.url and body["sub"] == sub and body["via"] == "session"
    assert body["subject"] == f"{op.url}#{sub}"  # two providers: one identity per issuer
    assert page.status_code == 200
    assert upstream.recorder.last.header("x-auth-request-user") == f"{op.url}#{sub}"


def test_a_code_from_another_provider_is_refused(gk: Gatekeeper, corp: Op, partner: Op) -> None:
    """RFC 9207 mix-up: a login started with corp, answered by partner with the same state."""
    with browser(gk) as client:
        started = client.get("/oauth2/start?provider=corp&rd=/x")
        corp_request = query_of(started.headers["location"])
        at_partner = httpx.URL(f"{partner.url}/authorize", params={
            **corp_request, "client_id": partner.client_id})
        callback = login_with_http_client(client, str(at_partner), "alice", "alice-password")
        assert query_of(callback)["iss"] == partner.url
        response = client.get(callback)
    assert response.status_code == 400
    assert "login_issuer_mismatch" in response.text
    assert not set_cookies(response, "_gatekeeper")


# -- hostile rd values ---------------------------------------------------------------------------

HOSTILE = [
    ("//evil.example", "protocol-relative"),
    ("/\\evil.example", "slash backslash"),
    ("\\\\evil.example", "two backslashes"),
    ("\\/evil.example", "backslash slash"),
    ("/\\/evil.example", "slash backslash slash"),
    ("https:evil.example", "scheme without slashes"),
    ("https:/\\evil.example", "scheme slash backslash"),
    ("https://evil.example", "an absolute URL"),
    ("HTTPS://EVIL.EXAMPLE/", "an absolute URL in capitals"),
    ("http://evil.example", "an absolute http URL"),
    ("%2F%2Fevil.example", "encoded protocol-relative"),
    ("/%2F/evil.example", "slash encoded slash"),
    ("/%2F%2Fevil.example", "slash two encoded slashes"),
    ("/%252F%252Fevil.example", "double-encoded slashes"),
    ("/%5Cevil.example", "slash encoded backslash"),
    ("javascript:alert(1)", "javascript"),
    ("JaVaScRiPt:alert(1)", "javascript in mixed case"),
    ("data:text/html,<script>alert(1)</script>", "data URL"),
    ("/\tevil.example", "slash tab"),
    ("/\t/evil.example", "slash tab slash"),
    ("/\n/evil.example", "slash newline slash"),
    ("/\r\n/evil.example", "slash CRLF slash"),
    ("/ok\r\nSet-Cookie: _gatekeeper=planted", "a CRLF header injection"),
    ("/ok%0d%0aSet-Cookie:%20_gatekeeper=planted", "an encoded CRLF header injection"),
    ("//evil.example@good", "protocol-relative with userinfo"),
    ("https://good.example@evil.example", "userinfo naming a good host"),
    ("/\uff0fevil.example", "slash fullwidth slash"),
    ("/\u2044evil.example", "slash fraction slash"),
    ("/\u2215evil.example", "slash division slash"),
    ("///evil.example", "three slashes"),
    ("/.//evil.example", "dot segment then two slashes"),
    ("/a/..//evil.example", "dot-dot then two slashes"),
    (" //evil.example", "leading space"),
    ("http://evil.example%2F@good", "encoded slash before userinfo"),
    ("%09//evil.example", "encoded tab then protocol-relative"),
    ("/%09/evil.example", "slash encoded tab slash"),
    ("//evil.example/%2e%2e", "protocol-relative with encoded dots"),
    (".evil.example", "a leading dot"),
    ("evil.example", "a bare host"),
    ("evil.example/path", "a bare host with a path"),
    ("https://evilgood.example/x", "a suffix without a dot boundary (CVE-2021-21291)"),
    ("https://good.example.evil.example/", "the good name as a prefix"),
    ("https://app.good.example.evil.example/", "a good subdomain as a prefix"),
    ("https://app.good.example%2F@evil.example", "an encoded slash in a good authority"),
    ("https://app.good.example\\@evil.example", "a backslash in a good authority"),
    ("https://app.good.example:443@evil.example", "a good host and port as userinfo"),
    ("https://evil.example#.good.example", "the good name in the fragment"),
    ("https://evil.example?.good.example", "the good name in the query"),
    ("http://app.good.example/x", "a good host over http"),
]
HOSTILE_VALUES = [value for value, _ in HOSTILE]
HOSTILE_IDS = [name for _, name in HOSTILE]


def assert_same_origin(location: str, gk: Gatekeeper, *, evil_in_query: bool = False) -> None:
    """``location`` keeps a browser (and a server that decodes it again) on gatekeeper's origin."""
    origin = urlsplit(gk.url).netloc
    assert location.startswith("/") and location[1:2] not in ("/", "\\"), location
    assert all(0x21 <= ord(char) <= 0x7E for char in location), location  # nothing a browser strips
    assert urlsplit(urljoin(gk.url + "/", location)).netloc == origin
    # The WHATWG parser drops tabs and newlines and reads "\" as "/" before resolving.
    as_browser = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    assert urlsplit(urljoin(gk.url + "/", as_browser)).netloc == origin
    assert "evil" not in (urlsplit(location).path if evil_in_query else location).lower()


@pytest.fixture(scope="module")
def main_browser(gk: Gatekeeper) -> Iterator[httpx.Client]:
    """Logged in at corp once: later logins are silent (the devissuer_session cookie)."""
    with browser(gk) as client:
        yield client


@pytest.fixture(scope="module")
def allow_browser(allow_gk: Gatekeeper) -> Iterator[httpx.Client]:
    with browser(allow_gk) as client:
        yield client


@pytest.mark.parametrize("rd", HOSTILE_VALUES, ids=HOSTILE_IDS)
def test_a_hostile_rd_at_login_lands_on_our_own_origin(gk: Gatekeeper, main_browser: httpx.Client,
                                                       rd: str) -> None:
    back = log_in(main_browser, gk, "/oauth2/start", provider="corp", rd=rd)
    assert back.status_code == 302
    assert_same_origin(back.headers["location"], gk)
    assert len(set_cookies(back, "_gatekeeper")) == 1  # the login itself worked


@pytest.mark.parametrize("rd", HOSTILE_VALUES, ids=HOSTILE_IDS)
def test_a_hostile_rd_at_login_with_an_allow_list_lands_on_our_own_origin(
    allow_gk: Gatekeeper, allow_browser: httpx.Client, rd: str
) -> None:
    back = log_in(allow_browser, allow_gk, "/oauth2/start", rd=rd)
    assert back.status_code == 302
    assert_same_origin(back.headers["location"], allow_gk)


@pytest.mark.parametrize("rd", HOSTILE_VALUES, ids=HOSTILE_IDS)
@pytest.mark.parametrize("which", ["main", "allow"], ids=["no allow-list", "allow-list .good.example"])
def test_a_hostile_rd_at_sign_out_lands_on_our_own_origin(gk: Gatekeeper, allow_gk: Gatekeeper,
                                                          which: str, rd: str) -> None:
    target = {"main": gk, "allow": allow_gk}[which]
    with browser(target) as client:  # no session: sign_out answers with rd itself
        out = client.get("/oauth2/sign_out", params={"rd": rd})
    assert out.status_code == 302
    assert_same_origin(out.headers["location"], target)
    assert set_cookies(out, "_gatekeeper") and "Max-Age=0" in set_cookies(out, "_gatekeeper")[0]


@pytest.mark.parametrize("raw", [
    "rd=%C0%AF%C0%AFevil.example", "rd=%2F%FF%2Fevil.example", "rd=/a&rd=//evil.example",
], ids=["overlong UTF-8 slashes", "invalid UTF-8 between slashes", "a repeated rd"])
@pytest.mark.parametrize("route", ["sign_out", "start"])
def test_a_malformed_rd_query_never_redirects_off_site(gk: Gatekeeper, route: str, raw: str) -> None:
    with browser(gk) as client:
        response = client.get(f"/oauth2/{route}?provider=corp&{raw}")
    if response.status_code == 302:
        location = response.headers["location"]
        assert location.startswith(("/", f"{gk.url}", "http://127.0.0.1:")), location
        assert "evil" not in location
    else:
        assert response.status_code == 400 and "login_bad_request" in response.text


def raw_get(gk: Gatekeeper, target: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]]]:
    """GET with ``target`` sent exactly as given (httpx would normalise it); status and headers."""
    parts = urlsplit(gk.url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = [tuple(line.split(": ", 1)) for line in head[1:]]
    return int(head[0].split()[1]), [(name.lower(), value) for name, value in fields]


HOSTILE_TARGETS = [
    ("//evil.example", "protocol-relative"),
    ("//evil.example/hello", "protocol-relative with a path"),
    ("///evil.example", "three slashes"),
    ("/%2F/evil.example", "an encoded slash"),
    ("/%5Cevil.example", "an encoded backslash"),
    ("/.//evil.example", "a dot segment then two slashes"),
    ("/hello/..//evil.example", "dot-dot then two slashes"),
    ("/%09/evil.example", "an encoded tab"),
    ("/%2e%2e//evil.example", "encoded dot-dot"),
    ("/hello?next=//evil.example", "a hostile value in the query"),
    ("http://evil.example/hello", "an absolute-form target"),
]


@pytest.mark.parametrize("target", [t for t, _ in HOSTILE_TARGETS], ids=[n for _, n in HOSTILE_TARGETS])
def test_the_page_a_login_starts_from_becomes_a_same_origin_return_address(
    allow_gk: Gatekeeper, allow_browser: httpx.Client, corp: Op, target: str
) -> None:
    """The return address of a login begun by a navigation (bitly oauth2_proxy CVE-2017-1000070)."""
    status, headers = raw_get(allow_gk, target, BROWSER)
    if status != 302:
        assert status == 400  # refused as a request target: no login, no redirect
        return
    location = dict(headers)["location"]
    assert location.startswith(f"{corp.url}/authorize?")
    [login_cookie] = [v.split(";", 1)[0] for n, v in headers
                      if n == "set-cookie" and v.startswith("_gatekeeper_login_")]
    callback = login_with_http_client(allow_browser, location, "alice", "alice-password")
    with httpx.Client(trust_env=False, timeout=10) as client:
        back = client.get(callback, headers={**BROWSER, "cookie": login_cookie})
    assert back.status_code == 302
    assert_same_origin(back.headers["location"], allow_gk, evil_in_query="?" in target)


@pytest.mark.parametrize(("rd", "expected"), [
    ("https://app.good.example/x", "https://app.good.example/x"),
    ("https://good.example/", "https://good.example/"),
    ("https://APP.Good.Example/x?y=1#z", "https://app.good.example/x?y=1#z"),
    ("/local/page?q=1", "/local/page?q=1"),
], ids=["a subdomain", "the domain itself", "canonical host, path kept", "a same-origin path"])
def test_the_allow_list_admits_its_domain_after_login_and_sign_out(
    allow_gk: Gatekeeper, allow_browser: httpx.Client, rd: str, expected: str
) -> None:
    back = log_in(allow_browser, allow_gk, "/oauth2/start", rd=rd)
    assert back.status_code == 302 and back.headers["location"] == expected
    with browser(allow_gk) as client:
        out = client.get("/oauth2/sign_out", params={"rd": rd})
    assert out.status_code == 302 and out.headers["location"] == expected


def test_without_an_allow_list_an_absolute_url_falls_back(gk: Gatekeeper) -> None:
    with browser(gk) as client:
        out = client.get("/oauth2/sign_out", params={"rd": "https://app.good.example/x"})
    assert out.headers["location"] == "/"


# -- callback pages ------------------------------------------------------------------------------

@pytest.mark.parametrize("accept", ["html", "json"])
def test_a_cancelled_login_gets_a_page_and_no_session(allow_gk: Gatekeeper, accept: str) -> None:
    with browser(allow_gk) as client:  # a fresh browser: the provider shows its form
        started = client.get("/hello")
        state = query_of(started.headers["location"])["state"]
        callback = cancel_at_provider(client, started.headers["location"])
        assert query_of(callback)["error"] == "access_denied" and query_of(callback)["state"] == state
        response = client.get(callback, headers=API if accept == "json" else BROWSER)
        assert response.status_code == 403
        if accept == "html":
            assert response.headers["content-type"].startswith("text/html")
            assert "Sign-in cancelled" in response.text
            [again] = re.findall(r'<a class="button" href="([^"]*)">Sign in again</a>', response.text)
            again = html.unescape(again)
            assert urlsplit(again).path == "/oauth2/start"
            assert query_of(again).get("rd", "/hello") == "/hello"  # back where the login began
        else:
            assert response.json()["error"] == "access_denied"
        assert not set_cookies(response, "_gatekeeper")
        [used] = set_cookies(response, f"_gatekeeper_login_{state}")
        assert "Max-Age=0" in used and "Path=/;" in used
        assert not any(c.name == "_gatekeeper" for c in client.cookies.jar)
        assert client.get("/oauth2/userinfo").status_code == 401


def test_a_provider_error_with_a_valid_state_is_shown(allow_gk: Gatekeeper, corp: Op) -> None:
    with browser(allow_gk) as client:
        started = client.get("/hello")
        state = query_of(started.headers["location"])["state"]
        response = client.get("/oauth2/callback", params={
            "error": "server_error", "error_description": "<script>x</script>", "state": state,
            "iss": corp.url})
    assert response.status_code == 400
    assert "Sign-in failed" in response.text and "provider_server_error" in response.text
    assert "<script>x" not in response.text


def test_a_successful_login_deletes_its_login_cookie(allow_gk: Gatekeeper) -> None:
    with browser(allow_gk) as client:
        started = client.get("/hello")
        state = query_of(started.headers["location"])["state"]
        callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
        back = client.get(callback)
    assert back.status_code == 302
    [used] = set_cookies(back, f"_gatekeeper_login_{state}")
    assert "Max-Age=0" in used and "Path=/;" in used, used


def test_a_login_state_is_good_for_one_answer(allow_gk: Gatekeeper) -> None:
    with browser(allow_gk) as client:
        started = client.get("/hello")
        callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
        assert client.get(callback).status_code == 302
        again = client.get(callback)  # the browser's reload or back button
    assert again.status_code == 400 and "login_state_unknown" in again.text


def test_a_failed_login_deletes_its_login_cookie(allow_gk: Gatekeeper, corp: Op) -> None:
    with browser(allow_gk) as client:
        started = client.get("/hello")
        state = query_of(started.headers["location"])["state"]
        failed = client.get("/oauth2/callback", params={"error": "access_denied", "state": state,
                                                         "iss": corp.url})
        again = client.get("/oauth2/callback", params={"code": "c", "state": state, "iss": corp.url})
    [used] = set_cookies(failed, f"_gatekeeper_login_{state}")
    assert "Max-Age=0" in used and "Path=/;" in used
    assert again.status_code == 400 and "login_state_unknown" in again.text


def sealed_login(state: str, *, expires_at: int, secret: str = OTHER_SECRET) -> str:
    login = PendingLogin(state=state, nonce=secrets.token_urlsafe(24),
                         code_verifier=secrets.token_urlsafe(48), provider="corp", return_to="/x",
                         expires_at=expires_at)
    name = f"_gatekeeper_login_{state}"
    sealed = SessionCipher([secret], purpose="login").seal(json.dumps(asdict(login)).encode(), name=name)
    return f"{name}={sealed}"


@pytest.mark.parametrize(("query", "cookie", "status", "code"), [
    ("code=c", None, 400, "login_state_missing"),
    ("state=&code=c", None, 400, "login_state_missing"),
    ("state=a;b&code=c", None, 400, "login_state_missing"),
    ("state={s}&state={s}&code=c", "valid", 400, "login_bad_request"),
    ("state={s}&code=c&code=d", "valid", 400, "login_bad_request"),
    ("state={s}&code=c", None, 400, "login_state_unknown"),
    ("state={s}&code=c", "expired", 400, "login_expired"),
    ("state={s}&code=c", "other secret", 400, "login_state_invalid"),
    ("state={s}&iss={iss}", "valid", 400, "login_code_missing"),
    ("state={s}&code=c&iss=http://evil.example", "valid", 400, "login_issuer_mismatch"),
    ("state={s}&code=c", "valid", 400, "login_issuer_mismatch"),
    ("state={s}&code=not-a-code&iss={iss}", "valid", 400, "token_invalid_grant"),
], ids=["no state", "an empty state", "a state with cookie syntax", "a repeated state", "a repeated code",
        "a state this browser never started", "an expired login state",
        "a login cookie sealed with another secret", "no code", "another issuer named",
        "no issuer although the provider sends one (RFC 9207)", "a code the provider never issued"])
@pytest.mark.parametrize("accept", ["html", "json"])
def test_callback_problems_get_an_error_naming_the_check(
    allow_gk: Gatekeeper, corp: Op, query: str, cookie: str | None, status: int, code: str, accept: str
) -> None:
    state = secrets.token_urlsafe(24)
    now = int(time.time())
    headers = dict(BROWSER if accept == "html" else API)
    if cookie is not None:
        headers["cookie"] = sealed_login(
            state, expires_at=now - 10 if cookie == "expired" else now + 300,
            secret=SESSION_SECRET if cookie == "other secret" else OTHER_SECRET)
    with httpx.Client(base_url=allow_gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/oauth2/callback?" + query.format(s=state, iss=corp.url), headers=headers)
    assert response.status_code == status
    assert not set_cookies(response, "_gatekeeper")
    if accept == "html":
        assert response.headers["content-type"].startswith("text/html")
        assert f"Reason: {code}" in response.text and "Sign-in failed" in response.text
    else:
        assert response.json()["error"] == code


# -- cookies -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def session_cookie(gk: Gatekeeper) -> str:
    """``_gatekeeper=…`` of a session at gk (alice, via corp)."""
    with browser(gk) as client:
        back = log_in(client, gk, "/oauth2/start", provider="corp", rd="/")
        [cookie] = set_cookies(back, "_gatekeeper")
    return cookie.split(";", 1)[0]


APP_COOKIES = ['app=1', 'json={"a":[1,2]}', 'spaced="a b"', "_gatekeeper_x=app", "_Gatekeeper=app",
               "_gatekeeperx=app", "_gatekeeper_1a=app", "pct=a%3Bb", "empty="]


@pytest.mark.parametrize("layout", ["ours first", "ours last", "ours in between", "two cookie headers"])
def test_only_the_apps_cookies_reach_the_app_byte_for_byte(
    gk: Gatekeeper, upstream: Upstream, session_cookie: str, layout: str, corp: Op
) -> None:
    ours = [session_cookie, "_gatekeeper_1=junk", "_gatekeeper_2=junk",
            f"_gatekeeper_login_{secrets.token_urlsafe(24)}=sealed"]
    if layout == "ours first":
        headers = [("cookie", "; ".join(ours + APP_COOKIES))]
    elif layout == "ours last":
        headers = [("cookie", "; ".join(APP_COOKIES + ours))]
    elif layout == "ours in between":
        headers = [("cookie", "; ".join([APP_COOKIES[0], ours[0], *APP_COOKIES[1:5], *ours[1:],
                                         *APP_COOKIES[5:]]))]
    else:
        headers = [("cookie", "; ".join(ours[:2] + APP_COOKIES[:3])), ("cookie", "; ".join(ours[2:])),
                   ("cookie", "; ".join(APP_COOKIES[3:]))]
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/echo", headers=[("accept", "application/json"), *headers])
    assert response.status_code == 200
    seen = upstream.recorder.last
    assert seen.header("x-auth-request-user") == f"{corp.url}#alice"  # one of several issuers
    if layout == "two cookie headers":
        assert seen.header_values("cookie") == ["; ".join(APP_COOKIES[:3]), "; ".join(APP_COOKIES[3:])]
    else:
        assert seen.header_values("cookie") == ["; ".join(APP_COOKIES)]


def test_a_request_with_only_our_cookies_reaches_the_app_without_a_cookie_header(
    gk: Gatekeeper, upstream: Upstream, session_cookie: str
) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/echo", headers={"cookie": f"{session_cookie}; _gatekeeper_1=x"})
    assert response.status_code == 200
    assert upstream.recorder.last.header_values("cookie") == []


def test_the_apps_set_cookie_reaches_the_browser(gk: Gatekeeper, session_cookie: str) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/cookies", headers={"cookie": session_cookie})
    assert response.status_code == 200
    app = [c for c in response.headers.get_list("set-cookie") if not c.startswith("_gatekeeper")]
    assert app == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]


def tampered(cookie: str) -> str:
    name, value = cookie.split("=", 1)
    middle = len(value) // 2
    return f"{name}={value[:middle]}{'A' if value[middle] != 'A' else 'B'}{value[middle + 1:]}"


BAD_SESSIONS: list[tuple[Callable[[str], str], str]] = [
    (tampered, "a tampered session cookie"),
    (lambda real: "_gatekeeper=1." + secrets.token_urlsafe(200), "a forged session cookie"),
    (lambda real: "_gatekeeper=garbage", "a malformed session cookie"),
    (lambda real: "_gatekeeper=99999999." + "A" * 40, "a huge chunk count"),
    (lambda real: "_gatekeeper=2." + real.split(".", 1)[1], "a chunk count naming a missing chunk"),
]


@pytest.mark.parametrize("make", [m for m, _ in BAD_SESSIONS], ids=[n for _, n in BAD_SESSIONS])
def test_a_bad_session_cookie_sends_a_browser_to_log_in_and_ends_the_cookie(
    gk: Gatekeeper, upstream: Upstream, session_cookie: str, make: Callable[[str], str]
) -> None:
    cookie = make(session_cookie)
    before = len(upstream.recorder)
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        page = client.get("/hello", headers={**BROWSER, "cookie": cookie})
        api = client.get("/hello", headers={**API, "cookie": cookie})
    assert page.status_code == 302 and page.headers["location"] == "/oauth2/start?rd=%2Fhello"
    assert api.status_code == 401 and api.json()["error"] != "invalid_token"
    for response in (page, api):
        [ended] = set_cookies(response, "_gatekeeper")
        assert ended.startswith("_gatekeeper=;") and "Max-Age=0" in ended
    assert len(upstream.recorder) == before


def test_the_untampered_cookie_still_works(gk: Gatekeeper, session_cookie: str) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        assert client.get("/hello", headers={**API, "cookie": session_cookie}).status_code == 200


# -- browser_login modes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def never_gk(gatekeeper_factory: Callable[..., Gatekeeper], ports: dict[str, int], corp: Op) -> Gatekeeper:
    return gatekeeper_factory(**login_config(ports["never"], [corp.config()], browser_login="never"))


@pytest.fixture(scope="module")
def always_gk(gatekeeper_factory: Callable[..., Gatekeeper], ports: dict[str, int], corp: Op) -> Gatekeeper:
    return gatekeeper_factory(**login_config(ports["always"], [corp.config()], browser_login="always"))


def test_browser_login_never_answers_401_even_to_a_navigation(never_gk: Gatekeeper) -> None:
    with browser(never_gk) as client:
        response = client.get("/hello", headers={"sec-fetch-mode": "navigate"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        # The routes still work: a login can be started explicitly.
        assert client.get("/oauth2/start?rd=/hello").status_code == 302


@pytest.mark.parametrize("headers", [API, {"accept": "*/*", "x-requested-with": "XMLHttpRequest"}],
                         ids=["Accept: application/json", "an XHR"])
def test_browser_login_always_redirects_even_an_api_call(always_gk: Gatekeeper, corp: Op,
                                                         headers: dict[str, str]) -> None:
    with httpx.Client(base_url=always_gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/hello", headers=headers)
        assert response.status_code == 302
        assert response.headers["location"].startswith(f"{corp.url}/authorize?")
        assert client.post("/hello", headers=headers).status_code == 302


def test_browser_login_always_still_answers_a_bad_bearer_token_with_401(always_gk: Gatekeeper) -> None:
    with httpx.Client(base_url=always_gk.url, trust_env=False, timeout=10) as client:
        response = client.get("/hello", headers={**BROWSER, "authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# -- sign-out sent by another site asks first (logout CSRF) ------------------------------------


@pytest.mark.parametrize(("site", "referer", "asks"), [
    ("cross-site", None, True), ("same-site", None, True),  # another site's link, form, redirect
    ("same-origin", None, False), ("none", None, False),    # our own page's link; a typed address
    ("same-origin", "https://evil.example/", False),        # Fetch Metadata wins over Referer
    (None, "https://evil.example/page", True),              # no Fetch Metadata: Referer decides
    (None, "{gk}/account", False),
    (None, None, False),                                    # not a browser
])
def test_a_sign_out_sent_by_another_site_asks_first(gk: Gatekeeper, site: str | None, referer: str | None,
                                                    asks: bool) -> None:
    with browser(gk) as client:
        assert log_in(client, gk, "/oauth2/start", provider="corp").status_code == 302
        assert client.get("/hello").status_code == 200
        headers = {} if site is None else {"sec-fetch-site": site}
        if referer is not None:
            headers["referer"] = referer.format(gk=gk.url)
        out = client.get("/oauth2/sign_out", params={"rd": "//evil.example/x"}, headers=headers)
        if not asks:
            assert out.status_code == 302 and set_cookies(out, "_gatekeeper")
            assert client.get("/hello").status_code == 302  # signed out: sent to log in
            return
        assert out.status_code == 200 and "Sign out?" in out.text
        assert not set_cookies(out, "_gatekeeper")
        assert out.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in out.headers["content-security-policy"]
        links = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', out.text)]
        assert links == ["/oauth2/sign_out?rd=%2F", "/"]  # same-origin button; the rd made safe
        assert client.get("/hello").status_code == 200  # still signed in
        confirmed = client.get(links[0], headers={"sec-fetch-site": "same-origin"})
        assert confirmed.status_code == 302 and set_cookies(confirmed, "_gatekeeper")
        assert client.get("/hello").status_code == 302


# -- a protected page inside a frame is not sent to the provider ---------------------------------


FRAME = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "iframe"}


@pytest.mark.parametrize(("referer", "rd"), [
    ("{gk}/dashboard?tab=2", "/dashboard?tab=2"),  # the page holding the frame: back there
    ("https://elsewhere.example/page", "/hello?x=1"),  # another origin's: the frame's own page
    (None, "/hello?x=1"),
], ids=["our page holds the frame", "another origin holds it", "no referer"])
def test_a_frame_gets_a_sign_in_button_for_the_top_window_not_a_login(
        gk: Gatekeeper, referer: str | None, rd: str) -> None:
    headers = dict(FRAME) | ({"referer": referer.format(gk=gk.url)} if referer else {})
    with browser(gk, **headers) as client:
        answer = client.get("/hello?x=1")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == 'Bearer realm="gatekeeper"'
    assert not answer.headers.get_list("set-cookie"), "no login started, no login cookie left"
    [button] = re.findall(r'<a class="button" href="([^"]*)" target="_top">Sign in</a>', answer.text)
    assert query_of(html.unescape(button)) == {"rd": rd}
    with browser(gk) as client:  # the same page, as the top window: a login as usual
        assert client.get("/hello?x=1").status_code == 302
