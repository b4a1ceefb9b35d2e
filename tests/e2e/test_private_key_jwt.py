"""private_key_jwt (RFC 7523 §2.2) with the real provider (panva oidc-provider, tests/oidc/provider.mjs
with ``OIDC_CLIENT_JWKS``: the client has no secret and authenticates with a JWT signed by a key
whose public half the provider holds), through running gatekeepers:

    rsa        introspection of opaque tokens, RS256, kid = the key's RFC 7638 thumbprint, aud = issuer
    ec         the same with ES256, a configured kid and aud = the introspection endpoint (Okta's way)
    stranger   a key the provider does not know: the provider refuses the client, so 503
    login      browser login whose code exchange and refresh authenticate with PS256

The provider checks each assertion's signature, iss/sub, aud, exp and that its jti is new.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gatekeeper.pemkeys import public_jwk
from tests.conftest import Gatekeeper, Upstream
from tests.support.assertion import PrivateKey, new_key, private_pem
from tests.support.oidc import OidcProvider, code_flow_tokens, login_with_http_client, run_oidc_provider
from tests.support.servers import free_port

CALLBACK = "http://127.0.0.1:9/callback"  # never followed: the code is read off the redirect
API = "api"
ACCESS_TOKEN_TTL = 4  # short: the login's session refreshes within the module
SESSION_SECRET = "e2e-session-secret-0123456789abcdef-xyz"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class World:
    op: OidcProvider
    discovery: dict[str, Any]
    rsa: PrivateKey
    upstream: Upstream
    gks: dict[str, Gatekeeper]
    login_port: int

    def get(self, via: str, token: str) -> httpx.Response:
        with self.gks[via].client() as client:
            return client.get("/private", headers={"Authorization": f"Bearer {token}"})

    def tokens(self, username: str) -> dict[str, Any]:
        """A fresh login of ``username``, the test itself authenticating with the RSA key."""
        def assertion() -> dict[str, str]:
            now = int(time.time())
            signed = jwt.encode({"iss": self.op.client_id, "sub": self.op.client_id,
                                 "aud": self.op.issuer, "jti": secrets.token_urlsafe(16),
                                 "iat": now, "exp": now + 60}, self.rsa, algorithm="RS256",
                                headers={"kid": public_jwk(self.rsa.public_key(), "RS256")["kid"]})
            return {"client_id": self.op.client_id, "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": signed}

        return code_flow_tokens(self.op, username, CALLBACK, scope="openid", client_form=assertion)


def _introspecting(op: OidcProvider, path: Path, algorithm: str, **key: Any) -> dict[str, Any]:
    return {"issuers": [{"issuer": op.issuer, "audience": [API], "algorithms": ["RS256"],
                         "introspection": {"client_id": op.client_id, "auth_method": "private_key_jwt",
                                           "private_key_jwt": {"key_file": str(path),
                                                               "algorithm": algorithm, **key}}}]}


@pytest.fixture(scope="module")
def world(upstream: Upstream, gatekeeper_factory: Callable[..., Gatekeeper],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    keys = tmp_path_factory.mktemp("client-keys")
    rsa, ec, stranger = new_key("RS256"), new_key("ES256"), new_key("RS256")
    for name, key in (("rsa.pem", rsa), ("ec.pem", ec), ("stranger.pem", stranger)):
        (keys / name).write_bytes(private_pem(key))
    # What the provider knows: the RSA key under its thumbprint, the EC key under a kid of ours.
    jwks = {"keys": [{k: v for k, v in public_jwk(rsa.public_key(), "RS256").items() if k != "alg"},
                     {**public_jwk(ec.public_key(), "ES256"), "kid": "ec-1"}]}
    login_port = free_port()
    login_base = f"http://127.0.0.1:{login_port}"
    env = {"OIDC_JWT_ACCESS_TOKEN_AUDIENCE": API, "OIDC_ACCESS_TOKEN_FORMAT": "opaque",
           "OIDC_INTROSPECTION": "1", "OIDC_CLIENT_JWKS": json.dumps(jwks)}
    with run_oidc_provider(redirect_uris=[CALLBACK, f"{login_base}/oauth2/callback"], env=env,
                           access_token_ttl=ACCESS_TOKEN_TTL) as op:
        gks = {
            "rsa": gatekeeper_factory(auth=_introspecting(op, keys / "rsa.pem", "RS256")),
            "ec": gatekeeper_factory(auth=_introspecting(op, keys / "ec.pem", "ES256", kid="ec-1",
                                                         audience="endpoint")),
            "stranger": gatekeeper_factory(auth=_introspecting(op, keys / "stranger.pem", "RS256")),
            "login": gatekeeper_factory(
                listen=f"127.0.0.1:{login_port}",
                oidc={"issuer": op.issuer, "client_id": op.client_id,
                      "token_auth_method": "private_key_jwt",
                      "private_key_jwt": {"key_file": str(keys / "rsa.pem"), "algorithm": "PS256"},
                      # The access token is for the API (opaque), not for userinfo.
                      "userinfo": False, "scopes": ["openid"],
                      "redirect_url": f"{login_base}/oauth2/callback", "refresh_margin_seconds": 1},
                session={"secret": SESSION_SECRET, "cookie_secure": False}),
        }
        yield World(op, op.discovery(), rsa, upstream, gks, login_port)


@pytest.mark.parametrize("via", ["rsa", "ec"], ids=["RS256, aud = issuer, kid = thumbprint",
                                                    "ES256, aud = endpoint, kid configured"])
def test_an_opaque_token_is_introspected_with_a_client_assertion(world: World, via: str) -> None:
    for username in ("alice", "bob"):  # two calls: two assertions, each jti new to the provider
        token = world.tokens(username)["access_token"]
        assert token.count(".") != 2  # opaque indeed
        response = world.get(via, token)
        assert response.status_code == 200, response.text
        assert world.upstream.recorder.last.header("x-auth-request-user") == world.op.users[username].sub


def test_readiness_names_the_key_that_signs(world: World) -> None:
    gk = world.gks["rsa"]
    with httpx.Client(trust_env=False, timeout=10) as client:
        checks = client.get(f"{gk.admin_url}/readyz").json()["checks"]
    kid = public_jwk(world.rsa.public_key(), "RS256")["kid"]
    assert checks["client_keys"] == {"ok": True, "detail": f"gatekeeper: signing with {kid}"}


def test_a_key_the_provider_does_not_know_is_refused_there_so_503(world: World) -> None:
    token = world.tokens("alice")["access_token"]
    response = world.get("stranger", token)
    assert response.status_code == 503
    assert world.get("rsa", token).status_code == 200  # the token itself is good


def test_the_login_exchanges_the_code_and_refreshes_with_private_key_jwt(world: World) -> None:
    gk = world.gks["login"]
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10,
                      headers={"accept": "text/html"}) as browser:
        first = browser.get("/hello")
        assert first.status_code == 302, first.text
        callback = login_with_http_client(browser, first.headers["location"], "alice", "alice-password")
        landed = browser.get(callback)  # the code exchange: a client assertion at the token endpoint
        assert landed.status_code == 302, landed.text
        before = browser.get("/oauth2/userinfo").json()["expires_at"]
        time.sleep(ACCESS_TOKEN_TTL + 0.5)  # the access token is due: the refresh authenticates too
        page = browser.get("/hello")
        assert page.status_code == 200, page.text
        assert browser.get("/oauth2/userinfo").json()["expires_at"] > before
