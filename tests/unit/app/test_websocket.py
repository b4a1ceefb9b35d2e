"""WebSocket handshakes, in process: refused with the same answers as HTTP (when the server offers
the ASGI Denial Response extension; a bare close otherwise), and an allowed one relayed to the app
with gatekeeper's identity headers, never the client's."""

from __future__ import annotations

import json

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import InProcess, WebSocketAnswer, serve
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings


def handshake(settings: Settings, target: str, headers: list[tuple[bytes, bytes]] | None = None,
              *, messages: tuple[str, ...] = (), denial_extension: bool = True) -> WebSocketAnswer:
    async def one(gk: InProcess) -> WebSocketAnswer:
        return await gk.websocket(target, headers=headers or [], messages=messages,
                                  denial_extension=denial_extension)
    return serve(settings, one)


def test_without_a_token_the_handshake_is_401_with_its_challenge(
    make_settings: MakeSettings, upstream: Upstream,
) -> None:
    answer = handshake(make_settings(), "/ws")
    assert not answer.accepted and answer.denial is not None
    assert answer.denial.status == 401
    assert answer.denial.header("www-authenticate") == 'Bearer realm="gatekeeper"'
    assert answer.denial.json()["error"] == "unauthenticated"
    assert len(upstream.recorder) == 0


def test_without_the_denial_extension_a_refusal_is_a_close_before_accept(
    make_settings: MakeSettings, upstream: Upstream,
) -> None:
    answer = handshake(make_settings(), "/ws", denial_extension=False)
    assert (answer.accepted, answer.denial, answer.close_code) == (False, None, 1008)
    assert len(upstream.recorder) == 0


def test_a_handshake_the_policy_denies_is_403(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    viewer = bearer(mint(issuer, claims={"roles": ["viewer"]}))
    answer = handshake(make_settings(policy=EXAMPLE_POLICY), "/admin/ws", [viewer])
    assert answer.denial is not None and answer.denial.status == 403
    assert answer.denial.json()["error"] == "forbidden"
    assert len(upstream.recorder) == 0


@pytest.mark.parametrize("target", ["/ws?_method=POST", "/admin%2fws", "/ws/%2e%2e/admin"],
                         ids=["a method override in the query", "an encoded slash",
                              "an encoded dot-dot"])
def test_a_handshake_with_a_target_gatekeeper_refuses_is_400(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, target: str,
) -> None:
    answer = handshake(make_settings(), target, [bearer(mint(issuer))])
    assert answer.denial is not None and answer.denial.status == 400
    assert len(upstream.recorder) == 0


def test_an_allowed_handshake_reaches_the_app_with_gatekeepers_identity_only(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    spoofed = [(b"x-auth-request-user", b"mallory"), (b"x_auth_request_user", b"mallory")]
    answer = handshake(make_settings(), "/ws", [bearer(mint(issuer)), *spoofed],
                       messages=("whoami", "hello"))
    assert answer.accepted and answer.close_code is None
    whoami, echo = answer.replies
    assert echo == "hello"
    arrived = json.loads(whoami)["headers"]
    users = [value for name, value in arrived if name.lower().replace("_", "-") == "x-auth-request-user"]
    assert users == ["alice"]
    assert upstream.recorder.last.type == "websocket"


def test_the_apps_own_refusal_of_a_handshake_is_passed_on(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    answer = handshake(make_settings(), "/ws/full", [bearer(mint(issuer))])
    assert answer.denial is not None
    assert (answer.denial.status, answer.denial.body) == (409, b"the room is full")
