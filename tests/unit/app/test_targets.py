"""The request line and framing, in process: the path the policy decided is the path the app gets,
and a target or framing that two parsers could read differently is a 400 that never reaches it."""

from __future__ import annotations

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support.asgi import Answer, InProcess, request, serve
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings

# (raw target, what the app receives): one spelling per path, decided and forwarded alike.
CANONICAL = [
    ("/api/p1/./items", "/api/p1/items"),
    ("//api/p1/items", "/api/p1/items"),
    ("/api/p1//items", "/api/p1/items"),
    ("/%61pi/p1/items", "/api/p1/items"),
    ("/public/../api/p1/items", "/api/p1/items"),
    ("/api/p1/items?x=%2e%2e", "/api/p1/items"),
]


@pytest.mark.parametrize(("target", "forwarded"), CANONICAL, ids=[t for t, _ in CANONICAL])
def test_the_app_gets_the_canonical_path_that_was_decided(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, target: str, forwarded: str,
) -> None:
    viewer = bearer(mint(issuer, claims={"roles": ["viewer"]}))
    answer = request(make_settings(policy=EXAMPLE_POLICY), "GET", target, headers=[viewer])
    assert answer.status == 200, answer.body
    seen = upstream.recorder.last
    assert (seen.path, seen.raw_path) == (forwarded, forwarded.encode())
    assert seen.query_string == target.encode().partition(b"?")[2]


def test_a_path_the_policy_denies_stays_denied_in_any_spelling(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    viewer = bearer(mint(issuer, claims={"roles": ["viewer"]}))
    settings = make_settings(policy=EXAMPLE_POLICY)
    statuses = {target: request(settings, "GET", target, headers=[viewer]).status
                for target in ("/admin/x", "/%61dmin/x", "//admin/x", "/public/../admin/x",
                               "/api/../admin/x")}
    assert statuses == dict.fromkeys(statuses, 403)
    assert len(upstream.recorder) == 0


def _refused(answer: Answer, code: str) -> None:
    assert answer.status == 400, answer.body
    assert answer.header("content-type") == "application/json"
    assert answer.json()["error"] == code
    assert answer.json()["request_id"] == answer.header("x-request-id")


REFUSED_TARGETS = [
    (b"/admin%2fx", "encoded slash"),
    (b"/public/%2e%2e/admin", "encoded dot-dot"),
    (b"/admin;x/y", "path parameter"),
    (b"/a%0d%0aSet-Cookie:x", "encoded CRLF"),
    (b"/..", "climbs above the root"),
    (b"/%ff", "invalid UTF-8"),
]


@pytest.mark.parametrize("target", [t for t, _ in REFUSED_TARGETS],
                         ids=[w for _, w in REFUSED_TARGETS])
def test_a_target_two_parsers_could_read_differently_is_400_and_never_reaches_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, target: bytes,
) -> None:
    answer = request(make_settings(), "GET", target, headers=[bearer(mint(issuer))])
    assert answer.status == 400, answer.body
    assert answer.json()["request_id"] == answer.header("x-request-id")
    assert len(upstream.recorder) == 0


@pytest.mark.parametrize("query", ["_method=DELETE", "x=1&_METHOD=put", "x-http-method-override=PUT"],
                         ids=["_method", "_METHOD after another parameter", "x-http-method-override"])
def test_a_method_override_in_the_query_is_400(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, query: str,
) -> None:
    answer = request(make_settings(), "POST", f"/echo?{query}", headers=[bearer(mint(issuer))])
    _refused(answer, "method_override")
    assert len(upstream.recorder) == 0


FRAMINGS = [
    ([("content-length", "3"), ("transfer-encoding", "chunked")], "Content-Length and chunked"),
    ([("content-length", "3"), ("content-length", "4")], "two Content-Lengths"),
    ([("content-length", "3, 3")], "a list in Content-Length"),
    ([("transfer-encoding", "gzip, chunked")], "a coding other than chunked"),
    ([("content-length", "+3")], "a signed Content-Length"),
]


@pytest.mark.parametrize("framing", [f for f, _ in FRAMINGS], ids=[w for _, w in FRAMINGS])
def test_ambiguous_request_framing_is_refused_before_anything_is_forwarded(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    framing: list[tuple[str, str]],
) -> None:
    answer = request(make_settings(), "POST", "/upload", headers=[bearer(mint(issuer)), *framing],
                     body=b"abc")
    _refused(answer, "ambiguous_framing")
    assert len(upstream.recorder) == 0


def test_two_authorization_headers_are_400_not_a_choice_between_them(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    answer = request(make_settings(), "GET", "/echo",
                     headers=[bearer(mint(issuer)), bearer(mint(issuer, "mallory"))])
    _refused(answer, "duplicate_authorization")
    assert len(upstream.recorder) == 0


def test_request_headers_over_max_header_bytes_are_431(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings(max_header_bytes=4096)
    within = request(settings, "GET", "/echo", headers=[bearer(mint(issuer)), ("x-pad", "a" * 100)])
    over = request(settings, "GET", "/echo", headers=[bearer(mint(issuer)), ("x-pad", "a" * 4096)])
    assert within.status == 200
    assert over.status == 431
    assert len(upstream.recorder) == 1


def test_a_body_reaches_the_app_whole(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    body = bytes(range(256)) * 64
    answer = request(make_settings(), "POST", "/upload",
                     headers=[bearer(mint(issuer)), ("content-length", str(len(body)))], body=body)
    assert answer.status == 200
    assert answer.json()["bytes"] == len(body)
    assert upstream.recorder.last.body_bytes == len(body)


def test_a_streamed_answer_arrives_whole_through_an_httpx_client(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    async def scenario(gk: InProcess) -> httpx.Response:
        return await gk.client.get("/chunked?parts=5&delay=0",
                                   headers={"authorization": f"Bearer {mint(issuer)}"})

    response = serve(make_settings(), scenario)
    assert response.status_code == 200
    assert response.headers.get("content-length") is None  # streamed by the app, and passed on so
    assert response.content == b"".join(b"part-%d\n" % i for i in range(5))
