"""gatekeeper/peercert.py: a verified client certificate as the claims ``r.claims.x509``."""

from __future__ import annotations

from gatekeeper.peercert import CertificateCache, parse
from tests.support.certs import TestCA


def test_the_claims_name_the_subject_the_issuer_and_each_kind_of_san() -> None:
    ca = TestCA("Claims CA")
    issued = ca.issue("svc-a", organization="Example", dns=("a.internal", "b.internal"),
                      uris=("spiffe://cluster.local/ns/x/sa/a",), emails=("a@example.com",),
                      ips=("10.0.0.7",))
    certificate = parse(issued.der)
    claims = certificate.claims
    assert claims["subject"] == "CN=svc-a,O=Example"
    assert claims["subject_cn"] == "svc-a"
    assert claims["issuer"] == "CN=Claims CA"
    assert claims["san_dns"] == ["a.internal", "b.internal"]
    assert claims["san_uri"] == ["spiffe://cluster.local/ns/x/sa/a"]
    assert claims["san_email"] == ["a@example.com"]
    assert claims["san_ip"] == ["10.0.0.7"]
    assert claims["fingerprint_sha256"] == issued.fingerprint
    assert isinstance(claims["not_after"], int) and isinstance(claims["serial"], str)


def test_a_certificate_without_sans_has_empty_lists() -> None:
    claims = parse(TestCA().issue("bare").der).claims
    assert [claims[k] for k in ("san_dns", "san_uri", "san_email", "san_ip")] == [[], [], [], []]


def test_the_cache_returns_the_same_value_for_the_same_certificate_and_stays_bounded() -> None:
    ca = TestCA()
    cache = CertificateCache(size=2)
    ders = [ca.issue(f"c{i}").der for i in range(3)]
    first = cache.get(ders[0])
    assert cache.get(ders[0]) is first
    cache.get(ders[1])
    cache.get(ders[2])  # evicts the least recently used: c0
    assert cache.get(ders[0]) is not first and cache.get(ders[0]) == first
