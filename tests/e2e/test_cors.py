"""CORS per route through a real gatekeeper process and the recording upstream: preflights are
answered by gatekeeper and never reach the app, real requests are authenticated and authorized
as ever and carry the rule's headers, never the app's. Then real Chromium: a page on another
loopback origin calls the API with credentials (a token cookie, so the session origin check is
on): the allowed origin reads the answers and writes, another origin is blocked by the browser,
and its writes never reach the app.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.browser import chromium_page
from tests.support.poll import eventually
from tests.support.servers import serve_asgi

PAGE = """<!doctype html><title>spa</title><script>
async function call(gk, mark) {
  const out = {};
  const attempt = async (name, url, init) => {
    try {
      const r = await fetch(url, {credentials: "include", ...init});
      out[name] = {status: r.status, user: JSON.stringify((await r.json()).headers || []),
                   requestId: r.headers.get("x-request-id")};
    } catch (e) { out[name] = "blocked"; }
  };
  await attempt("get", gk + "/api/read?m=get-" + mark, {});
  await attempt("put", gk + "/api/write?m=put-" + mark,
                {method: "PUT", headers: {"content-type": "application/json"}, body: "{}"});
  await attempt("post", gk + "/api/form?m=post-" + mark,
                {method: "POST", headers: {"content-type": "text/plain"}, body: "x=1"});
  return out;
}
</script>"""


@pytest.fixture(scope="module")
def pages() -> Iterator[tuple[str, str]]:
    """The same page served from two more loopback origins: (allowed, other)."""
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    with ExitStack() as stack:
        allowed, other = (stack.enter_context(serve_asgi(Starlette(routes=[Route("/", page)])))
                          for _ in range(2))
        yield allowed, other


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], pages: tuple[str, str]) -> Gatekeeper:
    return gatekeeper_factory(
        auth={"token_sources": ["header", "cookie:jwt"]},  # ambient credentials: origin check on
        cors=[{"paths": ["/api/*"], "allowed_origins": [pages[0]],
               "allowed_methods": ["GET", "POST", "PUT"], "allowed_headers": ["Content-Type"],
               "exposed_headers": ["X-Request-Id"], "allow_credentials": True}],
    )


def reached(upstream: Upstream, marker: str) -> list[str]:
    """The methods of the requests carrying ``marker`` that reached the app."""
    return [r.method for r in upstream.recorder.requests if r.query_string == f"m={marker}".encode()]


def test_a_preflight_is_answered_by_gatekeeper_and_never_reaches_the_app(
    gk: Gatekeeper, upstream: Upstream, pages: tuple[str, str],
) -> None:
    marker = os.urandom(6).hex()
    with gk.client() as client:
        allowed = client.options(f"/api/x?m={marker}", headers={
            "origin": pages[0], "access-control-request-method": "PUT",
            "access-control-request-headers": "content-type"})
        refused = client.options(f"/api/x?m={marker}", headers={
            "origin": pages[1], "access-control-request-method": "PUT"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == pages[0]
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert refused.status_code == 403 and refused.json()["error"] == "cors_origin_not_allowed"
    assert not [h for h in refused.headers if h.startswith("access-control-")]
    assert reached(upstream, marker) == []

    def logged() -> set[tuple[str, str | None]]:
        lines = [json.loads(line) for line in gk.access_log() if line.startswith("{")]
        return {(line["reason"], line["rule"]) for line in lines if marker_free(line)}

    assert eventually(lambda: {("cors_preflight", "cors[0]"),
                               ("cors_origin_not_allowed", "cors[0]")} <= logged()), logged()


def marker_free(line: dict[str, Any]) -> bool:
    """An access-log line of an OPTIONS (the log never has the query, so not the marker)."""
    return bool(line.get("method") == "OPTIONS")


def test_the_apps_reflected_origin_never_reaches_another_origin(
    gk: Gatekeeper, issuer: DevIssuer, pages: tuple[str, str],
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE)
    with gk.client() as client:
        other = client.get("/api/cors-reflect", headers={"origin": pages[1],
                                                         "authorization": f"Bearer {token}"})
        allowed = client.get("/api/cors-reflect", headers={"origin": pages[0],
                                                           "authorization": f"Bearer {token}"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers
    assert allowed.headers["access-control-allow-origin"] == pages[0]
    assert allowed.headers.get_list("vary") == ["Accept-Encoding", "Origin"]


def in_chromium(page: Any, gk: Gatekeeper, origin: str, mark: str) -> dict[str, Any]:
    page.goto(origin + "/")
    result: dict[str, Any] = page.evaluate("([gk, mark]) => call(gk, mark)", [gk.url, mark])
    return result


def test_chromium_allowed_origin_reads_and_writes_another_origin_is_blocked(
    gk: Gatekeeper, upstream: Upstream, issuer: DevIssuer, pages: tuple[str, str],
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE)
    good, bad = os.urandom(6).hex(), os.urandom(6).hex()
    with chromium_page() as page:
        # 127.0.0.1 on another port is the same site: the Lax cookie goes with credentials.
        page.context.add_cookies([{"name": "jwt", "value": token, "url": gk.url, "httpOnly": True,
                                   "sameSite": "Lax"}])
        allowed = in_chromium(page, gk, pages[0], good)
        other = in_chromium(page, gk, pages[1], bad)

    # The allowed origin reads the answers (with the exposed X-Request-Id) and its PUT, after the
    # preflight gatekeeper answered, reaches the app authenticated by the cookie.
    for name in ("get", "put", "post"):
        assert allowed[name]["status"] == 200, allowed
        assert "x-auth-request-user" in allowed[name]["user"], allowed
        assert allowed[name]["requestId"], allowed
    assert reached(upstream, f"get-{good}") == ["GET"]
    assert reached(upstream, f"put-{good}") == ["PUT"]  # the app never saw the OPTIONS
    assert reached(upstream, f"post-{good}") == ["POST"]

    # Another origin: the browser blocks every answer; the PUT's preflight is refused, so the PUT
    # is never sent, and the simple POST carries the cookie but the origin check refuses it.
    assert other == {"get": "blocked", "put": "blocked", "post": "blocked"}
    assert reached(upstream, f"put-{bad}") == [] and reached(upstream, f"post-{bad}") == []
    assert not [r for r in upstream.recorder.requests if r.method == "OPTIONS"]


def test_without_the_cors_rule_the_allowed_origins_cookie_write_is_refused(
    gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, issuer: DevIssuer,
    pages: tuple[str, str],
) -> None:
    """The other half of the consistency: the write above passes the session origin check only
    because the credentialed CORS rule names that origin."""
    plain = gatekeeper_factory(auth={"token_sources": ["header", "cookie:jwt"]})
    marker = os.urandom(6).hex()
    token = issuer.mint("alice", audience=AUDIENCE)
    with httpx.Client(base_url=plain.url, trust_env=False, timeout=10) as client:
        answer = client.put(f"/api/write?m={marker}", headers={"origin": pages[0],
                                                               "cookie": f"jwt={token}"})
    assert answer.status_code == 403 and answer.json()["error"] == "origin_not_allowed"
    assert reached(upstream, marker) == []
