"""Forward-auth behind a real nginx, configured with the recipe from docs/forward-auth.md.

nginx (Debian's, with auth_request) on 127.0.0.1 asks a real gatekeeper process (default
``forward_auth.proxy: nginx``, the default policy, ``public_paths: ["/public/*"]``) and proxies
to the recording upstream. Hostile requests are written byte for byte to nginx; the invariant is
checked from the upstream's own record: nothing reached it that the policy denies, read the way
an app may read it — the path decoded and resolved, or the path and method an app takes from
``X-Original-URL`` / ``X-HTTP-Method-Override`` and their ``_``/``.`` spellings.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from urllib.parse import unquote

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.edge.forward_auth import split_uri
from gatekeeper.headernames import fold
from gatekeeper.settings.forward_auth import METHOD_CARRIERS, URI_CARRIERS
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.e2e.test_policy_bypass import app_reading
from tests.support.nginx import run_documented_nginx, status_of
from tests.support.policy import copy_default_policy
from tests.support.redis import run_redis
from tests.support.servers import free_port
from tests.support.upstream import RecordedRequest

LIMITED = "/api/limited/items"  # a viewer may read it, twice a minute (the rate limit below)


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gatekeeper]:
    with run_redis() as redis:
        yield gatekeeper_factory(
            trusted_proxies=["127.0.0.1/32"],
            policy=copy_default_policy(tmp_path_factory.mktemp("policies")),
            redis={"url": redis.url, "key_prefix": f"fa-nginx-{secrets.token_hex(4)}:"},
            rate_limits=[{"path": "/api/limited/*", "per": "subject", "limit": 2,
                          "window_seconds": 60}])


@pytest.fixture(scope="module")
def nginx(gatekeeper: Gatekeeper, upstream: Upstream,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """nginx running the documented recipe, its addresses replaced by the test's; its port."""
    port = free_port()
    with run_documented_nginx(gatekeeper.config["listen"], upstream.port,
                              tmp_path_factory.mktemp("nginx"), port):
        yield port


@pytest.fixture(scope="module")
def viewer(issuer: DevIssuer) -> str:
    return issuer.mint("bob", audience=AUDIENCE, ttl_seconds=3600, claims={"roles": ["viewer"]})


def send(port: int, upstream: Upstream, request_line: bytes, headers: bytes = b"",
         ) -> tuple[int, list[RecordedRequest]]:
    """One request written byte for byte to nginx; (status, what reached the upstream)."""
    before = len(upstream.recorder)
    data = (request_line + b"\r\nHost: app.example\r\n" + headers + b"Connection: close\r\n\r\n")
    status = status_of(port, data)
    return status, list(upstream.recorder.requests[before:])


def allowed_for_anyone(method: str, path: str) -> bool:
    """The policy for an anonymous caller: GET|HEAD under /public/ (policies/policy.csv), in
    every reading: dot segments resolved, or routed as sent (Starlette, werkzeug and Django
    route ``/admin/../public/x`` under ``/admin``)."""
    as_sent = path.lower().replace("\\", "/")
    return (method in ("GET", "HEAD") and app_reading(path).startswith("/public/")
            and as_sent.startswith("/public/"))


def app_views(record: RecordedRequest) -> list[tuple[str, str]]:
    """Every (method, path) an app may act on for this request: its request line, decoded or
    not, and whatever an override header in any spelling tells it instead."""
    paths = [record.path, unquote(record.raw_path.decode("latin-1"))]
    methods = [record.method]
    uri_names = {fold(n.encode()) for n in URI_CARRIERS}
    method_names = {fold(n.encode()) for n in METHOD_CARRIERS}
    for name, value in record.headers:
        folded = fold(name)
        if folded in uri_names:
            try:
                raw = split_uri(value)[0]
            except Exception:  # not a URI gatekeeper would read: take it as the app might
                raw = value
            paths.append(unquote(raw.decode("latin-1")))
        elif folded in method_names:
            methods.append(value.decode("latin-1").upper())
    return [(m, p) for m in methods for p in paths]


def assert_nothing_denied_reached(forwarded: list[RecordedRequest]) -> None:
    for record in forwarded:
        for method, path in app_views(record):
            assert allowed_for_anyone(method, path), (
                f"the app received {record.method} {record.raw_path!r} and may act on "
                f"{method} {path!r}: the policy denies that to an anonymous caller")
        names = {fold(n) for n, _ in record.headers}
        assert b"x-auth-request-user" not in names, "a client-written identity reached the app"


ALL_SPELLINGS = [spelled for name in ("X-Forwarded-Uri", "X-Original-URI", "X-Original-URL",
                                      "X-Rewrite-URL")
                 for spelled in (name, name.replace("-", "_"), name.upper(), name.replace("-", "."))]
METHOD_SPELLINGS = [spelled for name in ("X-Forwarded-Method", "X-Original-Method",
                                         "X-HTTP-Method-Override", "X-Method-Override")
                    for spelled in (name, name.replace("-", "_"), name.lower())]

HOSTILE: list[tuple[bytes, bytes, str]] = [
    *[(b"GET /admin/x HTTP/1.1", f"{name}: /public/x\r\n".encode(),
       f"{name} says /public while /admin is asked") for name in ALL_SPELLINGS],
    *[(b"GET /public/x HTTP/1.1", f"{name}: /admin/x\r\n".encode(),
       f"{name} says /admin while /public is asked") for name in ALL_SPELLINGS],
    *[(b"GET /public/x HTTP/1.1", f"{name}: DELETE\r\n".encode(), f"{name} DELETE on a public GET")
      for name in METHOD_SPELLINGS],
    *[(b"DELETE /public/x HTTP/1.1", f"{name}: GET\r\n".encode(), f"{name} GET on a DELETE")
      for name in METHOD_SPELLINGS],
    (b"GET /admin/x HTTP/1.1", b"X-Original-URI: /public/x\r\nX-Original-URI: /public/y\r\n",
     "two client copies of the header nginx sets"),
    (b"GET /admin/x HTTP/1.1", b"X-Original-Method: GET\r\nX-Original-URI: /public/x\r\n",
     "client copies of both headers nginx sets"),
    (b"GET /admin/x HTTP/1.1", b"X-Auth-Request-User: admin\r\n", "a client-written identity"),
    (b"GET /public/x HTTP/1.1", b"X-Auth-Request-User: admin\r\n",
     "a client-written identity on a public path"),
    (b"GET /public/x#/../../admin/x HTTP/1.1", b"", "a raw # then dot segments"),
    (b"GET /public/%23/../admin/x HTTP/1.1", b"", "an encoded # then dot segments"),
    (b"GET /public/x?#/../admin HTTP/1.1", b"", "a raw # in the query"),
    (b"GET /public/../admin/x HTTP/1.1", b"", "climbing out of /public"),
    (b"GET /public/%2e%2e/admin/x HTTP/1.1", b"", "an encoded dot-dot"),
    (b"GET /public/.%2E/admin/x HTTP/1.1", b"", "a half-encoded dot-dot"),
    (b"GET /public/%2e%2e%2fadmin/x HTTP/1.1", b"", "dot-dot and an encoded slash"),
    (b"GET //admin/x HTTP/1.1", b"", "a doubled leading slash"),
    (b"GET /admin/../public/x HTTP/1.1", b"", "dot-dot out of /admin as the app routes it"),
    (b"GET /admin/x/../../public/x HTTP/1.1", b"", "two dot-dots out of /admin"),
    (b"GET /admin/./../public/x HTTP/1.1", b"", "a dot then dot-dot out of /admin"),
    (b"GET /admin//../public/x HTTP/1.1", b"", "an empty segment eaten by dot-dot"),
    (b"GET /admin/%2e/../../public/x HTTP/1.1", b"", "an encoded dot then dot-dots"),
    (b"GET /public//../admin/x HTTP/1.1", b"", "a double slash before dot-dot"),
    (b"GET /public/..;/admin/x HTTP/1.1", b"", "the Tomcat dot-dot-semicolon"),
    (b"GET /public/x;/../../admin/x HTTP/1.1", b"", "a ; parameter then dot segments"),
    (b"GET /%61dmin/x HTTP/1.1", b"", "an encoded letter of admin"),
    (b"GET /public\\..\\admin/x HTTP/1.1", b"", "backslashes"),
    (b"GET /public/[x]/../../admin/x HTTP/1.1", b"", "raw brackets"),
    (b"GET http://app.example/admin/x HTTP/1.1", b"", "an absolute-form target"),
    (b"GET /public/x HTTP/1.1", b"X-Forwarded-Uri: /public/x, /admin/x\r\n",
     "a comma-joined X-Forwarded-Uri"),
    (b"get /public/x HTTP/1.1", b"", "a lower-case method"),
    (b"POST /public/x HTTP/1.1", b"Content-Length: 0\r\n", "a method the policy denies"),
]


@pytest.mark.parametrize(("request_line", "headers", "why"), HOSTILE, ids=[w for _, _, w in HOSTILE])
def test_nothing_the_policy_denies_reaches_the_app(nginx: int, upstream: Upstream,
                                                   request_line: bytes, headers: bytes,
                                                   why: str) -> None:
    status, forwarded = send(nginx, upstream, request_line, headers)
    assert_nothing_denied_reached(forwarded)
    if not forwarded:
        assert status >= 400


CONTROLS = [
    (b"GET /public/x HTTP/1.1", b"", "/public/x"),
    (b"HEAD /public/x HTTP/1.1", b"X-Forwarded-Uri: /public/x\r\n", "/public/x"),
]


@pytest.mark.parametrize(("request_line", "headers", "path"), CONTROLS, ids=[
    "a public page", "a carrier that agrees"])
def test_what_the_policy_allows_still_passes(nginx: int, upstream: Upstream, request_line: bytes,
                                             headers: bytes, path: str) -> None:
    status, forwarded = send(nginx, upstream, request_line, headers)
    assert status == 200 and [app_reading(r.path) for r in forwarded] == [path]
    assert_nothing_denied_reached(forwarded)


def test_a_token_reaches_the_app_with_the_identity_gatekeeper_vouched_for(
        nginx: int, upstream: Upstream, viewer: str) -> None:
    status, forwarded = send(nginx, upstream, b"GET /api/p1/items HTTP/1.1",
                             f"Authorization: Bearer {viewer}\r\nX-Auth-Request-User: admin\r\n".encode())
    assert status == 200 and len(forwarded) == 1
    identity = [v for n, v in forwarded[0].headers if n.lower() == b"x-auth-request-user"]
    assert identity == [b"bob"]


def test_a_viewer_cannot_delete_through_a_method_override(nginx: int, upstream: Upstream,
                                                          viewer: str) -> None:
    status, forwarded = send(nginx, upstream, b"GET /api/p1/items/7 HTTP/1.1",
                             f"Authorization: Bearer {viewer}\r\n"
                             "X-HTTP-Method-Override: DELETE\r\n".encode())
    assert forwarded == [] and status >= 400


def test_a_rate_limited_check_reaches_the_client_as_429_with_retry_after(
        nginx: int, upstream: Upstream, viewer: str) -> None:
    """auth_request turns every answer but 401/403 into a 500: the recipe's @gatekeeper_refused
    hands the client gatekeeper's own 429 and its Retry-After, and the app is not asked."""
    with httpx.Client(base_url=f"http://127.0.0.1:{nginx}", timeout=15) as client:
        answers = [client.get(LIMITED, headers={"Authorization": f"Bearer {viewer}"})
                   for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["retry-after"]) > 0
    assert upstream.recorder.requests[-1].raw_path == LIMITED.encode()
    assert len([r for r in upstream.recorder.requests if r.raw_path == LIMITED.encode()]) == 2


def test_a_check_gatekeeper_cannot_be_sure_of_reaches_the_client_as_400(
        nginx: int, upstream: Upstream) -> None:
    """A client's X-Forwarded-Uri that disagrees with the request: gatekeeper answers the check
    400, which the client now sees (not nginx's 500); nothing reaches the app."""
    status, forwarded = send(nginx, upstream, b"GET /public/x HTTP/1.1",
                             b"X-Forwarded-Uri: /admin/x\r\n")
    assert (status, forwarded) == (400, [])
