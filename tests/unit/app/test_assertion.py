"""The signed identity assertion through the whole app, in process: the app gets exactly one,
gatekeeper's own, bound to the request it receives — whatever a client sent under that name in
any spelling — a forward-auth check hands it to the front proxy, and the keys are published on
`listen` only when asked (then that path is gatekeeper's, whatever the method or spelling)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.assertion.binding import request_binding
from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import InProcess, StartupFailed, request, serve
from tests.support.assertion import new_key, private_pem, verified, write_private_key
from tests.support.fakes import bearer, mint
from tests.support.spellings import spellings
from tests.unit.app.conftest import MakeSettings

JWKS = "/.well-known/gatekeeper/jwks.json"
SPOOF = "forged.assertion.value"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("assertion") / "key.pem"
    write_private_key(path)
    return path


def with_assertion(make_settings: MakeSettings, key_file: Path, **assertion: Any) -> Settings:
    return make_settings(assertion={"key_file": str(key_file), "audience": "orders",
                                    "serve_jwks_on_listen": True, **assertion})


def jwks_of(settings: Settings) -> bytes:
    answer = request(settings, "GET", JWKS)
    assert answer.status == 200, answer.body
    return answer.body


@pytest.mark.parametrize(("method", "target"), [
    ("GET", "/orders/7?expand=items"), ("DELETE", "/orders/7"), ("GET", "/a/./b//c?x=%20y"),
], ids=["a GET with a query", "a DELETE", "a non-canonical path: bound as forwarded"])
def test_the_app_receives_one_assertion_bound_to_the_request_it_receives(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream,
    method: str, target: str,
) -> None:
    settings = with_assertion(make_settings, key_file)
    answer = request(settings, method, target, headers=[bearer(mint(issuer, claims={
        "roles": ["viewer"], "email": "alice@example.com"}))])
    assert answer.status == 200, answer.body
    seen = upstream.recorder.last
    (assertion,) = seen.header_values("x-auth-request-jwt")
    claims = verified(assertion, jwks_of(settings), audience="orders")
    received = seen.raw_path + (b"?" + seen.query_string if seen.query_string else b"")
    assert claims["req"] == request_binding(seen.method, received)
    assert (claims["sub"], claims["roles"], claims["email"]) == ("alice", ["viewer"], "alice@example.com")


@pytest.mark.parametrize("header", ["X-Auth-Request-Jwt", "X-Identity-Assertion"],
                         ids=["the default name", "a configured name no other proxy uses"])
def test_every_client_copy_of_the_assertion_header_is_removed_in_every_spelling(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream, header: str,
) -> None:
    settings = with_assertion(make_settings, key_file, header=header)
    spoofed = [(spelling, f"{SPOOF}.{i}") for i, spelling in enumerate(spellings(header))]
    duplicates = [(header.lower(), SPOOF), (header.lower(), SPOOF)]
    answer = request(settings, "GET", "/orders/7", headers=[bearer(mint(issuer)), *spoofed,
                                                            *duplicates])
    assert answer.status == 200, answer.body
    seen = upstream.recorder.last
    assert not [(n, v) for n, v in seen.headers if SPOOF.encode() in v]
    (ours,) = seen.header_values(header)
    assert verified(ours, jwks_of(settings), audience="orders")["sub"] == "alice"


@pytest.mark.parametrize("header", ["X-Auth-Request-Jwt", "X-Identity-Assertion"],
                         ids=["the default name", "a configured name no other proxy uses"])
def test_connection_cannot_remove_the_assertion(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream, header: str,
) -> None:
    settings = with_assertion(make_settings, key_file, header=header)
    answer = request(settings, "GET", "/orders/7", headers=[
        bearer(mint(issuer)), ("connection", f"keep-alive, {header.replace('-', '_')}")])
    assert answer.status == 200, answer.body
    assert len(upstream.recorder.last.header_values(header)) == 1


def test_an_anonymous_request_gets_no_assertion_and_no_client_copy(
    make_settings: MakeSettings, key_file: Path, upstream: Upstream,
) -> None:
    settings = with_assertion(make_settings, key_file, header="X-Identity-Assertion")
    spoofed = [(spelling, SPOOF) for spelling in spellings("X-Identity-Assertion")]
    answer = request(settings, "GET", "/public/page", headers=spoofed)
    assert answer.status == 200, answer.body
    assert not [(n, v) for n, v in upstream.recorder.last.headers if SPOOF.encode() in v]


def test_a_forward_auth_check_passes_the_assertion_for_the_original_request(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings(trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "nginx"},
                             assertion={"key_file": str(key_file), "audience": "orders",
                                        "serve_jwks_on_listen": True})
    answer = request(settings, "GET", "/oauth2/auth", headers=[
        bearer(mint(issuer)), (b"x-original-uri", b"/orders/7?page=2"),
        (b"x-original-method", b"PUT")])
    assert answer.status == 202, answer.body
    claims = verified(answer.header("x-auth-request-jwt") or "", jwks_of(settings), audience="orders")
    assert claims["req"] == request_binding("PUT", b"/orders/7?page=2")
    assert len(upstream.recorder) == 0


def test_the_keys_on_listen_are_gatekeeper_s_answer_for_that_path_in_any_spelling(
    make_settings: MakeSettings, key_file: Path, upstream: Upstream,
) -> None:
    async def scenario(gk: InProcess) -> None:
        for target in (JWKS, "/.well-known//gatekeeper/./jwks.json", "/.well-known/gatekeeper/%6Awks.json"):
            answer = await gk.http("GET", target)
            assert answer.status == 200, target
            assert answer.header("content-type") == "application/json"
            assert answer.header("cache-control") == "public, max-age=60"
            assert [k["alg"] for k in answer.json()["keys"]] == ["ES256"]
        refused = await gk.http("POST", JWKS, body=b"{}")
        assert (refused.status, refused.header("allow")) == (405, "GET, HEAD")
        assert len(upstream.recorder) == 0

    serve(with_assertion(make_settings, key_file), scenario)


def test_without_the_flag_that_path_is_the_app_s(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = with_assertion(make_settings, key_file, serve_jwks_on_listen=False)
    assert request(settings, "GET", JWKS).status == 401  # the pipeline decides, as for any path
    answer = request(settings, "GET", JWKS, headers=[bearer(mint(issuer))])
    assert answer.status == 200
    assert upstream.recorder.last.path == JWKS


def test_a_bad_key_file_stops_the_start_naming_the_key(
    make_settings: MakeSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "key.pem"
    pem = private_pem(new_key("ES384"))
    path.write_bytes(pem)
    settings = make_settings(assertion={"key_file": str(path), "audience": "orders"})

    async def nothing(gk: InProcess) -> None:
        raise AssertionError("started")

    with caplog.at_level(logging.ERROR, logger="gatekeeper"), pytest.raises(StartupFailed):
        serve(settings, nothing)
    (line,) = [r for r in caplog.records if r.getMessage() == "startup failed"]
    error = str(line.__dict__["error"])
    assert f"assertion.key_file: {path}: the key is EC secp384r1" in error
    assert pem.decode().splitlines()[1][:32] not in error


def test_a_websocket_handshake_carries_the_assertion_for_its_get(
    make_settings: MakeSettings, key_file: Path, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = with_assertion(make_settings, key_file)

    async def one(gk: InProcess) -> bytes:
        answer = await gk.websocket("/ws?room=7", headers=[
            bearer(mint(issuer)), (b"x-auth-request-jwt", SPOOF.encode())])
        assert answer.accepted
        return (await gk.http("GET", JWKS)).body

    jwks = serve(settings, one)
    seen = upstream.recorder.last
    assert seen.type == "websocket"
    (assertion,) = seen.header_values("x-auth-request-jwt")
    assert verified(assertion, jwks, audience="orders")["req"] == request_binding("GET", b"/ws?room=7")
