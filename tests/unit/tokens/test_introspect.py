"""RFC 7662 introspection (gatekeeper/tokens/introspect.py) through ``BearerAuthenticator``, with
the issuer served in memory: single-flight, which tokens are introspected in each mode, how long
an answer lives, failures never cached, the endpoint found by discovery, bad config refused.
End to end, with the hostile answers: tests/e2e/test_introspection.py and
test_introspection_provider.py (the real provider)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from pydantic import ValidationError

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.errors import GatekeeperError, IntrospectionUnavailable, RateLimited
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.introspect import Introspector
from gatekeeper.tokens.jwks import IssuerKeys
from tests.support import forge
from tests.support.assertion import public_pem, write_private_key

ISSUER = "https://issuer.test"
AUDIENCE = "api"
JWKS = json.dumps({"keys": []}).encode()


def _good(sub: str = "alice", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"active": True, "sub": sub, "aud": AUDIENCE, "iss": ISSUER, "exp": now + 300, **changes}


def _request(token: str, client: str = "192.0.2.1") -> RequestView:
    return RequestView({"type": "http", "method": "GET", "path": "/", "client": (client, 4000),
                        "headers": [(b"authorization", f"Bearer {token}".encode())]}, "/")


Handler = Callable[[httpx.Request], Any]


def _run(handler: Handler, scenario: Callable[[BearerAuthenticator, list[httpx.Request]], Any],
         metrics: Metrics | None = None, **introspection: Any) -> Any:
    introspection = {"endpoint": ISSUER + "/introspect", "client_id": "gk",
                     "client_secret": "secret", **introspection}
    if introspection["endpoint"] is None:
        del introspection["endpoint"]
    issuer = IssuerSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_uri=ISSUER + "/jwks",
                            introspection=introspection)
    auth = AuthSettings(issuers=[issuer])
    asked: list[httpx.Request] = []

    async def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jwks":  # the issuer's keys: no key, so JWTs fail locally
            return httpx.Response(200, stream=httpx.ByteStream(JWKS))
        asked.append(request)
        answer = handler(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, stream=httpx.ByteStream(json.dumps(answer).encode()))

    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http:
            keys = IssuerKeys(issuer, auth, http, Metrics())
            bearer = BearerAuthenticator(auth, {ISSUER: keys}, Metrics(),
                                         introspectors=[Introspector(issuer, auth, http,
                                                                     metrics=metrics)])
            return await scenario(bearer, asked)

    return asyncio.run(main()), asked


def test_concurrent_requests_with_one_token_share_one_call() -> None:
    async def slow(_: httpx.Request) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return _good()

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> list[Principal | None]:
        return await asyncio.gather(*(bearer.authenticate(_request("opaque")) for _ in range(20)))

    principals, asked = _run(slow, scenario)
    assert {p.subject for p in principals} == {"alice"}
    assert len(asked) == 1


def test_made_up_tokens_from_one_client_are_bounded_and_others_are_still_asked() -> None:
    """calls_per_client_per_minute: each made-up token is a call; past the budget a client gets
    429 with Retry-After, another client's tokens are still asked about, and answers in a
    cache (or a call in flight) cost no budget."""
    async def scenario(bearer: BearerAuthenticator, asked: list[httpx.Request]) -> list[str]:
        outcomes = []
        for token, client in [("opaque-1", "192.0.2.1"), ("opaque-2", "192.0.2.1"),
                              ("opaque-3", "192.0.2.1"), ("opaque-4", "192.0.2.1"),
                              ("opaque-1", "192.0.2.1"),  # cached: no call, no budget
                              ("opaque-5", "198.51.100.7")]:
            try:
                principal = await bearer.authenticate(_request(token, client))
                outcomes.append(principal.subject if principal is not None else "none")
            except RateLimited as exc:
                assert exc.retry_after >= 1
                outcomes.append(f"429 {exc.code}")
        return outcomes

    outcomes, asked = _run(lambda _: _good(), scenario, calls_per_client_per_minute=3)
    assert outcomes == ["alice", "alice", "alice", "429 rate_limited", "alice", "alice"]
    assert len(asked) == 4


def test_each_call_is_counted_by_its_result_and_cached_answers_are_not_calls() -> None:
    answers = {"opaque-good": _good(), "opaque-gone": {"active": False},
               "opaque-500": httpx.Response(500)}
    metrics = Metrics()

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> None:
        for token in ["opaque-good", "opaque-good", "opaque-gone", "opaque-gone", "opaque-500"]:
            with contextlib.suppress(GatekeeperError):
                await bearer.authenticate(_request(token))

    def answer(request: httpx.Request) -> Any:
        return answers[parse_qs(request.content.decode())["token"][0]]

    _, asked = _run(answer, scenario, metrics=metrics)
    assert len(asked) == 3  # the good and the gone answers were cached

    def calls(result: str) -> float | None:
        return metrics.registry.get_sample_value("gatekeeper_backchannel_calls_total", {
            "kind": "introspection", "issuer": ISSUER, "result": result})

    assert (calls("accepted"), calls("refused"), calls("unavailable")) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(("mode", "introspected"), [("opaque_only", 0), ("always", 1)])
def test_a_jwt_is_introspected_only_in_mode_always(mode: str, introspected: int) -> None:
    token = forge.unsigned({"typ": "JWT", "kid": "k"}, _good(), alg="RS256") + "c2ln"

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> str:
        try:
            principal = await bearer.authenticate(_request(token))
        except GatekeeperError as exc:
            return exc.code
        assert principal is not None
        return principal.subject

    verdict, asked = _run(lambda _: _good("from-introspection"), scenario, mode=mode)
    assert len(asked) == introspected
    assert verdict == ("from-introspection" if introspected else "keys_unavailable")


@pytest.mark.parametrize(("exp_in", "max_ttl", "lives"), [(5, 3600, 5), (300, 1, 1), (300, 0, 0)],
                         ids=["exp-first", "max-ttl-first", "max-ttl-zero-never-cached"])
def test_an_answer_lives_until_exp_and_at_most_max_ttl(exp_in: int, max_ttl: int, lives: int) -> None:
    now = int(time.time())

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> float | None:
        await bearer.authenticate(_request("opaque"))
        (introspector,) = bearer._introspectors
        answer = introspector.cached(hashlib.sha256(b"opaque").digest(), time.time())
        return None if answer is None else answer.until

    until, _ = _run(lambda _: _good(exp=now + exp_in), scenario, max_ttl_seconds=max_ttl)
    if lives == 0:
        assert until is None
    else:
        assert until is not None and until <= now + exp_in + 1 and until <= time.time() + lives


def test_an_unavailable_endpoint_is_503_and_never_cached() -> None:
    answers: list[Any] = [httpx.Response(502, stream=httpx.ByteStream(b"")), _good()]

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> list[str]:
        outcomes = []
        for _attempt in range(2):
            try:
                principal = await bearer.authenticate(_request("opaque"))
                outcomes.append(principal.subject if principal else "none")
            except IntrospectionUnavailable as exc:
                outcomes.append(exc.code)
        return outcomes

    outcomes, asked = _run(lambda _: answers.pop(0), scenario)
    assert outcomes == ["introspection_unavailable", "alice"]
    assert len(asked) == 2


@pytest.mark.parametrize(("metadata_issuer", "verdict"),
                         [(ISSUER, "alice"), ("https://evil.test", "introspection_unavailable")],
                         ids=["discovered", "metadata-of-another-issuer"])
def test_the_endpoint_is_discovered_from_the_issuer_metadata(metadata_issuer: str, verdict: str) -> None:
    def handler(request: httpx.Request) -> Any:
        if request.url.path == "/.well-known/openid-configuration":
            return {"issuer": metadata_issuer, "introspection_endpoint": ISSUER + "/rfc7662"}
        assert request.url.path == "/rfc7662"
        assert request.headers["authorization"].startswith("Basic ")
        return _good()

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> str:
        try:
            principal = await bearer.authenticate(_request("opaque"))
        except IntrospectionUnavailable as exc:
            return exc.code
        return principal.subject if principal else "none"

    outcome, _ = _run(handler, scenario, endpoint=None)
    assert outcome == verdict


@pytest.mark.parametrize(("introspection", "key"), [
    ({"client_id": "gk"}, "client_secret"),
    ({"client_id": "gk", "client_secret": "s", "endpoint": "ftp://x/introspect"}, "endpoint"),
    ({"client_id": "gk", "client_secret": "s", "mode": "sometimes"}, "mode"),
    ({"client_id": "gk", "client_secret": "s", "auth_method": "client_secret_jwt"}, "auth_method"),
    ({"client_id": "gk", "auth_method": "private_key_jwt"}, "private_key_jwt"),
    ({"client_id": "gk", "client_secret": "s", "auth_method": "private_key_jwt",
      "private_key_jwt": {"key_file": "k.pem"}}, "client_secret"),
    ({"client_id": "gk", "client_secret": "s", "private_key_jwt": {"key_file": "k.pem"}},
     "private_key_jwt"),
    ({"client_id": "gk", "client_secret": "s", "max_bytes": 10}, "max_bytes"),
], ids=["no-secret", "not-http", "bad-mode", "unsupported-auth", "a key method without its key",
        "a secret that nothing would send", "a key with a secret method", "tiny-body-cap"])
def test_bad_introspection_config_is_refused_naming_the_key(introspection: dict[str, Any], key: str) -> None:
    with pytest.raises(ValidationError) as error:
        IssuerSettings(issuer=ISSUER, audience=[AUDIENCE], introspection=introspection)
    assert any(e["loc"][:2] == ("introspection", key) for e in error.value.errors())


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_the_call_authenticates_the_client_with_the_configured_method(method: str, tmp_path: Path) -> None:
    key = write_private_key(tmp_path / "client.pem", "ES256")
    config: dict[str, Any] = {"auth_method": method}
    if method == "private_key_jwt":
        config |= {"client_secret": None, "private_key_jwt": {"key_file": tmp_path / "client.pem",
                                                             "algorithm": "ES256"}}

    async def scenario(bearer: BearerAuthenticator, asked: list[httpx.Request]) -> Any:
        return await bearer.authenticate(_request("opaque-1"))

    principal, asked = _run(lambda request: _good(), scenario, **config)
    assert isinstance(principal, Principal) and principal.subject == "alice"
    (request,) = asked
    form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
    assert (form["token"], form["token_type_hint"]) == ("opaque-1", "access_token")
    if method == "client_secret_basic":
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"gk:secret").decode()
        assert "client_secret" not in form
    elif method == "client_secret_post":
        assert (form["client_id"], form["client_secret"]) == ("gk", "secret")
        assert "authorization" not in request.headers
    else:
        assert "authorization" not in request.headers and "client_secret" not in form
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        claims = jwt.decode(form["client_assertion"], public_pem(key), algorithms=["ES256"],
                            audience=ISSUER, issuer="gk")  # RFC 7523 §3: aud = the issuer here
        assert claims["sub"] == "gk"


# Refusals an unauthenticated caller can have the issuer give for tokens it makes up.
_REFUSED_ANSWERS: dict[str, Callable[[], dict[str, Any]]] = {
    "inactive": lambda: {"active": False},
    "another-audience": lambda: _good(aud="another-api"),
    "expired": lambda: _good(exp=int(time.time()) - 3600),
    "refresh-token": lambda: _good(token_type="refresh_token"),
}


@pytest.mark.parametrize("refusal", list(_REFUSED_ANSWERS))
def test_made_up_tokens_never_evict_a_callers_active_answer(refusal: str) -> None:
    """An unauthenticated client sending one made-up token after another fills the cache with
    refusals; a caller's active answer must stay cached, or each of its requests costs the issuer
    a call again (and waits for a slot behind the made-up ones)."""
    def handler(request: httpx.Request) -> Any:
        token = parse_qs(request.content.decode())["token"][0]
        return _good() if token == "good" else _REFUSED_ANSWERS[refusal]()

    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> list[str]:
        outcomes = []
        principal = await bearer.authenticate(_request("good"))
        outcomes.append(principal.subject if principal else "none")
        for n in range(12):  # three times the cache
            try:
                await bearer.authenticate(_request(f"made-up-{n}"))
                outcomes.append("accepted")
            except GatekeeperError as exc:
                outcomes.append("refused" if exc.status == 401 else exc.code)
        principal = await bearer.authenticate(_request("good"))
        outcomes.append(principal.subject if principal else "none")
        return outcomes

    outcomes, asked = _run(handler, scenario, cache_size=4)
    assert outcomes == ["alice", *["refused"] * 12, "alice"]
    good_calls = [r for r in asked if parse_qs(r.content.decode())["token"] == ["good"]]
    assert len(good_calls) == 1


# JSON numbers no float holds (Python reads them as exact ints): math.isfinite raised
# OverflowError, which escaped as a 500 instead of the refusal (CWE-248).
@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("sign", [1, -1], ids=["huge", "minus-huge"])
def test_a_date_no_float_holds_is_an_invalid_claim(claim: str, sign: int) -> None:
    async def scenario(bearer: BearerAuthenticator, _: list[httpx.Request]) -> str:
        try:
            await bearer.authenticate(_request("opaque"))
        except GatekeeperError as exc:
            return exc.code
        return "accepted"

    huge: dict[str, Any] = {claim: sign * 10**400}
    code, _ = _run(lambda _: _good(**huge), scenario)
    assert code == "invalid_claim"
