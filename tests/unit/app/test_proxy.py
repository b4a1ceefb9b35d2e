"""Forwarding, in process: what the app answers reaches the client (status, its own headers,
cookies, a HEAD without a body), and an app that is down or too slow is a 502 or 504 that
gatekeeper writes itself."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support.asgi import Answer, InProcess, request, serve
from tests.support.fakes import bearer, mint
from tests.support.servers import free_port
from tests.support.upstream import HEAD_BODY_LENGTH
from tests.unit.app.conftest import MakeSettings


@pytest.mark.parametrize(("target", "status", "location"), [
    ("/status/201", 201, None),
    ("/status/204", 204, None),
    ("/status/302?location=/x%3Fy%3D1", 302, "/x?y=1"),
    ("/status/404", 404, None),
    ("/status/500", 500, None),
], ids=["201", "204 without a body", "302 with the app's Location", "404", "the app's own 500"])
def test_the_apps_status_and_location_reach_the_client_as_it_sent_them(
    make_settings: MakeSettings, issuer: DevIssuer, target: str, status: int, location: str | None,
) -> None:
    answer = request(make_settings(), "GET", target, headers=[bearer(mint(issuer))])
    assert answer.status == status
    assert answer.header_values("location") == ([location] if location else [])
    if status == 204:
        assert answer.body == b""


def test_the_apps_cookies_and_repeated_headers_reach_the_client_each_one(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    answer = request(make_settings(), "GET", "/cookies", headers=[bearer(mint(issuer))])
    assert answer.status == 200
    assert len(answer.header_values("set-cookie")) == 2
    assert len(answer.header_values("x-multi")) >= 2


def test_a_head_gets_the_headers_of_the_get_and_no_body(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings()
    head = request(settings, "HEAD", "/head", headers=[bearer(mint(issuer))])
    get = request(settings, "GET", "/head", headers=[bearer(mint(issuer))])
    assert (head.status, head.body) == (200, b"")
    assert head.header("content-length") == str(HEAD_BODY_LENGTH) == get.header("content-length")
    assert len(get.body) == HEAD_BODY_LENGTH
    assert [r.method for r in upstream.recorder.requests] == ["HEAD", "GET"]


def _json_error(answer: Answer, status: int, codes: tuple[str, ...]) -> None:
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    assert answer.json()["error"] in codes
    assert answer.json()["request_id"] == answer.header("x-request-id")


def test_an_app_that_refuses_connections_is_a_502_gatekeeper_writes(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    nobody = make_settings(upstream=f"http://127.0.0.1:{free_port()}")
    answer = request(nobody, "GET", "/echo", headers=[bearer(mint(issuer))])
    _json_error(answer, 502, ("upstream_refused", "upstream_unavailable"))


def test_an_app_slower_than_the_timeout_is_a_504_and_the_next_request_is_served(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    token = bearer(mint(issuer))

    async def scenario(gk: InProcess) -> tuple[Answer, Answer]:
        slow = await gk.http("GET", "/slow?seconds=2", headers=[token])  # 2 s against 0.5 s
        return slow, await gk.http("GET", "/echo", headers=[token])

    slow, after = serve(make_settings(upstream_timeout_seconds=0.5), scenario)
    _json_error(slow, 504, ("upstream_timeout",))
    assert after.status == 200
