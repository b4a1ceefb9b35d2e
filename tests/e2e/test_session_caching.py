"""An app's answer that gatekeeper adds a session cookie to is never storable by a shared cache
(RFC 9111 §5.2.2.7, RFC 6265 §8): a CDN or proxy that kept it would hand the session to the next
user. A real gatekeeper refreshes the session on every request here (the access token lives
300 s, the refresh margin is 3600 s), so each proxied answer carries a new Set-Cookie; the app
answers with the caching headers of each case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, login_oidc
from tests.support.oidc import login_with_http_client
from tests.support.servers import serve_asgi

SESSION_SECRET = "caching-e2e-session-secret-0123456789abcdef"


async def cacheable_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with every ``h=name:value`` of the query as a response header."""
    if scope["type"] != "http":
        return
    headers = [tuple(v.encode().split(b":", 1)) for k, v in parse_qsl(scope["query_string"].decode())
               if k == "h"]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": b"the same for everyone?"})


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], login_issuer: DevIssuer,
       login_port: int) -> Iterator[Gatekeeper]:
    with serve_asgi(cacheable_app) as app_url:
        yield gatekeeper_factory(
            listen=f"127.0.0.1:{login_port}", upstream=app_url,
            oidc=login_oidc(login_issuer, login_port, refresh_margin_seconds=3600),
            session={"secret": SESSION_SECRET, "cookie_secure": False},
        )


@pytest.fixture
def client(gk: Gatekeeper) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10,
                      headers={"accept": "text/html"}) as client:
        first = client.get("/oauth2/start", params={"rd": "/"})
        callback = login_with_http_client(client, first.headers["location"], "alice", "alice-password")
        assert client.get(callback).status_code == 302
        yield client


CASES: list[tuple[str, list[str], str]] = [
    ("public with max-age", ["cache-control:public, max-age=600"], "private, max-age=600"),
    ("s-maxage for shared caches", ["cache-control:s-maxage=600, max-age=60"], "private, max-age=60"),
    ("upper-case directives", ["cache-control:PUBLIC, S-MAXAGE=600"], "private"),
    ("no cache-control (heuristic caching)", [], "private"),
    ("only expires", ["expires:Thu, 01 Jan 2099 00:00:00 GMT"], "private"),
    ("a private limited to some fields", ['cache-control:private="set-cookie", max-age=600'],
     "private, max-age=600"),
    ("two cache-control lines", ["cache-control:public", "cache-control:max-age=600"],
     "private, max-age=600"),
    ("no-store is kept as it is", ["cache-control:no-store, max-age=0"], "no-store, max-age=0"),
    ("already private", ["cache-control:private, max-age=5"], "private, max-age=5"),
    ("a CDN-Cache-Control header", ["cache-control:max-age=60", "cdn-cache-control:max-age=600"],
     "private, max-age=60"),
    ("a vendor CDN header", ["cloudflare-cdn-cache-control:max-age=600"], "private"),
    ("a Surrogate-Control header", ["surrogate-control:max-age=600"], "private"),
]


@pytest.mark.parametrize(("headers", "expected"), [(h, e) for _, h, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_an_answer_carrying_a_session_cookie_is_not_storable_by_a_shared_cache(
    client: httpx.Client, headers: list[str], expected: str,
) -> None:
    response = client.get("/page", params=[("h", h) for h in headers])
    assert response.status_code == 200 and response.text == "the same for everyone?"
    assert any(c.startswith("_gatekeeper") for c in response.headers.get_list("set-cookie"))
    assert response.headers.get_list("cache-control") == [expected]
    names = {name.lower() for name in response.headers}
    assert not {n for n in names if n.endswith("cdn-cache-control") or n == "surrogate-control"}
    if "expires" in (h.split(":")[0] for h in headers):
        assert response.headers["expires"]  # kept: "private" already rules out shared caches


def test_an_answer_without_a_cookie_keeps_the_app_s_caching(gk: Gatekeeper, issuer: DevIssuer) -> None:
    token = issuer.mint("svc", audience="api")
    response = httpx.get(gk.url + "/page", params={"h": "cache-control:public, max-age=600"},
                         headers={"authorization": f"Bearer {token}"}, trust_env=False)
    assert response.status_code == 200 and "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "public, max-age=600"
