"""gatekeeper/authn/certificate.py: the claim ``x509`` is the verified certificate's or nobody's,
and (``client_auth: principal``) a certificate alone is a caller."""

from __future__ import annotations

import asyncio

import pytest

from gatekeeper.authn.certificate import CertificateAuthenticator, CertificateClaims
from gatekeeper.errors import Unauthenticated
from gatekeeper.exchange import Exchange
from gatekeeper.peercert import ClientCertificate, parse
from gatekeeper.principal import Principal
from gatekeeper.request import CLIENT_CERTIFICATE
from gatekeeper.subjects import SubjectNamespaces
from tests.support.certs import TestCA

CA = TestCA()
SPIFFE = "spiffe://cluster.local/ns/shop/sa/orders"


def exchange(certificate: ClientCertificate | None) -> Exchange:
    scope: dict[str, object] = {"type": "http", "method": "GET", "path": "/", "headers": []}
    if certificate is not None:
        scope["extensions"] = {"tls": {CLIENT_CERTIFICATE: certificate}}
    return Exchange(scope, "/", "id", 0.0)


class Fixed:
    def __init__(self, principal: Principal | None) -> None:
        self.principal = principal

    async def authenticate(self, request: Exchange) -> Principal | None:
        return self.principal


def token_principal(**claims: object) -> Principal:
    return Principal(subject="alice", roles=("user",), claims={"sub": "alice", **claims}, via="bearer")


@pytest.mark.parametrize("with_certificate", [False, True],
                         ids=["without a certificate", "with a certificate"])
def test_a_tokens_own_x509_claim_never_reaches_the_policy(with_certificate: bool) -> None:
    certificate = parse(CA.issue("svc", dns=("real.internal",)).der) if with_certificate else None
    forged = token_principal(x509={"san_dns": ["payments.internal"]})
    principal = asyncio.run(CertificateClaims(Fixed(forged)).authenticate(exchange(certificate)))
    assert principal is not None
    if certificate is None:
        assert "x509" not in principal.claims
    else:
        assert principal.claims["x509"]["san_dns"] == ["real.internal"]
    assert principal.subject == "alice" and principal.claims["sub"] == "alice"


def test_claims_are_added_once_per_principal_and_certificate() -> None:
    """The decision and identity caches key on the principal object: the same one each time."""
    certificate = parse(CA.issue("svc", dns=("a.internal",)).der)
    claims = CertificateClaims(Fixed(token_principal()))
    first = asyncio.run(claims.authenticate(exchange(certificate)))
    assert asyncio.run(claims.authenticate(exchange(certificate))) is first


def test_no_credentials_stay_anonymous() -> None:
    certificate = parse(CA.issue("svc").der)
    assert asyncio.run(CertificateClaims(Fixed(None)).authenticate(exchange(certificate))) is None


@pytest.mark.parametrize(("field", "expected"), [
    ("subject", "CN=orders,O=Shop"), ("subject_cn", "orders"), ("san_uri", SPIFFE),
    ("san_dns", "orders.shop.internal"),
], ids=["the subject DN", "the common name", "the one URI SAN", "the one DNS SAN"])
def test_the_configured_field_names_the_certificate_caller(field: str, expected: str) -> None:
    certificate = parse(CA.issue("orders", organization="Shop", uris=(SPIFFE,),
                                 dns=("orders.shop.internal",)).der)
    authenticator = CertificateAuthenticator(field, SubjectNamespaces())  # type: ignore[arg-type]
    principal = asyncio.run(authenticator.authenticate(exchange(certificate)))
    assert principal is not None
    assert (principal.subject, principal.via) == (expected, "certificate")
    assert principal.claims["x509"]["san_uri"] == [SPIFFE]


@pytest.mark.parametrize("uris", [(), (SPIFFE, SPIFFE + "-b")], ids=["no URI SAN", "two URI SANs"])
def test_a_certificate_without_exactly_one_such_field_is_refused(uris: tuple[str, ...]) -> None:
    certificate = parse(CA.issue("x", uris=uris).der)
    with pytest.raises(Unauthenticated) as refused:
        asyncio.run(CertificateAuthenticator("san_uri", SubjectNamespaces()).authenticate(
            exchange(certificate)))
    assert refused.value.code == "certificate_without_principal"


def test_certificate_subjects_get_their_name_space() -> None:
    certificate = parse(CA.issue("orders", uris=(SPIFFE,)).der)
    namespaces = SubjectNamespaces({"https://idp.example.com": "", "x509": "x509#"})
    principal = asyncio.run(CertificateAuthenticator("san_uri", namespaces).authenticate(
        exchange(certificate)))
    assert principal is not None and principal.subject == "x509#" + SPIFFE


def test_without_a_certificate_it_is_not_mine() -> None:
    assert asyncio.run(CertificateAuthenticator("subject", SubjectNamespaces()).authenticate(
        exchange(None))) is None
