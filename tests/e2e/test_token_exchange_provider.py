"""Token exchange for the app (RFC 8693) with the real OpenID provider (panva oidc-provider,
tests/oidc/provider.mjs, JWT access tokens for ``api`` and a token-exchange grant registered by
the fixture), through a running gatekeeper that discovers the provider's token endpoint.

    the app of /orders/* gets a JWT the provider signed for ``orders-api`` (checked against the
    provider's JWKS), about the caller; the client's own copies of the header never arrive;
    repeated requests are served from the cache (the provider counts its exchange calls);
    an audience the provider will not issue for: 403; the provider gone: 503 on /orders/*
    while a route without exchange keeps answering 200 (its keys are cached).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import Gatekeeper, Upstream
from tests.support.oidc import OidcProvider, code_flow_tokens, run_oidc_provider

CALLBACK = "http://127.0.0.1:9/callback"  # never followed: the code is read off the redirect
API = "api"
ORDERS = "orders-api"
HEADER = "x-auth-request-access-token"
ENV = {"OIDC_JWT_ACCESS_TOKEN_AUDIENCE": API,
       "OIDC_TOKEN_EXCHANGE_AUDIENCES": json.dumps([ORDERS, "billing-api"])}


def _config(op: OidcProvider) -> dict[str, Any]:
    return {"auth": {"issuers": [{"issuer": op.issuer, "audience": [API], "algorithms": ["RS256"],
                                 "token_exchange": {"client_id": op.client_id,
                                                    "client_secret": op.client_secret}}]},
            "token_exchange": [{"paths": ["/orders/*"], "audience": ORDERS},
                               {"paths": ["/elsewhere/*"], "audience": "unknown-api"}]}


def _exchanges(op: OidcProvider) -> int:
    with op.http_client() as client:
        count: int = client.get(f"{op.issuer}/test/token-exchange/count").raise_for_status().json()["count"]
        return count


def _get(gk: Gatekeeper, path: str, token: str, *extra: tuple[str, str]) -> httpx.Response:
    with gk.client() as client:
        return client.get(path, headers=[("Authorization", f"Bearer {token}"), *extra])


@dataclass
class World:
    op: OidcProvider
    gk: Gatekeeper
    upstream: Upstream


@pytest.fixture(scope="module")
def world(upstream: Upstream, gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[World]:
    with run_oidc_provider(redirect_uris=[CALLBACK], env=ENV) as op:
        yield World(op, gatekeeper_factory(**_config(op)), upstream)


def test_the_app_gets_a_token_the_provider_signed_for_its_audience(world: World) -> None:
    alice = world.op.users["alice"]
    token = code_flow_tokens(world.op, "alice", CALLBACK)["access_token"]
    forged = [("X-Auth-Request-Access-Token", "forged"), ("x_auth_request_access_token", "forged")]
    response = _get(world.gk, "/orders/42", token, *forged)
    assert response.status_code == 200, response.text
    [exchanged] = world.upstream.recorder.last.header_values(HEADER)
    assert exchanged not in ("forged", token)
    with world.op.http_client() as client:
        keys = jwt.PyJWKSet.from_dict(client.get(world.op.discovery()["jwks_uri"]).json())
    header = jwt.get_unverified_header(exchanged)
    [key] = [k for k in keys.keys if k.key_id == header["kid"]]
    claims = jwt.decode(exchanged, key.key, algorithms=["RS256"], audience=ORDERS,
                        issuer=world.op.issuer)
    assert claims["sub"] == alice.sub
    assert not [v for n, v in world.upstream.recorder.last.headers if v == b"forged"]


def test_repeated_requests_are_served_from_the_cache(world: World) -> None:
    token = code_flow_tokens(world.op, "bob", CALLBACK)["access_token"]
    before = _exchanges(world.op)
    seen = []
    for _ in range(3):
        assert _get(world.gk, "/orders/1", token).status_code == 200
        seen += world.upstream.recorder.last.header_values(HEADER)
    assert len(set(seen)) == 1 and len(seen) == 3
    assert _exchanges(world.op) == before + 1
    # Another caller's token is another exchange.
    other = code_flow_tokens(world.op, "alice", CALLBACK)["access_token"]
    assert _get(world.gk, "/orders/1", other).status_code == 200
    assert world.upstream.recorder.last.header_values(HEADER) != seen[:1]
    assert _exchanges(world.op) == before + 2


def test_an_audience_the_provider_will_not_issue_for_is_403(world: World) -> None:
    token = code_flow_tokens(world.op, "alice", CALLBACK)["access_token"]
    world.upstream.recorder.clear()
    response = _get(world.gk, "/elsewhere/x", token)
    assert (response.status_code, response.json()["error"]) == (403, "token_exchange_invalid_target")
    assert len(world.upstream.recorder) == 0


def test_with_the_provider_gone_only_the_exchange_route_fails(
    upstream: Upstream, gatekeeper_factory: Callable[..., Gatekeeper],
) -> None:
    with run_oidc_provider(redirect_uris=[CALLBACK], env=ENV) as op:
        gk = gatekeeper_factory(**_config(op))
        token = code_flow_tokens(op, "alice", CALLBACK)["access_token"]
        assert _get(gk, "/other", token).status_code == 200  # its keys are fetched and cached
        op.process.stop()
        down = _get(gk, "/orders/1", token)
        assert (down.status_code, down.json()["error"]) == (503, "token_exchange_unavailable")
        assert _get(gk, "/other", token).status_code == 200
