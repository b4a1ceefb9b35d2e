"""Certificate-bound tokens (RFC 8705 §3) through a real gatekeeper process on 127.0.0.1: a token
whose ``cnf.x5t#S256`` names a client certificate passes only with that certificate — presented
in gatekeeper's own mTLS handshake, or forwarded by a trusted front proxy in the configured
header (which the app never receives). Certificates are made in the test (tests/support/certs.py).
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream
from tests.support.certs import Issued, TestCA, write_pair
from tests.support.fakes import mint


def x5t(issued: Issued) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(issued.der).digest()).rstrip(b"=").decode()


def escaped_pem(issued: Issued) -> str:  # nginx $ssl_client_escaped_cert
    return quote(x509.load_der_x509_certificate(issued.der).public_bytes(
        serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def alice(ca: TestCA) -> Issued:
    return ca.issue("alice")


@pytest.fixture(scope="module")
def bound_token(issuer: DevIssuer, alice: Issued) -> str:
    return mint(issuer, "alice", claims={"cnf": {"x5t#S256": x5t(alice)}})


def get(gk: Gatekeeper, context: ssl.SSLContext | None, token: str,
        headers: dict[str, str] | None = None) -> httpx.Response:
    base = gk.url.replace("http://", "https://") if context is not None else gk.url
    with httpx.Client(base_url=base, verify=context or True, trust_env=False, timeout=10) as c:
        return c.get("/echo/bound", headers={"Authorization": f"Bearer {token}", **(headers or {})})


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_over_mtls_only_the_bound_certificate_passes(
        gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, ca: TestCA,
        alice: Issued, bound_token: str, tmp_path: Path) -> None:
    cert, key = write_pair(tmp_path, ca.server())
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    gk = gatekeeper_factory(tls={"cert_file": str(cert), "key_file": str(key),
                                 "client_ca_file": str(tmp_path / "ca.crt"),
                                 "client_certificate": "optional"})
    right = ca.client_context(alice, tmp_path / "alice")
    wrong = ca.client_context(ca.issue("mallory"), tmp_path / "mallory")  # same CA, verifies
    before = len(upstream.recorder)
    assert get(gk, right, bound_token).status_code == 200
    assert len(upstream.recorder) == before + 1
    # The token is cached now: the binding is still checked on each request.
    refused(get(gk, wrong, bound_token), "certificate_mismatch")
    refused(get(gk, ca.client_context(), bound_token), "certificate_required")
    assert len(upstream.recorder) == before + 1
    assert get(gk, right, bound_token).status_code == 200


@pytest.fixture(scope="module")
def behind_proxy(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """Plain HTTP behind a front proxy on 127.0.0.1 that terminated mTLS (nginx's spelling)."""
    return gatekeeper_factory(trusted_proxies=["127.0.0.1"],
                              auth={"client_certificate_header": "X-SSL-Client-Cert"})


def test_a_trusted_front_proxys_forwarded_certificate_binds_and_never_reaches_the_app(
        behind_proxy: Gatekeeper, upstream: Upstream, ca: TestCA, alice: Issued,
        bound_token: str) -> None:
    response = get(behind_proxy, None, bound_token, {"X-SSL-Client-Cert": escaped_pem(alice)})
    assert response.status_code == 200, response.text
    assert upstream.recorder.last.header("x-ssl-client-cert") is None
    assert not [n for n in upstream.recorder.last.header_names
                if n.lower().replace("_", "-") == "x-ssl-client-cert"]
    refused(get(behind_proxy, None, bound_token,
                {"X-SSL-Client-Cert": escaped_pem(ca.issue("mallory"))}), "certificate_mismatch")
    refused(get(behind_proxy, None, bound_token), "certificate_required")


def test_the_header_twice_is_refused(behind_proxy: Gatekeeper, alice: Issued,
                                     bound_token: str) -> None:
    headers = httpx.Headers([("Authorization", f"Bearer {bound_token}"),
                             ("X-SSL-Client-Cert", escaped_pem(alice)),
                             ("X-SSL-Client-Cert", escaped_pem(alice))])
    response = httpx.get(behind_proxy.url + "/echo/bound", headers=headers, timeout=10)
    refused(response, "duplicate_certificate_header")


def test_the_header_from_an_untrusted_peer_binds_nothing(
        gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, alice: Issued,
        bound_token: str) -> None:
    gk = gatekeeper_factory(trusted_proxies=["10.0.0.0/8"],
                            auth={"client_certificate_header": "X-SSL-Client-Cert"})
    before = len(upstream.recorder)
    refused(get(gk, None, bound_token, {"X-SSL-Client-Cert": escaped_pem(alice)}),
            "certificate_required")
    assert len(upstream.recorder) == before




@pytest.fixture(scope="module")
def forward_auth(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    return gatekeeper_factory(trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "traefik"},
                              auth={"client_certificate_header": "X-SSL-Client-Cert"})


@pytest.mark.parametrize(("who", "status"), [("alice", 202), ("mallory", 401), (None, 401)],
                         ids=["the bound certificate", "another certificate", "no certificate"])
def test_forward_auth_checks_the_certificate_the_ingress_forwards(
        forward_auth: Gatekeeper, ca: TestCA, alice: Issued, bound_token: str, who: str | None,
        status: int) -> None:
    """The ingress asks /oauth2/auth with the client's certificate on the subrequest (nginx:
    ``proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert``, docs/tls.md)."""
    headers = {"Authorization": f"Bearer {bound_token}", "X-Forwarded-Uri": "/api/items",
               "X-Forwarded-Method": "GET"}
    if who is not None:
        headers["X-SSL-Client-Cert"] = escaped_pem(alice if who == "alice" else ca.issue(who))
    with forward_auth.client() as client:
        assert client.get("/oauth2/auth", headers=headers).status_code == status
