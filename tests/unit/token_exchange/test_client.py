"""RFC 8693 token exchange (gatekeeper/token_exchange/client.py and routes.py), the provider served
in memory: what is sent, how the cache is keyed (two audiences, two subjects, two issuers), how
long an answer lives, single-flight, failures never cached, refusals briefly, which callers and
routes. End to end with the real provider: tests/e2e/test_token_exchange_provider.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gatekeeper.errors import Forbidden, GatekeeperError, InvalidToken, TokenExchangeUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.principal import ANONYMOUS, Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings, TokenExchangeRoute
from gatekeeper.token_exchange import IssuerExchange, TokenExchanges, Wanted
from tests.support.fakes import T0, FakeClock

ISSUER = "https://issuer.test"
OTHER = "https://other.test"
SECRET = "s3cret:/+ é"  # characters that must be form-encoded for Basic (RFC 6749 §2.3.1)
ORDERS = TokenExchangeRoute(paths=["/orders/*"], audience="orders", scope=["orders.read", "x"],
                            resource="https://orders.test/")
BILLING = TokenExchangeRoute(paths=["/billing/*"], methods=["POST"], audience="billing",
                             header="X-Billing-Token")
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def _issuer(issuer: str = ISSUER, **client: Any) -> IssuerSettings:
    client = {"token_endpoint": issuer + "/token", "client_id": "gk", "client_secret": SECRET, **client}
    if client["token_endpoint"] is None:
        del client["token_endpoint"]
    return IssuerSettings(issuer=issuer, audience=["api"], token_exchange=client)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


class Provider:
    """A token endpoint in memory: each request recorded, answered by ``reply``."""

    def __init__(self) -> None:
        self.asked: list[httpx.Request] = []
        self.gate: asyncio.Event | None = None
        self.reply: Callable[[httpx.Request], httpx.Response] = self.good

    @staticmethod
    def good(request: httpx.Request, expires_in: Any = 300) -> httpx.Response:
        form = _form(request)
        token = f"for-{form.get('audience')}-of-{form['subject_token']}-at-{request.url.host}"
        body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
        return httpx.Response(200, json=body)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/openid-configuration"):
            return _streamed(httpx.Response(200, json={
                "issuer": f"https://{request.url.host}",
                "token_endpoint": f"https://{request.url.host}/found"}))
        self.asked.append(request)
        if self.gate is not None:
            await self.gate.wait()
        return _streamed(self.reply(request))


def _streamed(response: httpx.Response) -> httpx.Response:
    """As a server's answer arrives: a stream (the control plane reads it raw, in chunks)."""
    return httpx.Response(response.status_code, headers=response.headers,
                          stream=httpx.ByteStream(response.content))


def _run(scenario: Callable[[httpx.AsyncClient, Provider], Awaitable[Any]]) -> Provider:
    provider = Provider()

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
            await scenario(http, provider)

    asyncio.run(main())
    return provider


async def _exchange(client: IssuerExchange, token: str, route: TokenExchangeRoute = ORDERS,
                    expires_at: float = 0.0) -> str:
    return await client.exchange(token, hashlib.sha256(token.encode()).digest(), expires_at,
                                 Wanted.of(route))


def test_the_request_is_rfc_8693_with_the_client_authenticated_by_basic() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(_issuer(), AuthSettings(), http)
        assert await _exchange(client, "tok-alice") == "for-orders-of-tok-alice-at-issuer.test"

    provider = _run(scenario)
    [request] = provider.asked
    assert str(request.url) == ISSUER + "/token"
    assert _form(request) == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "tok-alice",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "orders", "resource": "https://orders.test/", "scope": "orders.read x"}
    scheme, _, value = request.headers["authorization"].partition(" ")
    user, _, password = base64.b64decode(value).decode("ascii").partition(":")
    assert (scheme, unquote(user), unquote(password)) == ("Basic", "gk", SECRET)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"


def test_client_secret_post_sends_the_credentials_in_the_form_and_no_basic_header() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(_issuer(auth_method="client_secret_post"), AuthSettings(), http)
        await _exchange(client, "tok-alice")

    [request] = _run(scenario).asked
    assert "authorization" not in request.headers
    assert (_form(request)["client_id"], _form(request)["client_secret"]) == ("gk", SECRET)


def test_private_key_jwt_signs_a_fresh_assertion_for_the_exchange(tmp_path: Path) -> None:
    """The exchange client authenticates as introspection does (clients/client_auth.py): with a
    key, each call carries a client assertion for the issuer and no secret."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    issuer = _issuer(auth_method="private_key_jwt", client_secret=None,
                     private_key_jwt={"key_file": str(key_file), "algorithm": "ES256"})

    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(issuer, AuthSettings(), http)
        await _exchange(client, "tok-alice")
        await _exchange(client, "tok-bob")

    asked = _run(scenario).asked
    assertions = []
    for request in asked:
        form = _form(request)
        assert "authorization" not in request.headers and "client_secret" not in form
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        claims = jwt.decode(form["client_assertion"], key.public_key(), algorithms=["ES256"],
                            audience=ISSUER)
        assert (claims["iss"], claims["sub"]) == ("gk", "gk")
        assertions.append(claims["jti"])
    assert len(asked) == 2 and len(set(assertions)) == 2


def test_each_call_is_counted_by_its_result_and_cached_tokens_are_not_calls() -> None:
    metrics = Metrics()
    def refused(_: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant"})

    def down(_: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    replies: dict[str, Callable[[httpx.Request], httpx.Response]] = {
        "tok-good": Provider.good, "tok-refused": refused, "tok-down": down}

    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        provider.reply = lambda request: replies[_form(request)["subject_token"]](request)
        client = IssuerExchange(_issuer(), AuthSettings(), http, metrics=metrics)
        for token in ["tok-good", "tok-good", "tok-refused", "tok-refused", "tok-down"]:
            with contextlib.suppress(GatekeeperError):
                await _exchange(client, token)

    assert len(_run(scenario).asked) == 3  # the issued token and the refusal were kept

    def calls(result: str) -> float | None:
        return metrics.registry.get_sample_value("gatekeeper_backchannel_calls_total", {
            "kind": "token_exchange", "issuer": ISSUER, "result": result})

    assert (calls("accepted"), calls("refused"), calls("unavailable")) == (1.0, 1.0, 1.0)


def test_the_token_endpoint_is_discovered_when_not_configured() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(_issuer(token_endpoint=None), AuthSettings(), http)
        await _exchange(client, "tok-alice")

    [request] = _run(scenario).asked
    assert str(request.url) == ISSUER + "/found"


def test_the_cache_is_keyed_by_subject_and_audience_and_never_shared_between_issuers() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        one = IssuerExchange(_issuer(), AuthSettings(), http)
        two = IssuerExchange(_issuer(OTHER), AuthSettings(), http)
        first = await _exchange(one, "tok-alice")
        assert await _exchange(one, "tok-alice") == first  # cached: one call so far
        assert len(provider.asked) == 1
        assert await _exchange(one, "tok-bob") == "for-orders-of-tok-bob-at-issuer.test"
        assert await _exchange(one, "tok-alice", BILLING) == "for-billing-of-tok-alice-at-issuer.test"
        # The same token string at another issuer is that issuer's question, asked there.
        assert await _exchange(two, "tok-alice") == "for-orders-of-tok-alice-at-other.test"
        assert len(provider.asked) == 4
        for client, token, route in ((one, "tok-alice", ORDERS), (one, "tok-bob", ORDERS),
                                     (one, "tok-alice", BILLING), (two, "tok-alice", ORDERS)):
            await _exchange(client, token, route)
        assert len(provider.asked) == 4  # every one of them cached apart

    _run(scenario)


@pytest.mark.parametrize(("expires_in", "subject_expires", "max_ttl", "kept"), [
    (100, 0, 300, 70), (300, T0 + 10, 300, 10), (3600, 0, 50, 50), (None, 0, 120, 120), (20, 0, 300, 0),
], ids=["until expires_in less the margin", "never past the caller's token's exp",
        "at most max_ttl_seconds", "without expires_in: max_ttl_seconds",
        "shorter-lived than the margin: used, not kept"])
def test_an_issued_token_is_kept_no_longer_than_every_bound(
    expires_in: int | None, subject_expires: float, max_ttl: float, kept: float,
) -> None:
    clock = FakeClock()

    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        provider.reply = lambda request: Provider.good(request, expires_in=expires_in)
        client = IssuerExchange(_issuer(max_ttl_seconds=max_ttl, expiry_margin_seconds=30),
                                AuthSettings(), http, clock=clock)
        await _exchange(client, "tok", expires_at=subject_expires)
        if kept:
            clock.now = T0 + kept - 1
            await _exchange(client, "tok", expires_at=subject_expires)
            assert len(provider.asked) == 1
        clock.now = T0 + kept
        await _exchange(client, "tok", expires_at=subject_expires)
        assert len(provider.asked) == 2

    _run(scenario)


def test_concurrent_requests_with_one_key_share_one_call() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        provider.gate = asyncio.Event()
        client = IssuerExchange(_issuer(), AuthSettings(), http)
        waiting = [asyncio.create_task(_exchange(client, "tok")) for _ in range(8)]
        while not provider.asked:
            await asyncio.sleep(0)
        for _ in range(20):
            await asyncio.sleep(0)
        provider.gate.set()
        assert len(set(await asyncio.gather(*waiting))) == 1
        assert len(provider.asked) == 1

    _run(scenario)


def _status(exc: GatekeeperError) -> tuple[int, str]:
    return exc.status, exc.code


def test_a_failure_is_never_cached_and_a_refusal_only_briefly() -> None:
    clock = FakeClock()

    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(_issuer(negative_ttl_seconds=5), AuthSettings(), http, clock=clock)
        provider.reply = lambda request: httpx.Response(502, text="bad gateway")
        with pytest.raises(TokenExchangeUnavailable):
            await _exchange(client, "tok")
        provider.reply = lambda request: httpx.Response(400, json={"error": "invalid_grant"})
        with pytest.raises(InvalidToken) as refused:
            await _exchange(client, "tok")
        assert _status(refused.value) == (401, "token_exchange_invalid_grant")
        assert len(provider.asked) == 2  # the failure was not kept
        provider.reply = Provider.good
        with pytest.raises(InvalidToken):
            await _exchange(client, "tok")  # the refusal is
        assert len(provider.asked) == 2
        clock.now = T0 + 5
        assert await _exchange(client, "tok") == "for-orders-of-tok-at-issuer.test"

    _run(scenario)


@pytest.mark.parametrize("answer", ["slow", "huge", "gzip", "not json"])
def test_an_answer_too_slow_or_too_large_is_503(answer: str) -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        async def hang(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(30)
            return Provider.good(request)

        replies: dict[str, Callable[[httpx.Request], httpx.Response]] = {
            "huge": lambda r: httpx.Response(200, json={"access_token": "x" * 5000}),
            "gzip": lambda r: httpx.Response(200, headers={"content-encoding": "gzip"}, content=b"{}"),
            "not json": lambda r: httpx.Response(200, headers={"content-type": "application/json"},
                                                 content=b"{not json"),
        }
        client = IssuerExchange(_issuer(timeout_seconds=0.2, max_bytes=1024), AuthSettings(), http)
        if answer == "slow":
            provider.gate = asyncio.Event()  # never set: the deadline must end it
        else:
            provider.reply = replies[answer]
        with pytest.raises(TokenExchangeUnavailable) as raised:
            await _exchange(client, "tok")
        assert raised.value.status == 503
        assert len(client.cache) == 0

    _run(scenario)


def _principal(issuer: str = ISSUER, token: str | None = "tok-alice", via: Any = "bearer") -> Principal:
    return Principal(subject="alice", roles=(), claims={}, via=via, issuer=issuer, token=token)


def _view(method: str, path: str) -> RequestView:
    return RequestView({"type": "http", "method": method, "path": path, "headers": []}, path)


IDENTITY = [(b"x-auth-request-user", b"alice"), (b"x-auth-request-access-token", b"tok-alice")]


def test_the_stage_adds_the_token_in_the_routes_header_in_place_of_the_callers() -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        stage = TokenExchanges([ORDERS, BILLING], {ISSUER: IssuerExchange(_issuer(), AuthSettings(), http)})
        assert stage.covers("/orders/1") and not stage.covers("/other")
        headers = await stage.exchanged(_principal(), _view("GET", "/orders/1"), IDENTITY)
        assert headers == [(b"x-auth-request-user", b"alice"),
                           (b"x-auth-request-access-token", b"for-orders-of-tok-alice-at-issuer.test")]
        assert IDENTITY[1] == (b"x-auth-request-access-token", b"tok-alice")  # the shared list kept
        billing = await stage.exchanged(_principal(), _view("POST", "/billing/x"), IDENTITY)
        assert billing[-1] == (b"x-billing-token", b"for-billing-of-tok-alice-at-issuer.test")
        # GET is not among the billing rule's methods; anonymous callers have nothing to exchange.
        assert await stage.exchanged(_principal(), _view("GET", "/billing/x"), IDENTITY) is IDENTITY
        assert await stage.exchanged(ANONYMOUS, _view("GET", "/orders/1"), []) == []
        assert len(provider.asked) == 2

    _run(scenario)


@pytest.mark.parametrize("principal", [
    _principal(token=None, via="certificate"), _principal(issuer=OTHER),
], ids=["a client certificate, no token", "an issuer with no exchange client"])
def test_a_caller_whose_token_cannot_be_exchanged_is_403(principal: Principal) -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        stage = TokenExchanges([ORDERS], {ISSUER: IssuerExchange(_issuer(), AuthSettings(), http)})
        with pytest.raises(Forbidden) as raised:
            await stage.exchanged(principal, _view("GET", "/orders/1"), [])
        assert _status(raised.value) == (403, "token_exchange_not_possible")

    assert _run(scenario).asked == []


def test_a_token_is_never_in_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        client = IssuerExchange(_issuer(), AuthSettings(), http)
        provider.reply = lambda request: httpx.Response(200, json={"access_token": "tok-secret"})
        with pytest.raises(TokenExchangeUnavailable):
            await _exchange(client, "tok-secret")
        provider.reply = lambda request: httpx.Response(400, json={"error": "invalid_target"})
        with pytest.raises(Forbidden):
            await _exchange(client, "tok-secret-2")

    with caplog.at_level("DEBUG", logger="gatekeeper"):
        _run(scenario)
    assert caplog.records
    for record in caplog.records:
        assert "tok-secret" not in json.dumps(record.__dict__, default=str)


@pytest.mark.parametrize(("via", "status"), [("bearer", 401), ("session", 403)],
                         ids=["a bearer token: 401", "a browser session: 403, never a login loop"])
def test_a_token_the_provider_will_not_exchange_is_401_for_a_bearer_and_403_for_a_session(
    via: str, status: int,
) -> None:
    async def scenario(http: httpx.AsyncClient, provider: Provider) -> None:
        provider.reply = lambda request: httpx.Response(400, json={"error": "invalid_grant"})
        stage = TokenExchanges([ORDERS], {ISSUER: IssuerExchange(_issuer(), AuthSettings(), http)})
        with pytest.raises(GatekeeperError) as raised:
            await stage.exchanged(_principal(via=via), _view("GET", "/orders/1"), [])
        assert _status(raised.value) == (status, "token_exchange_invalid_grant")

    _run(scenario)
