"""gatekeeper/authn/certbound.py: a ``cnf.x5t#S256`` token (RFC 8705 §3) is good only with the
certificate it names — from this connection's mTLS handshake, or forwarded by a trusted front
proxy in the configured header; the acceptance-style attack table."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gatekeeper.authn.certbound import CertificateBinding, HeaderFormat, bound_thumbprint
from gatekeeper.errors import InvalidToken
from gatekeeper.peercert import parse
from gatekeeper.request import CLIENT_CERTIFICATE, RequestView
from tests.support.certs import TestCA

CA = TestCA()
ALICE = CA.issue("alice").der
MALLORY = CA.issue("mallory").der
PROXY = "10.0.0.5"


def x5t(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def request(*, tls: bytes | None = None, peer: str = "192.0.2.9",
            headers: list[tuple[bytes, bytes]] | None = None) -> RequestView:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/", "client": (peer, 1),
                             "headers": headers or []}
    if tls is not None:
        scope["extensions"] = {"tls": {CLIENT_CERTIFICATE: parse(tls)}}
    return RequestView(scope, "/")


def binding(header: str | None = None, header_format: HeaderFormat = "pem") -> CertificateBinding:
    return CertificateBinding(header, header_format, lambda peer: peer == PROXY)


def accepted(claims: dict[str, Any], req: RequestView, bind: CertificateBinding) -> str:
    """"ok", or the machine code of the 401 (as bearer.py applies the two steps)."""
    try:
        thumbprint = bound_thumbprint(claims)
        if thumbprint is not None:
            bind.check(req, thumbprint)
    except InvalidToken as exc:
        assert exc.status == 401
        return exc.code
    return "ok"


BOUND = {"sub": "alice", "cnf": {"x5t#S256": x5t(ALICE)}}
NGINX = "X-SSL-Client-Cert"
ESCAPED = quote(pem(ALICE)).encode()  # $ssl_client_escaped_cert

CASES: list[tuple[str, dict[str, Any], RequestView, CertificateBinding, str]] = [
    ("mTLS: the right certificate", BOUND, request(tls=ALICE), binding(), "ok"),
    ("mTLS: another certificate of the same CA", BOUND, request(tls=MALLORY), binding(),
     "certificate_mismatch"),
    ("mTLS: no certificate", BOUND, request(), binding(), "certificate_required"),
    ("unbound token without a certificate", {"sub": "alice"}, request(), binding(), "ok"),
    ("cnf with x5t#S256 and jkt", {"cnf": {"x5t#S256": x5t(ALICE), "jkt": "x"}},
     request(tls=ALICE), binding(), "bound_token"),
    ("cnf jkt only (DPoP)", {"cnf": {"jkt": x5t(ALICE)}}, request(tls=ALICE), binding(),
     "bound_token"),
    ("cnf not an object", {"cnf": x5t(ALICE)}, request(tls=ALICE), binding(), "bound_token"),
    ("cnf empty", {"cnf": {}}, request(tls=ALICE), binding(), "bound_token"),
    ("cnf null", {"cnf": None}, request(tls=ALICE), binding(), "bound_token"),
    ("x5t#S256 hex, not base64url", {"cnf": {"x5t#S256": hashlib.sha256(ALICE).hexdigest()}},
     request(tls=ALICE), binding(), "bound_token"),
    ("x5t#S256 padded", {"cnf": {"x5t#S256": x5t(ALICE) + "="}}, request(tls=ALICE), binding(),
     "bound_token"),
    ("x5t#S256 a number", {"cnf": {"x5t#S256": 1}}, request(tls=ALICE), binding(), "bound_token"),
    ("x5t (SHA-1) instead of x5t#S256", {"cnf": {"x5t": x5t(ALICE)}}, request(tls=ALICE),
     binding(), "bound_token"),
    ("proxy header: the right certificate", BOUND,
     request(peer=PROXY, headers=[(b"x-ssl-client-cert", ESCAPED)]), binding(NGINX), "ok"),
    ("proxy header: another certificate", BOUND,
     request(peer=PROXY, headers=[(b"x-ssl-client-cert", quote(pem(MALLORY)).encode())]),
     binding(NGINX), "certificate_mismatch"),
    ("proxy header from an untrusted peer", BOUND,
     request(headers=[(b"x-ssl-client-cert", ESCAPED)]), binding(NGINX), "certificate_required"),
    ("proxy header from an untrusted peer, mTLS of another certificate", BOUND,
     request(tls=MALLORY, headers=[(b"x-ssl-client-cert", ESCAPED)]), binding(NGINX),
     "certificate_mismatch"),
    ("proxy header duplicated", BOUND,
     request(peer=PROXY, headers=[(b"x-ssl-client-cert", ESCAPED)] * 2), binding(NGINX),
     "duplicate_certificate_header"),
    ("proxy header twice, the second spelled with _", BOUND,
     request(peer=PROXY, headers=[(b"x-ssl-client-cert", ESCAPED),
                                  (b"x_ssl_client_cert", quote(pem(MALLORY)).encode())]),
     binding(NGINX), "duplicate_certificate_header"),
    ("trusted proxy without the header: its own TLS certificate does not count", BOUND,
     request(peer=PROXY, tls=ALICE), binding(NGINX), "certificate_required"),
    ("proxy header with two PEM certificates", BOUND,
     request(peer=PROXY, headers=[(b"x-ssl-client-cert",
                                   quote(pem(ALICE) + pem(MALLORY)).encode())]),
     binding(NGINX), "bad_certificate_header"),
    ("RFC 9440 Client-Cert: right", BOUND,
     request(peer=PROXY, headers=[(b"client-cert", b":" + base64.b64encode(ALICE) + b":")]),
     binding("Client-Cert", "rfc9440"), "ok"),
    ("RFC 9440 Client-Cert: not a byte sequence", BOUND,
     request(peer=PROXY, headers=[(b"client-cert", base64.b64encode(ALICE))]),
     binding("Client-Cert", "rfc9440"), "bad_certificate_header"),
    ("XFCC Hash: right", BOUND,
     request(peer=PROXY, headers=[(b"x-forwarded-client-cert",
                                   b'By=spiffe://a;Hash=' + hashlib.sha256(ALICE).hexdigest().encode()
                                   + b';Subject="CN=alice,O=x";URI=')]),
     binding("X-Forwarded-Client-Cert", "xfcc"), "ok"),
    ("XFCC Cert: right", BOUND,
     request(peer=PROXY, headers=[(b"x-forwarded-client-cert", b'Cert="' + ESCAPED + b'"')]),
     binding("X-Forwarded-Client-Cert", "xfcc"), "ok"),
    ("XFCC Hash and Cert disagree", BOUND,
     request(peer=PROXY, headers=[(b"x-forwarded-client-cert",
                                   b"Hash=" + hashlib.sha256(MALLORY).hexdigest().encode()
                                   + b';Cert="' + ESCAPED + b'"')]),
     binding("X-Forwarded-Client-Cert", "xfcc"), "bad_certificate_header"),
    ("XFCC two elements (APPEND_FORWARD)", BOUND,
     request(peer=PROXY, headers=[(b"x-forwarded-client-cert",
                                   b"Hash=" + hashlib.sha256(MALLORY).hexdigest().encode() + b",Hash="
                                   + hashlib.sha256(ALICE).hexdigest().encode())]),
     binding("X-Forwarded-Client-Cert", "xfcc"), "bad_certificate_header"),
    ("XFCC unterminated quote", BOUND,
     request(peer=PROXY, headers=[(b"x-forwarded-client-cert", b'Cert="' + ESCAPED)]),
     binding("X-Forwarded-Client-Cert", "xfcc"), "bad_certificate_header"),
]


@pytest.mark.parametrize(("claims", "req", "bind", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_certificate_bound_token_attack_table(claims: dict[str, Any], req: RequestView,
                                               bind: CertificateBinding, expected: str) -> None:
    assert accepted(claims, req, bind) == expected


def test_a_kept_digest_is_the_values_own_and_a_refused_value_is_never_kept() -> None:
    """Forwarded values are parsed once and kept: the next request with the same value gets the
    same digest (so a token bound to another certificate still fails), a bad value fails again."""
    bind = binding(NGINX)
    good = request(peer=PROXY, headers=[(b"x-ssl-client-cert", ESCAPED)])
    bad = request(peer=PROXY, headers=[(b"x-ssl-client-cert", b"not%20a%20certificate")])
    assert accepted(BOUND, good, bind) == "ok"
    assert accepted({"cnf": {"x5t#S256": x5t(MALLORY)}}, good, bind) == "certificate_mismatch"
    assert accepted(BOUND, good, bind) == "ok"
    for _ in range(2):
        assert accepted(BOUND, bad, bind) == "bad_certificate_header"
