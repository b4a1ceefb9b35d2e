"""Opaque access tokens from the real OpenID provider (panva oidc-provider, tests/oidc/provider.mjs,
with opaque tokens for the audience ``api`` and its introspection and revocation endpoints on),
checked by a running gatekeeper through the endpoint it discovers (RFC 7662, RFC 7009).

    long    answers cached up to an hour (the token lives 300 s): a revoked token passes until then
    short   answers cached 1 s: a token revoked at the provider is refused soon after
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Gatekeeper, Upstream
from tests.support.oidc import OidcProvider, code_flow_tokens, run_oidc_provider
from tests.support.poll import eventually

CALLBACK = "http://127.0.0.1:9/callback"  # never followed: the code is read off the redirect
API = "api"


@dataclass
class World:
    op: OidcProvider
    discovery: dict[str, Any]
    upstream: Upstream
    gks: dict[str, Gatekeeper]

    def get(self, via: str, token: str) -> httpx.Response:
        with self.gks[via].client() as client:
            return client.get("/private", headers={"Authorization": f"Bearer {token}"})

    def tokens(self, username: str) -> dict[str, Any]:
        """A fresh login of ``username``: the token endpoint's answer (authorization code + PKCE)."""
        return code_flow_tokens(self.op, username, CALLBACK)

    def revoke(self, token: str) -> None:
        with self.op.http_client() as backend:
            backend.post(self.discovery["revocation_endpoint"],
                         auth=(self.op.client_id, self.op.client_secret),
                         data={"token": token, "token_type_hint": "access_token"}).raise_for_status()


@pytest.fixture(scope="module")
def world(upstream: Upstream, gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[World]:
    env = {"OIDC_JWT_ACCESS_TOKEN_AUDIENCE": API, "OIDC_ACCESS_TOKEN_FORMAT": "opaque",
           "OIDC_INTROSPECTION": "1"}
    with run_oidc_provider(redirect_uris=[CALLBACK], env=env) as op:
        def issuer(max_ttl: float) -> dict[str, Any]:
            return {"issuers": [{"issuer": op.issuer, "audience": [API], "algorithms": ["RS256"],
                                 "introspection": {"client_id": op.client_id,
                                                   "client_secret": op.client_secret,
                                                   "max_ttl_seconds": max_ttl}}]}
        gks = {"long": gatekeeper_factory(auth=issuer(3600)),
               "short": gatekeeper_factory(auth=issuer(1))}
        yield World(op, op.discovery(), upstream, gks)


def test_an_opaque_token_is_introspected_and_mapped(world: World) -> None:
    tokens = world.tokens("alice")
    assert tokens["access_token"].count(".") != 2  # opaque indeed
    response = world.get("long", tokens["access_token"])
    assert response.status_code == 200
    seen = world.upstream.recorder.last
    alice = world.op.users["alice"]
    assert seen.header("x-auth-request-user") == alice.sub
    assert seen.header("x-auth-request-groups") == ",".join(alice.roles)


def test_a_token_revoked_at_the_provider_passes_until_the_cache_ttl_then_not(world: World) -> None:
    token = world.tokens("bob")["access_token"]
    assert world.get("long", token).status_code == 200
    assert world.get("short", token).status_code == 200
    world.revoke(token)
    assert world.get("long", token).status_code == 200  # cached: the provider is not asked again
    assert eventually(lambda: world.get("short", token).status_code == 401, seconds=20)


def test_a_refresh_token_is_not_an_access_token(world: World) -> None:
    refresh = world.tokens("alice").get("refresh_token")
    assert refresh is not None
    response = world.get("long", refresh)
    # oidc-provider names no token_type for a refresh token and gives it no aud: refused as
    # having no audience of ours (tests/e2e/test_introspection.py covers the typed cases).
    assert (response.status_code, response.json()["error"]) == (401, "missing_claim")
