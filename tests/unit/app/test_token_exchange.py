"""Token exchange for the app (RFC 8693), in process, in both shapes (the sidecar and the
``gatekeeper.Gatekeeper`` middleware): the app gets a token for its route's audience from a
scripted token endpoint on loopback (tests/support/token_endpoint.py), never one a client sent
(any spelling, on any route); the same header rides on WebSocket handshakes and forward-auth
answers; a refusing or unreachable provider fails only the exchange routes. With the real
provider: tests/e2e/test_token_exchange_provider.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import HeaderInput, InProcess, WebSocketAnswer, request, serve
from tests.support.fakes import bearer, mint
from tests.support.servers import free_port, serve_asgi
from tests.support.spellings import spellings
from tests.support.token_endpoint import Reply, TokenEndpoint
from tests.unit.app.conftest import MakeSettings

pytestmark = pytest.mark.usefixtures("both_shapes")  # the sidecar and the middleware

SECRET = "exchange-secret:/+"
DEFAULT = "X-Auth-Request-Access-Token"
RULES = [{"paths": ["/orders/*"], "audience": "orders"},
         {"paths": ["/billing/*"], "audience": "billing", "header": "X-Billing-Token",
          "scope": ["billing.read"]}]
FORGED = "forged-by-client"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[TokenEndpoint, str]]:
    server = TokenEndpoint("gk", SECRET)
    with serve_asgi(server, lifespan="off") as url:
        yield server, url


def _settings(make_settings: MakeSettings, issuer: DevIssuer, token_endpoint: str,
              rules: list[dict[str, Any]] = RULES, **overrides: Any) -> Settings:
    client = {"token_endpoint": token_endpoint, "client_id": "gk", "client_secret": SECRET}
    return make_settings(auth={"issuers": [{"issuer": issuer.issuer, "audience": ["api"],
                                            "token_exchange": client}]},
                         token_exchange=rules, **overrides)


def _forged(name: str) -> list[tuple[str, str]]:
    return [(spelling, f"{FORGED}-{i}") for i, spelling in enumerate(spellings(name))]


def _values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    """Every value whose name an app could read as ``name`` (case, '_' or '.' for '-')."""
    def fold(raw: bytes) -> str:
        return "".join(c if c.isalnum() else "-" for c in raw.decode("latin-1").lower())
    return [v.decode("latin-1") for n, v in headers if fold(n) == name.lower()]


@pytest.mark.parametrize(("path", "header", "audience"), [
    ("/orders/1", DEFAULT, "orders"), ("/billing/2", "X-Billing-Token", "billing"),
], ids=["the default header", "a header of the route's own"])
def test_the_app_gets_a_token_for_its_routes_audience_and_never_a_forged_one(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str], path: str, header: str, audience: str,
) -> None:
    server, url = endpoint
    token = mint(issuer)
    answer = request(_settings(make_settings, issuer, url + "/token"), "GET", path,
                     headers=[bearer(token), *_forged(header)])
    assert answer.status == 200, answer.body
    [value] = _values(upstream.recorder.last.headers, header)
    assert value.startswith(f"x-{audience}-")
    assert server.asked[-1]["subject_token"] == token
    assert server.asked[-1]["audience"] == audience


@pytest.mark.parametrize("path", ["/elsewhere", "/public/page"],
                         ids=["a route with no exchange", "a public path"])
def test_every_client_copy_of_an_exchange_header_is_dropped_on_every_route(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str], path: str,
) -> None:
    server, url = endpoint
    before = len(server.asked)
    headers: HeaderInput = [bearer(mint(issuer)), *_forged(DEFAULT), *_forged("X-Billing-Token")]
    answer = request(_settings(make_settings, issuer, url + "/token"), "GET", path, headers=headers)
    assert answer.status == 200, answer.body
    seen = upstream.recorder.last.headers
    assert _values(seen, DEFAULT) == [] and _values(seen, "X-Billing-Token") == []
    assert not [v for _, v in seen if FORGED.encode() in v]
    assert len(server.asked) == before  # no exchange where no rule applies


def test_the_exchanged_token_replaces_the_callers_with_pass_access_token(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    _, url = endpoint
    token = mint(issuer)
    settings = _settings(make_settings, issuer, url + "/token", pass_access_token=True)
    assert request(settings, "GET", "/orders/1", headers=[bearer(token)]).status == 200
    [exchanged] = _values(upstream.recorder.last.headers, DEFAULT)
    assert exchanged.startswith("x-orders-")
    assert request(settings, "GET", "/elsewhere", headers=[bearer(token)]).status == 200
    assert _values(upstream.recorder.last.headers, DEFAULT) == [token]  # elsewhere: the caller's


def test_a_second_request_with_the_same_token_is_served_from_the_cache(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    server, url = endpoint
    token = mint(issuer)
    settings = _settings(make_settings, issuer, url + "/token")

    async def twice(gk: InProcess) -> list[str]:
        seen = []
        for _ in range(2):
            answer = await gk.http("GET", "/orders/1", headers=[bearer(token)])
            assert answer.status == 200
            seen += _values(upstream.recorder.last.headers, DEFAULT)
        return seen

    first, second = serve(settings, twice)
    assert first == second and server.times_asked(token) == 1


@pytest.mark.parametrize(("reply", "status", "code"), [
    (Reply(json={"error": "invalid_grant"}, status=400), 401, "token_exchange_invalid_grant"),
    (Reply(json={"error": "invalid_target"}, status=400), 403, "token_exchange_invalid_target"),
    (Reply(json={"access_token": "x", "token_type": "Bearer",
                 "issued_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}), 503,
     "token_exchange_wrong_token_type"),
    (Reply(raw=b"<html>maintenance</html>", content_type=b"text/html"), 503,
     "token_exchange_unavailable"),
    (Reply(raw=json.dumps({"access_token": "x", "token_type": "Bearer", "issued_token_type":
                           "urn:ietf:params:oauth:token-type:access_token"}).encode(),
           content_type=b"text/html"), 503, "token_exchange_not_json"),
    (Reply(raw=b'{"access_token": "' + b"x" * 70000 + b'"}'), 503, "token_exchange_unavailable"),
    (Reply(json={"error": "invalid_client"}, status=401), 503, "token_exchange_client_refused"),
], ids=["invalid_grant: 401", "invalid_target: 403", "a refresh token: 503", "HTML: 503",
        "a token served as HTML: 503",
        "a body over max_bytes: 503", "our client refused: 503"])
def test_a_refusal_or_a_hostile_answer_fails_the_route_with_a_clear_code(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str], reply: Reply, status: int, code: str,
) -> None:
    server, url = endpoint
    token = mint(issuer)
    server.script[token] = reply
    answer = request(_settings(make_settings, issuer, url + "/token"), "GET", "/orders/1",
                     headers=[bearer(token)])
    assert answer.status == status, answer.body
    assert answer.json()["error"] == code
    assert len(upstream.recorder) == 0  # never the app without its token


def test_a_provider_that_is_down_fails_only_the_exchange_routes(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(make_settings, issuer, f"http://127.0.0.1:{free_port()}/token")
    token = mint(issuer, subject="olga")
    capsys.readouterr()
    down = request(settings, "GET", "/orders/1", headers=[bearer(token)])
    assert (down.status, down.json()["error"]) == (503, "token_exchange_unavailable")
    assert len(upstream.recorder) == 0
    # The access log names the caller the 503 was for (known before the exchange was tried).
    logged = [line for line in map(json.loads, capsys.readouterr().out.splitlines())
              if line.get("reason") == "token_exchange_unavailable"]
    assert [line["subject"] for line in logged] == ["olga"], logged
    assert request(settings, "GET", "/elsewhere", headers=[bearer(token)]).status == 200


def test_an_anonymous_caller_on_a_public_exchange_path_gets_no_token(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    server, url = endpoint
    before = len(server.asked)
    settings = _settings(make_settings, issuer, url + "/token",
                         rules=[{"paths": ["/public/*"], "audience": "orders"}])
    answer = request(settings, "GET", "/public/x", headers=_forged(DEFAULT))
    assert answer.status == 200
    assert _values(upstream.recorder.last.headers, DEFAULT) == []
    assert len(server.asked) == before


def test_a_websocket_handshake_carries_the_exchanged_token(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    _, url = endpoint
    settings = _settings(make_settings, issuer, url + "/token")

    async def one(gk: InProcess) -> WebSocketAnswer:
        forged = (b"x_auth_request_access_token", FORGED.encode())
        return await gk.websocket("/orders/ws", headers=[bearer(mint(issuer)), forged],
                                  messages=("whoami",))
    answer = serve(settings, one)
    assert answer.accepted
    arrived = [(n.encode(), v.encode()) for n, v in json.loads(answer.replies[0])["headers"]]
    [value] = _values(arrived, DEFAULT)
    assert value.startswith("x-orders-")


def test_a_forward_auth_answer_carries_the_exchanged_token(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    endpoint: tuple[TokenEndpoint, str],
) -> None:
    _, url = endpoint
    settings = _settings(make_settings, issuer, url + "/token", trusted_proxies=["127.0.0.1/32"],
                         forward_auth={"proxy": "nginx"})
    headers = [(b"x-original-uri", b"/billing/7"), (b"x-original-method", b"GET"),
               bearer(mint(issuer)), (b"x-billing-token", FORGED.encode())]
    answer = request(settings, "GET", "/oauth2/auth", headers=headers)
    assert answer.status == 202, answer.body
    [value] = answer.header_values("x-billing-token")
    assert value.startswith("x-billing-")
    assert len(upstream.recorder) == 0
