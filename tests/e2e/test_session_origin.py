"""Cookie-authenticated requests that change something come from our own pages (CSRF and
cross-site WebSocket hijacking, defence in depth beyond SameSite=Lax: gatekeeper/origin.py).

A real gatekeeper process with browser login (a dev OpenID Provider), a session obtained by a real
login, then raw requests carrying that cookie with every shape of ``Origin``, ``Sec-Fetch-Site``
and ``Referer``; the recording upstream says what got through. Then the same in real Chromium: a
page on another origin of the same site (its forms, fetches and WebSockets carry the cookie under
SameSite=Lax) is refused, our own page is not.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, login_oidc
from tests.support.browser import chromium_page
from tests.support.oidc import login_with_http_client

SESSION_SECRET = "origin-e2e-session-secret-0123456789abcdef"
PARTNER = "https://partner.example:8443"


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], login_issuer: DevIssuer, login_port: int) -> Gatekeeper:
    return gatekeeper_factory(
        listen=f"127.0.0.1:{login_port}",
        oidc=login_oidc(login_issuer, login_port),
        session={"secret": SESSION_SECRET, "cookie_secure": False, "allowed_origins": [PARTNER]},
        trusted_proxies=["127.0.0.1/32"],  # forward-auth answers only trusted peers
    )


@pytest.fixture(scope="module")
def cookies(gk: Gatekeeper) -> dict[str, str]:
    """alice's session cookies, from a real login."""
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10,
                      headers={"accept": "text/html"}) as client:
        first = client.get("/oauth2/start", params={"rd": "/"})
        assert first.status_code == 302, first.text
        callback = login_with_http_client(client, first.headers["location"], "alice", "alice-password")
        assert client.get(callback).status_code == 302
        jar = {c.name: c.value for c in client.cookies.jar
               if c.name.startswith("_gatekeeper") and c.value is not None}
    assert jar
    return jar


def cookie_header(cookies: dict[str, str]) -> tuple[bytes, bytes]:
    return b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()


def reached(upstream: Upstream, marker: str) -> bool:
    return any(r.query_string == f"m={marker}".encode() for r in upstream.recorder.requests)


OWN = "http://127.0.0.1:{port}"
ORIGIN, SITE = "origin", "sec-fetch-site"
# (headers besides the cookie, allowed?) for a POST; "{own}" is gatekeeper's own origin.
POST_CASES: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("own origin", [(ORIGIN, "{own}")], True),
    ("own origin in upper case", [(ORIGIN, "{OWN}")], True),
    ("own origin with sec-fetch-site same-origin", [(ORIGIN, "{own}"), (SITE, "same-origin")], True),
    ("a configured partner origin, cross-site", [(ORIGIN, PARTNER), (SITE, "cross-site")], True),
    ("the partner without its port", [(ORIGIN, "https://partner.example")], False),
    ("another port of the same host", [(ORIGIN, "http://127.0.0.1:1")], False),
    ("another scheme of the same host and port", [(ORIGIN, "ftp://127.0.0.1:{port}")], False),
    ("another host", [(ORIGIN, "https://evil.example")], False),
    ("a sibling subdomain", [(ORIGIN, "http://evil.127.0.0.1.nip.io:{port}")], False),
    ("origin null", [(ORIGIN, "null")], False),
    ("own origin with a trailing slash", [(ORIGIN, "{own}/")], False),
    ("own origin with a path", [(ORIGIN, "{own}/x")], False),
    ("own origin with user info", [(ORIGIN, "http://u@127.0.0.1:{port}")], False),
    ("an empty origin", [(ORIGIN, "")], False),
    ("two origins, own first", [(ORIGIN, "{own}"), (ORIGIN, "https://evil.example")], False),
    ("two origins, both own", [(ORIGIN, "{own}"), (ORIGIN, "{own}")], False),
    ("own origin but sec-fetch-site cross-site", [(ORIGIN, "{own}"), (SITE, "cross-site")], False),
    ("own origin but sec-fetch-site same-site", [(ORIGIN, "{own}"), (SITE, "same-site")], False),
    ("no origin, sec-fetch-site same-origin", [(SITE, "same-origin")], True),
    ("no origin, sec-fetch-site none (typed by the user)", [(SITE, "none")], True),
    ("no origin, sec-fetch-site same-site", [(SITE, "same-site")], False),
    ("no origin, sec-fetch-site cross-site", [(SITE, "cross-site")], False),
    ("no origin, sec-fetch-site CROSS-SITE", [(SITE, "CROSS-SITE")], False),
    ("no origin, an unknown sec-fetch-site", [(SITE, "maybe")], False),
    ("no origin, two sec-fetch-site", [(SITE, "same-origin"), (SITE, "cross-site")], False),
    ("only a referer on our pages", [("referer", "{own}/page?x=1")], True),
    ("only a referer of our origin (Referrer-Policy: origin)", [("referer", "{own}/")], True),
    ("only a referer on another site", [("referer", "https://evil.example/{own}/")], False),
    ("a referer with our host as user info", [("referer", "http://127.0.0.1:{port}@evil.example/")], False),
    ("only a malformed referer", [("referer", "not a url")], False),
    ("none of origin, sec-fetch-site, referer (not a browser)", [], True),
]


def _fill(text: str, port: int) -> str:
    own = OWN.format(port=port)
    return text.replace("{own}", own).replace("{OWN}", own.upper()).replace("{port}", str(port))


@pytest.mark.parametrize(("headers", "allowed"), [(h, a) for _, h, a in POST_CASES],
                         ids=[name for name, _, _ in POST_CASES])
@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH"])
def test_a_session_request_that_changes_something_must_come_from_an_allowed_origin(
    gk: Gatekeeper, upstream: Upstream, cookies: dict[str, str], login_port: int, method: str,
    headers: list[tuple[str, str]], allowed: bool,
) -> None:
    marker = os.urandom(6).hex()
    sent = [cookie_header(cookies), *((k.encode(), _fill(v, login_port).encode()) for k, v in headers)]
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.request(method, f"/change?m={marker}", headers=sent, content=b"x=1")
    assert (response.status_code, reached(upstream, marker)) == ((200, True) if allowed else (403, False))
    if not allowed:
        assert response.json()["error"] in {"origin_not_allowed", "cross_site_request", "origin_ambiguous"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_safe_method_from_another_site_still_passes(
    gk: Gatekeeper, upstream: Upstream, cookies: dict[str, str], method: str,
) -> None:
    marker = os.urandom(6).hex()
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.request(method, f"/read?m={marker}", headers=[
            cookie_header(cookies), (b"origin", b"https://evil.example"), (b"sec-fetch-site", b"cross-site")])
    assert response.status_code == 200 and reached(upstream, marker)


def test_a_bearer_token_request_is_not_affected_by_origin(
    gk: Gatekeeper, upstream: Upstream, issuer: DevIssuer,
) -> None:
    marker = os.urandom(6).hex()
    token = issuer.mint("svc", audience=AUDIENCE)
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        response = client.post(f"/change?m={marker}", headers={
            "authorization": f"Bearer {token}", "origin": "https://evil.example",
            "sec-fetch-site": "cross-site"})
    assert response.status_code == 200 and reached(upstream, marker)


@pytest.fixture(scope="module")
def token_cookie_gk(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """No browser login; the bearer token may come from a cookie: ambient authority too."""
    return gatekeeper_factory(auth={"token_sources": ["header", "cookie:jwt"]})


TOKEN_CASES: list[tuple[str, bool, bool, str, bool]] = [
    # (name, token in the cookie, token in the header, origin, allowed)
    ("a token cookie from another origin", True, False, "https://evil.example", False),
    ("a token cookie from our own origin", True, False, "{own}", True),
    ("the header's token from another origin", False, True, "https://evil.example", True),
    ("the same token in header and cookie, another origin", True, True, "https://evil.example", True),
]


@pytest.mark.parametrize(("in_cookie", "in_header", "origin", "allowed"),
                         [c[1:] for c in TOKEN_CASES], ids=[c[0] for c in TOKEN_CASES])
def test_a_bearer_token_from_a_cookie_is_judged_like_a_session(
    token_cookie_gk: Gatekeeper, upstream: Upstream, issuer: DevIssuer, in_cookie: bool,
    in_header: bool, origin: str, allowed: bool,
) -> None:
    marker = os.urandom(6).hex()
    token = issuer.mint("svc", audience=AUDIENCE)
    port = int(token_cookie_gk.url.rsplit(":", 1)[1])
    headers = {"origin": _fill(origin, port)}
    if in_cookie:
        headers["cookie"] = f"jwt={token}"
    if in_header:
        headers["authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=token_cookie_gk.url, trust_env=False, timeout=10) as client:
        response = client.post(f"/change?m={marker}", headers=headers)
    assert (response.status_code, reached(upstream, marker)) == ((200, True) if allowed else (403, False))


def handshake(port: int, headers: list[tuple[bytes, bytes]], marker: str) -> bytes:
    """A raw WebSocket handshake; the status line of the answer."""
    key = base64.b64encode(os.urandom(16))
    request = (b"GET /ws?m=" + marker.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
               + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               + b"Sec-WebSocket-Key: " + key + b"\r\n"
               + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


WS_CASES: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("own origin", [("origin", "{own}")], True),
    ("a configured partner origin", [("origin", PARTNER)], True),
    ("another port of the same host (same site)", [("origin", "http://127.0.0.1:1")], False),
    ("another host", [("origin", "https://evil.example")], False),
    ("origin null", [("origin", "null")], False),
    ("no origin, sec-fetch-site cross-site", [("sec-fetch-site", "cross-site")], False),
    ("own origin, sec-fetch-site same-site", [("origin", "{own}"), ("sec-fetch-site", "same-site")], False),
]


@pytest.mark.parametrize(("headers", "allowed"), [(h, a) for _, h, a in WS_CASES],
                         ids=[name for name, _, _ in WS_CASES])
def test_a_session_websocket_must_come_from_an_allowed_origin(
    gk: Gatekeeper, upstream: Upstream, cookies: dict[str, str], login_port: int,
    headers: list[tuple[str, str]], allowed: bool,
) -> None:
    marker = os.urandom(6).hex()
    sent = [cookie_header(cookies), *((k.encode(), _fill(v, login_port).encode()) for k, v in headers)]
    status = handshake(login_port, sent, marker)
    expected = b"HTTP/1.1 101 " if allowed else b"HTTP/1.1 403 "
    assert status.startswith(expected), status
    assert reached(upstream, marker) is allowed


FORWARD_CASES: list[tuple[str, str, list[tuple[str, str]], int]] = [
    ("a POST from our own origin", "POST", [(ORIGIN, "{own}")], 202),
    ("a POST from another origin", "POST", [(ORIGIN, "https://evil.example")], 403),
    ("a DELETE, cross-site by fetch metadata", "DELETE", [(SITE, "cross-site")], 403),
    ("a GET from another origin", "GET", [(ORIGIN, "https://evil.example")], 202),
    ("a WebSocket handshake from another origin", "GET",
     [(ORIGIN, "https://evil.example"), ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")], 403),
]


@pytest.mark.parametrize(("method", "headers", "expected"), [(m, h, e) for _, m, h, e in FORWARD_CASES],
                         ids=[name for name, _, _, _ in FORWARD_CASES])
def test_forward_auth_judges_the_original_request_s_origin_the_same_way(
    gk: Gatekeeper, cookies: dict[str, str], login_port: int, method: str,
    headers: list[tuple[str, str]], expected: int,
) -> None:
    # nginx's auth_request passes the client's headers along; the recipe adds X-Original-URI/-Method.
    sent = [cookie_header(cookies), (b"x-original-uri", b"/change"),
            (b"x-original-method", method.encode()),
            *((k.encode(), _fill(v, login_port).encode()) for k, v in headers)]
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        assert client.get("/oauth2/auth", headers=sent).status_code == expected


# -- real Chromium ----------------------------------------------------------------------------

ATTACK = """<!doctype html><title>prize</title><script>
async function attack(gk) {
  const out = {};
  try {
    const r = await fetch(gk + "/change?m=fetch-" + MARK, {method: "POST", credentials: "include",
                                                           mode: "no-cors", body: "x=1"});
    out.fetch = r.type;
  } catch (e) { out.fetch = "error"; }
  out.ws = await new Promise(resolve => {
    const ws = new WebSocket(gk.replace("http", "ws") + "/ws?m=ws-" + MARK);
    ws.onopen = () => { resolve("open"); ws.close(); };
    ws.onerror = () => resolve("error");
  });
  return out;
}
</script>"""


def chromium_session(page: Any, gk: Gatekeeper, cookies: dict[str, str]) -> None:
    page.context.add_cookies([{"name": name, "value": value, "url": gk.url, "httpOnly": True,
                               "sameSite": "Lax"} for name, value in cookies.items()])


def test_chromium_on_another_origin_of_the_same_site_cannot_post_or_open_a_websocket(
    gk: Gatekeeper, upstream: Upstream, cookies: dict[str, str],
) -> None:
    from tests.e2e.test_oidc_browser import another_page

    mark = os.urandom(6).hex()
    # 127.0.0.1 on another port: the same site, so SameSite=Lax lets the cookie go along.
    with another_page(ATTACK.replace("MARK", repr(mark))) as lure, chromium_page() as page:
        chromium_session(page, gk, cookies)
        page.goto(lure)
        result = page.evaluate("gk => attack(gk)", gk.url)
    assert result["ws"] == "error"
    assert not reached(upstream, f"fetch-{mark}") and not reached(upstream, f"ws-{mark}")


def test_chromium_on_our_own_pages_posts_and_opens_a_websocket(
    gk: Gatekeeper, upstream: Upstream, cookies: dict[str, str],
) -> None:
    mark = os.urandom(6).hex()
    with chromium_page() as page:
        chromium_session(page, gk, cookies)
        page.goto(gk.url + "/page")
        page.add_script_tag(content=ATTACK.split("<script>")[1].split("</script>")[0]
                            .replace("MARK", repr(mark)))
        result = page.evaluate("gk => attack(gk)", gk.url)
    assert result == {"fetch": "basic", "ws": "open"}
    assert reached(upstream, f"fetch-{mark}") and reached(upstream, f"ws-{mark}")
