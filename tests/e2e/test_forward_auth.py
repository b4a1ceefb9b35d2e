"""/oauth2/auth: the same pipeline answers an ingress (here configured as Traefik ForwardAuth:
X-Forwarded-Uri and X-Forwarded-Method). nginx through a real nginx: test_forward_auth_nginx.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream
from tests.support.fakes import mint


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """The ingress (here: the test, from 127.0.0.1) is a trusted proxy."""
    return gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "traefik"})


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    return mint(issuer, "carol", claims={"email": "c@example.com", "groups": ["ops"]})


def ask(gk: Gatekeeper, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    with gk.client() as client:
        response = client.get("/oauth2/auth", headers=headers)
    return response.status_code, dict(response.headers)


def test_a_valid_token_gets_202_with_identity_headers(gatekeeper: Gatekeeper, token: str,
                                                      upstream: Upstream) -> None:
    before = len(upstream.recorder)
    status, headers = ask(gatekeeper, {"Authorization": f"Bearer {token}",
                                       "X-Forwarded-Uri": "/api/items?x=1",
                                       "X-Forwarded-Method": "POST"})
    assert status == 202
    assert headers["x-auth-request-user"] == "carol"
    assert headers["x-auth-request-email"] == "c@example.com"
    assert headers["x-auth-request-groups"] == "ops"
    assert len(upstream.recorder) == before  # an answer, never a proxied request


GET = {"X-Forwarded-Method": "GET"}


@pytest.mark.parametrize(("headers", "status"), [
    ({"X-Forwarded-Uri": "/api/items", **GET}, 401),
    ({"X-Original-URI": "/public/page", **GET}, 400),
    ({"X-Forwarded-Uri": "/public/page", **GET}, 202),
    ({"X-Forwarded-Uri": "/public/../api/items", **GET}, 400),
    ({"X-Forwarded-Uri": "/api/../public/page", **GET}, 400),
    ({"X-Forwarded-Uri": "/public/%2e%2e/api", **GET}, 400),
    ({**GET}, 400),
    ({"X-Forwarded-Uri": "/public/page"}, 400),
    ({"X-Forwarded-Uri": "/public/page", "X-Original-URL": "/api/items", **GET}, 400),
    ({"X-Forwarded-Uri": "/public/page", "X-Http-Method-Override": "DELETE", **GET}, 400),
    ({"X-Forwarded-Uri": "/public/page#/../../api/items", **GET}, 400),
    ({"X-Forwarded-Uri": "/api", "Authorization": "Bearer not.a.token", **GET}, 401),
], ids=["no token is 401", "nginx's X-Original-URI is not read for traefik",
        "a public path is 202 anonymously", "dot segments are refused (the app routes them as sent)",
        "dot segments cannot reach a public path",
        "an encoded dot segment is refused", "no original URI is 400",
        "no original method is 400, never a default GET", "a conflicting X-Original-URL is 400",
        "a conflicting method override is 400", "a raw # is 400", "a bad token is 401"])
def test_forward_auth_answers(gatekeeper: Gatekeeper, headers: dict[str, str], status: int) -> None:
    got, response_headers = ask(gatekeeper, headers)
    assert got == status
    if status == 202:
        assert "x-auth-request-user" not in response_headers


def test_identity_headers_from_the_client_do_not_come_back(gatekeeper: Gatekeeper) -> None:
    status, headers = ask(gatekeeper, {"X-Forwarded-Uri": "/public/x", "X-Auth-Request-User": "root",
                                       **GET})
    assert status == 202
    assert "x-auth-request-user" not in headers


def test_an_untrusted_peer_gets_no_answer_about_another_uri(
    gatekeeper_factory: Callable[..., Gatekeeper], token: str
) -> None:
    """oauth2-proxy CVE-2026-40575: X-Forwarded-Uri from anyone would let /admin pass as /public."""
    untrusted = gatekeeper_factory(forward_auth={"proxy": "traefik"})
    status, headers = ask(untrusted, {"Authorization": f"Bearer {token}",
                                      "X-Forwarded-Uri": "/public/x", **GET})
    assert status == 400
    assert "x-auth-request-user" not in headers


@pytest.fixture(scope="module")
def envoy(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """Envoy ext_authz (http_service, path_prefix /oauth2/auth) asks at the prefix + the
    original path, with the original method."""
    return gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "envoy"})


@pytest.mark.parametrize(("target", "method", "headers", "status"), [
    ("/oauth2/auth/public/page?x=1", "GET", {}, 202),
    ("/oauth2/auth/api/items", "POST", {}, 401),
    ("/oauth2/auth/public/../api/items", "GET", {}, 401),
    ("/oauth2/auth/api/items", "GET", {"X-Forwarded-Uri": "/public/page"}, 400),
    ("/oauth2/auth/public/page", "GET", {"X-HTTP-Method-Override": "DELETE"}, 400),
    ("/oauth2/auth", "GET", {}, 400),
], ids=["the original path follows the prefix", "a protected path is 401",
        "dot segments after the prefix are resolved", "a conflicting X-Forwarded-Uri is 400",
        "a conflicting method override is 400", "no original path is 400"])
def test_envoy_asks_with_the_original_path_after_the_prefix(
    envoy: Gatekeeper, upstream: Upstream, target: str, method: str, headers: dict[str, str],
    status: int,
) -> None:
    before = len(upstream.recorder)
    with envoy.client() as client:
        assert client.request(method, target, headers=headers).status_code == status
    assert len(upstream.recorder) == before  # an answer, never a proxied request
