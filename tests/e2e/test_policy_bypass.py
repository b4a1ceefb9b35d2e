"""Path tricks against a running gatekeeper: a caller without the admin role never reaches /admin.

Gatekeeper runs as a real process with the default policy (``policies/``, copied) and
``public_paths: ["/public/*"]``; the caller is ``bob`` with the role ``viewer``. Each request
target is sent as raw bytes over a TCP socket (an HTTP client would normalize it first). For
every one, nothing the recording upstream receives may name a path under ``/admin`` — read the
way an app reads it: percent-decoded once, ``\\`` as ``/``, ``;`` parameters dropped, dot
segments resolved, case ignored — and a target aimed at /admin gets 400/401/403/404.
"""

from __future__ import annotations

import posixpath
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.policy import copy_default_policy
from tests.support.upstream import RecordedRequest

REFUSED = {400, 401, 403, 404}


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper],
               tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    return gatekeeper_factory(public_paths=["/public/*"],
                              policy=copy_default_policy(tmp_path_factory.mktemp("policies")))


@pytest.fixture(scope="module")
def viewer_token(issuer: DevIssuer) -> str:
    return issuer.mint("bob", audience=AUDIENCE, ttl_seconds=3600, claims={"roles": ["viewer"]})


@pytest.fixture(scope="module")
def admin_token(issuer: DevIssuer) -> str:
    return issuer.mint("bob", audience=AUDIENCE, ttl_seconds=3600, claims={"roles": ["admin"]})


@dataclass
class Exchange:
    status: int
    forwarded: list[RecordedRequest]  # what reached the upstream because of this request


def exchange(gk: Gatekeeper, upstream: Upstream, data: bytes) -> tuple[list[int], list[RecordedRequest]]:
    """Write ``data`` byte for byte, read until the server closes; (statuses, forwarded)."""
    host, port = gk.config["listen"].rsplit(":", 1)
    before = len(upstream.recorder)
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", bytes(received))]
    assert statuses, f"no HTTP response to {data[:200]!r}: {bytes(received[:200])!r}"
    # The upstream records a request before it answers, and gatekeeper answers after the
    # upstream did: by now everything these requests caused is in the recorder.
    return statuses, list(upstream.recorder.requests[before:])


def head(gk: Gatekeeper, request_line: bytes, token: str, extra_headers: bytes = b"") -> bytes:
    host = gk.config["listen"]
    return (request_line + b"\r\n" + f"Host: {host}\r\nAuthorization: Bearer {token}\r\n".encode()
            + extra_headers)


def send_raw(gk: Gatekeeper, upstream: Upstream, request_line: bytes, token: str,
             extra_headers: bytes = b"") -> Exchange:
    """One request, written byte for byte; the connection closes after the answer."""
    statuses, forwarded = exchange(
        gk, upstream, head(gk, request_line, token, extra_headers) + b"Connection: close\r\n\r\n")
    assert len(statuses) == 1, statuses
    return Exchange(statuses[0], forwarded)


def app_reading(path: str) -> str:
    """How an app may read a path its server decoded once: '\\' as '/', ';' parameters
    dropped, dot segments resolved, case ignored. (Decoding a second time is the app's own
    bug: a double-encoded dot-dot reaching it still encoded is the correct outcome.)"""
    text = path.replace("\\", "/")
    text = "/".join(segment.split(";", 1)[0] for segment in text.split("/"))
    return posixpath.normpath("/" + text.lstrip("/")).lower()


def is_admin(path: str) -> bool:
    reading = app_reading(path)
    return reading == "/admin" or reading.startswith("/admin/")


def assert_never_admin(exchange: Exchange) -> None:
    for record in exchange.forwarded:
        assert not is_admin(record.path), f"reached the app as {record.path!r} ({record.raw_path!r})"
        assert not is_admin(unquote(record.raw_path.decode("latin-1")))


# (target, what the caller may get): "refused" = 400/401/403/404 and nothing forwarded;
# "public" = forwarded, under /public/ (the trick changed nothing).
OVERLONG = "a" * 8000
TARGETS: list[tuple[bytes, str, str]] = [
    (b"/admin/x", "refused", "plain /admin is denied"),
    (b"//admin/x", "refused", "a doubled leading slash"),
    (b"/./admin/x", "refused", "a dot segment first"),
    (b"/public/../admin/x", "refused", "climbing out of /public"),
    (b"/public/%2e%2e/admin/x", "refused", "an encoded dot-dot"),
    (b"/public/%2E%2E/admin", "refused", "an upper-case encoded dot-dot"),
    (b"/public/.%2e/admin", "refused", "a half-encoded dot-dot"),
    (b"/public/%2E./admin", "refused", "the other half encoded"),
    (b"/public/%2e/admin", "refused", "an encoded single dot"),
    (b"/%61dmin/x", "refused", "an encoded letter of admin"),
    (b"/adm%69n/x", "refused", "another encoded letter"),
    (b"/%41dmin/x", "refused", "an encoded capital letter"),
    (b"/%2561dmin/x", "refused", "a double-encoded letter"),
    (b"/admin;x/y", "refused", "a path parameter"),
    (b"/public/..;/admin", "refused", "the Tomcat dot-dot-semicolon"),
    (b"/admin%3bx", "refused", "an encoded semicolon"),
    (b"/admin%2fx", "refused", "an encoded slash"),
    (b"/admin%2Fx", "refused", "an upper-case encoded slash"),
    (b"/%2fadmin", "refused", "an encoded leading slash"),
    (b"/public%2f..%2fadmin", "refused", "encoded slashes around dot-dot"),
    (b"/public/..%2fadmin", "refused", "dot-dot and an encoded slash"),
    (b"/public/%2e%2e%2fadmin", "refused", "everything encoded"),
    (b"/admin%5cx", "refused", "an encoded backslash"),
    (b"/admin\\x", "refused", "a raw backslash"),
    (b"/public/..\\admin", "refused", "dot-dot and a raw backslash"),
    (b"/admin%00", "refused", "an encoded NUL"),
    (b"/public/%00/../admin", "refused", "an encoded NUL before dot-dot"),
    (b"/admin%09", "refused", "an encoded tab"),
    (b"/admin%23x", "refused", "an encoded hash"),
    (b"/admin%3fx", "refused", "an encoded question mark"),
    (b"/admin%20/x", "refused", "an encoded space after admin"),
    (b"/admin/%2e%2e/admin/x", "refused", "encoded dot-dot inside admin"),
    (b"/ADMIN/x", "refused", "upper case"),
    (b"/Admin/x", "refused", "mixed case"),
    (b"/admin//x", "refused", "a doubled inner slash"),
    (b"/admin/./x", "refused", "a dot segment inside"),
    (b"/./././admin/x", "refused", "many dot segments"),
    (b"//public/../admin", "refused", "a doubled slash and dot-dot"),
    (b"/public/x/../../admin/x", "refused", "two levels of dot-dot"),
    (b"/public/../../admin", "refused", "dot-dot above the root"),
    (b"/%2e%2e/admin", "refused", "an encoded dot-dot at the root"),
    (b"/admin.%2e/x", "refused", "encoded dots glued to admin"),
    (b"/admin%2e/x", "refused", "an encoded trailing dot"),
    (b"/admin./x", "refused", "a trailing dot (Windows drops it)"),
    (b"/admin?x=/public/", "refused", "a public path in the query"),
    (b"/admin#frag", "refused", "a raw fragment"),
    (b"/public/x#/../../admin/x", "refused", "a raw # before dot segments, cut by the server"),
    (b"/public/x?q#/../../admin/x", "refused", "a raw # in the query"),
    (b"/public/%252e%252e/admin", "public", "a double-encoded dot-dot stays encoded"),
    (b"/public/x?/../../admin", "public", "dot-dot in the query only"),
    (b"/public/.../admin", "public", "three dots are a name"),
    (b"/%c0%ae%c0%ae/admin", "refused", "overlong UTF-8 dots"),
    (b"/public/%c0%ae%c0%ae/admin", "refused", "overlong UTF-8 dots under /public"),
    (b"/public/%e0%80%ae%e0%80%ae/admin", "refused", "three-byte overlong dots"),
    (b"/public/%u002e%u002e/admin", "refused", "IIS %u encoding"),
    (b"/admin/x%", "refused", "a truncated escape"),
    (b"/admin/x%g0", "refused", "a bad escape"),
    (b"/admin\xff", "refused", "a raw non-ASCII byte"),
    (b"/\xc0\xae\xc0\xae/admin", "refused", "raw overlong UTF-8 dots"),
    (b"http://127.0.0.1/admin/x", "refused", "absolute-form"),
    (b"http://public.example/admin/x", "refused", "absolute-form naming another host"),
    (b"http://127.0.0.1/public/../admin", "refused", "absolute-form with dot-dot"),
    (b"*", "refused", "asterisk-form"),
    (b"admin/x", "refused", "no leading slash"),
    (b"/public/" + OVERLONG.encode() + b"/../../admin/x", "refused", "an overlong segment"),
    (b"/public/" + b"../" * 400 + b"admin", "refused", "hundreds of dot-dots"),
    (b"/public/" + b"%2e%2e/" * 400 + b"admin", "refused", "hundreds of encoded dot-dots"),
    (b"/public/ /../admin", "refused", "a space in the target"),
    (b"/admin\t/x", "refused", "a tab in the target"),
    (b"/public/x\t/../../admin", "refused", "a tab before dot-dot"),
]


@pytest.mark.parametrize(("target", "expected"), [(t, e) for t, e, _ in TARGETS],
                         ids=[name for _, _, name in TARGETS])
def test_a_path_trick_never_reaches_admin(gatekeeper: Gatekeeper, upstream: Upstream,
                                          viewer_token: str, target: bytes, expected: str) -> None:
    exchange = send_raw(gatekeeper, upstream, b"GET " + target + b" HTTP/1.1", viewer_token)
    assert_never_admin(exchange)
    if expected == "refused":
        assert exchange.status in REFUSED, exchange.status
        assert exchange.forwarded == []
    else:
        assert exchange.status == 200
        assert [r.path.startswith("/public/") for r in exchange.forwarded] == [True]


def test_an_absolute_form_target_naming_another_host_is_refused(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    exchange = send_raw(gatekeeper, upstream, b"GET http://elsewhere.example/public/x HTTP/1.1",
                        viewer_token)
    assert exchange.status == 400
    assert exchange.forwarded == []


def test_a_double_encoded_dot_dot_reaches_the_app_still_encoded(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    exchange = send_raw(gatekeeper, upstream, b"GET /public/%252e%252e/admin HTTP/1.1", viewer_token)
    assert exchange.status == 200
    (record,) = exchange.forwarded
    assert record.raw_path == b"/public/%252e%252e/admin"
    assert record.path == "/public/%2e%2e/admin"  # decoded once by the app's server: a name


@pytest.mark.parametrize("header", [b"X-Original-URL", b"X-Rewrite-URL", b"X-Forwarded-Uri",
                                    b"X-Original-URI", b"X-Forwarded-Path"])
def test_a_rewrite_header_does_not_change_the_path_decided(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str, header: bytes
) -> None:
    exchange = send_raw(gatekeeper, upstream, b"GET /admin/x HTTP/1.1", viewer_token,
                        header + b": /public/x\r\n")
    assert exchange.status == 403
    assert exchange.forwarded == []


REWRITE_HEADERS = ["X-Original-URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri"]


def test_a_rewrite_header_does_not_reach_the_app_on_an_allowed_request(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    """The policy saw /public/x: the app must not be told /admin/x another way."""
    sneaky = b"".join(f"{name}: /admin/x\r\n".encode() for name in REWRITE_HEADERS)
    exchange = send_raw(gatekeeper, upstream, b"GET /public/x HTTP/1.1", viewer_token, sneaky)
    assert exchange.status == 200
    (record,) = exchange.forwarded
    assert record.path == "/public/x"
    assert {name: record.header_values(name) for name in REWRITE_HEADERS} == \
        {name: [] for name in REWRITE_HEADERS}


@pytest.mark.parametrize("method", [b"get", b"Get", b"gEt", b"delete"])
def test_a_lowercase_method_never_reaches_admin(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str, method: bytes
) -> None:
    exchange = send_raw(gatekeeper, upstream, method + b" /admin/x HTTP/1.1", viewer_token)
    assert exchange.status in REFUSED
    assert exchange.forwarded == []


def test_a_lowercase_method_reaches_the_app_as_decided(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    """Either the server refuses a lowercase method (400), or the app gets the upper-case one
    the policy matched: never 'get' slipping past rules written for 'GET'."""
    exchange = send_raw(gatekeeper, upstream, b"get /api/p1/items HTTP/1.1", viewer_token)
    assert exchange.status in (200, 400)
    if exchange.status == 200:
        assert [r.method for r in exchange.forwarded] == ["GET"]
    else:
        assert exchange.forwarded == []


def test_the_viewer_reaches_what_the_policy_grants(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    exchange = send_raw(gatekeeper, upstream, b"GET /api/p1/items HTTP/1.1", viewer_token)
    assert exchange.status == 200
    assert [(r.method, r.path) for r in exchange.forwarded] == [("GET", "/api/p1/items")]


@pytest.mark.parametrize("target", [b"/admin/x", b"//admin/x", b"/public/../admin/x",
                                    b"/%61dmin/x", b"/admin/./x"])
def test_the_same_user_with_the_admin_role_reaches_admin(
    gatekeeper: Gatekeeper, upstream: Upstream, admin_token: str, target: bytes
) -> None:
    """The control: the suite can tell a refused trick from a gatekeeper that refuses all."""
    exchange = send_raw(gatekeeper, upstream, b"GET " + target + b" HTTP/1.1", admin_token)
    assert exchange.status == 200
    assert [r.path for r in exchange.forwarded] == ["/admin/x"]
    assert is_admin(exchange.forwarded[0].path)  # the checker itself sees /admin


@pytest.mark.parametrize("method", [b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS",
                                    b"TRACE", b"PROPFIND", b"FOO"])
def test_no_method_reaches_admin(gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str,
                                 method: bytes) -> None:
    result = send_raw(gatekeeper, upstream, method + b" /admin/x HTTP/1.1", viewer_token,
                      b"Content-Length: 0\r\n")
    assert result.status in REFUSED
    assert result.forwarded == []


@pytest.mark.parametrize("request_line", [
    b"GET /admin/x HTTP/1.0", b"GET /admin/x", b"GET  /admin/x HTTP/1.1", b"GET /admin/x  HTTP/1.1",
    b"GET /admin/x HTTP/1.1 ", b"GET\t/admin/x HTTP/1.1", b"GET /public/x /admin/x HTTP/1.1",
    b"GET /admin/x HTTP/2.0", b"GET /admin/x HTTP/1.1\r\nGET /public/x HTTP/1.1",
], ids=["HTTP/1.0", "HTTP/0.9 (no version)", "two spaces before the target",
        "two spaces after it", "a trailing space", "a tab as separator", "two targets",
        "HTTP/2.0 in an HTTP/1 request line", "a second request line as a header"])
def test_an_odd_request_line_never_reaches_admin(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str, request_line: bytes
) -> None:
    statuses, forwarded = exchange(gatekeeper, upstream, head(gatekeeper, request_line, viewer_token)
                                   + b"Connection: close\r\n\r\n")
    assert all(status in REFUSED for status in statuses), statuses
    assert all(not is_admin(r.path) for r in forwarded), [r.path for r in forwarded]


def test_a_request_without_a_host_or_with_two_is_no_way_in(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    for data in (b"GET /admin/x HTTP/1.1\r\nAuthorization: Bearer " + viewer_token.encode()
                 + b"\r\nConnection: close\r\n\r\n",
                 head(gatekeeper, b"GET /admin/x HTTP/1.1", viewer_token)
                 + b"Host: admin.example\r\nConnection: close\r\n\r\n"):
        statuses, forwarded = exchange(gatekeeper, upstream, data)
        assert all(status in REFUSED for status in statuses), statuses
        assert forwarded == []


# Framing tricks: an /admin request hidden in or after the body of an allowed one. Whatever
# gatekeeper makes of it, the app must never parse a request for /admin out of the bytes it
# gets. A last request (Connection: close) ends every connection in the same way.
def smuggled(gk: Gatekeeper, token: str) -> bytes:
    return head(gk, b"GET /admin/x HTTP/1.1", token) + b"\r\n"


def closing(gk: Gatekeeper, token: str) -> bytes:
    return head(gk, b"GET /public/end HTTP/1.1", token) + b"Connection: close\r\n\r\n"


def framing_case(name: str, gk: Gatekeeper, token: str) -> tuple[bytes, list[int]]:
    inner = smuggled(gk, token)
    outer = head(gk, b"GET /public/x HTTP/1.1", token)
    chunk = f"{len(inner):x}".encode()
    cases = {
        "in a Content-Length body": (
            outer + f"Content-Length: {len(inner)}\r\n\r\n".encode() + inner, [200, 200]),
        "after a Content-Length: 0 body": (
            outer + b"Content-Length: 0\r\n\r\n" + inner, [200, 403, 200]),
        "after the last chunk": (
            outer + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + inner, [200, 403, 200]),
        "inside a chunk": (
            outer + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"\r\n" + inner
            + b"\r\n0\r\n\r\n", [200, 200]),
        "inside a chunk with an extension": (
            outer + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b";ext=1\r\n" + inner
            + b"\r\n0\r\n\r\n", [200, 200]),
        "with both Content-Length and chunked": (
            outer + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + inner,
            [400]),
        "with two Content-Lengths": (
            outer + f"Content-Length: 0\r\nContent-Length: {len(inner)}\r\n\r\n".encode() + inner,
            [400]),
    }
    data, statuses = cases[name]
    return data + closing(gk, token), statuses


FRAMING_CASES = ["in a Content-Length body", "after a Content-Length: 0 body", "after the last chunk",
                 "inside a chunk", "inside a chunk with an extension",
                 "with both Content-Length and chunked", "with two Content-Lengths"]


@pytest.mark.parametrize("case", FRAMING_CASES)
def test_an_admin_request_hidden_by_framing_never_reaches_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str, case: str
) -> None:
    data, expected = framing_case(case, gatekeeper, viewer_token)
    statuses, forwarded = exchange(gatekeeper, upstream, data)
    assert all(not is_admin(r.path) for r in forwarded), [r.path for r in forwarded]
    assert statuses == expected
    if expected[-1] == 200:
        assert [r.path for r in forwarded] == ["/public/x", "/public/end"]


def test_nothing_under_admin_reached_the_app_for_the_viewer(upstream: Upstream) -> None:
    """Whole-module sweep (runs last): every request the app saw for bob the viewer."""
    for record in upstream.recorder.requests:
        authorization = record.header("authorization") or ""
        groups = record.header("x-auth-request-groups") or ""
        if "admin" in groups.split(","):
            continue
        assert authorization, record.path
        assert not is_admin(record.path), record.path


def test_an_absolute_form_target_naming_this_host_is_accepted(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str
) -> None:
    """RFC 9112 §3.2.2: servers accept absolute-form; ours when it names the Host itself."""
    host = gatekeeper.config["listen"].encode()
    exchange = send_raw(gatekeeper, upstream, b"GET http://" + host + b"/public/x HTTP/1.1",
                        viewer_token)
    assert exchange.status == 200
    assert [r.raw_path for r in exchange.forwarded] == [b"/public/x"]


@pytest.mark.parametrize("header", [b"X-HTTP-Method-Override", b"X-Method-Override"])
def test_a_method_override_header_never_reaches_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, viewer_token: str, header: bytes
) -> None:
    """The policy decided GET; an app honouring X-HTTP-Method-Override would run DELETE."""
    exchange = send_raw(gatekeeper, upstream, b"GET /public/x HTTP/1.1", viewer_token,
                        header + b": DELETE\r\n")
    assert exchange.status == 200
    (record,) = exchange.forwarded
    assert record.header_values(header.decode().lower()) == []


@pytest.fixture(scope="module")
def editor_token(issuer: DevIssuer) -> str:
    return issuer.mint("erin", audience=AUDIENCE, ttl_seconds=3600, claims={"roles": ["editor"]})


@pytest.mark.parametrize("query", [b"_method=DELETE", b"%5Fmethod=DELETE", b".method=DELETE"],
                         ids=["_method", "encoded _", "PHP reads . as _"])
def test_a_method_override_in_the_query_never_reaches_the_app(
        gatekeeper: Gatekeeper, upstream: Upstream, editor_token: str, query: bytes) -> None:
    """An editor may POST to /api/p1/items but not DELETE it; Spring, Laravel, Symfony and
    Express's method-override would run DELETE for ``POST …?_method=DELETE``."""
    exchange = send_raw(gatekeeper, upstream, b"POST /api/p1/items?" + query + b" HTTP/1.1",
                        editor_token, b"Content-Length: 0\r\n")
    assert exchange.status == 400 and exchange.forwarded == []
    control = send_raw(gatekeeper, upstream, b"POST /api/p1/items?a=1 HTTP/1.1", editor_token,
                       b"Content-Length: 0\r\n")
    assert control.status == 200 and len(control.forwarded) == 1
