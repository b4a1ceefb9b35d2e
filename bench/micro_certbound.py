"""µs per request for certificate-bound tokens (RFC 8705, gatekeeper/authn/certbound.py), in process.

What BearerAuthenticator adds per request to a token it already verified (cached or not): for a
token without ``cnf``, one dict membership test; for a bound one, reading ``cnf.x5t#S256`` and
comparing it with the presented certificate's SHA-256, taken from

    mtls      the certificate gatekeeper's handshake verified (already parsed per connection)
    pem       a trusted proxy's X-SSL-Client-Cert (nginx $ssl_client_escaped_cert): percent-
              decode, base64-decode the PEM, SHA-256 of the DER — every request
    rfc9440   Client-Cert :base64 DER:
    xfcc-hash Envoy x-forwarded-client-cert with Hash= only
    xfcc-cert the same with Cert= (URL-encoded PEM) too, both compared

A forwarded header's digest is kept per header value (an LRU of 1,024): the rows above are a
client sending its certificate again; the "first sight" rows time the parse a new value costs.

Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls, in the process's CPU
time (the least disturbed run on a shared machine); bounded by count, a few seconds in all.

    .venv/bin/python bench/micro_certbound.py [--number 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
import time
import timeit
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gatekeeper.authn.certbound import (
    CertificateBinding,
    _pem_digest,
    _rfc9440_digest,
    _xfcc_digest,
    bound_thumbprint,
)
from gatekeeper.peercert import parse
from gatekeeper.request import CLIENT_CERTIFICATE, RequestView
from tests.support.certs import TestCA

PROXY = "10.0.0.5"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    der = TestCA().issue("alice").der
    digest = hashlib.sha256(der).digest()
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    claims: dict[str, Any] = {"sub": "alice", "cnf": {
        "x5t#S256": base64.urlsafe_b64encode(digest).rstrip(b"=").decode()}}
    unbound: dict[str, Any] = {"sub": "alice"}

    def request(peer: str, headers: list[tuple[bytes, bytes]], tls: bool = False) -> RequestView:
        scope: dict[str, Any] = {"type": "http", "method": "GET", "path": "/",
                                 "client": (peer, 1), "headers": headers}
        if tls:
            scope["extensions"] = {"tls": {CLIENT_CERTIFICATE: parse(der)}}
        return RequestView(scope, "/")

    cases = {
        "unbound token (the `cnf` test)": (unbound, CertificateBinding(None, "pem", bool),
                                           request("192.0.2.1", [])),
        "mtls": (claims, CertificateBinding(None, "pem", bool), request("192.0.2.1", [], True)),
        "pem": (claims, CertificateBinding("X-SSL-Client-Cert", "pem", lambda p: p == PROXY),
                request(PROXY, [(b"x-ssl-client-cert", quote(pem).encode())])),
        "rfc9440": (claims, CertificateBinding("Client-Cert", "rfc9440", lambda p: p == PROXY),
                    request(PROXY, [(b"client-cert", b":" + base64.b64encode(der) + b":")])),
        "xfcc-hash": (claims, CertificateBinding("X-Forwarded-Client-Cert", "xfcc",
                                                 lambda p: p == PROXY),
                      request(PROXY, [(b"x-forwarded-client-cert",
                                       b"Hash=" + digest.hex().encode() + b";Subject=\"CN=alice\"")])),
        "xfcc-cert": (claims, CertificateBinding("X-Forwarded-Client-Cert", "xfcc",
                                                 lambda p: p == PROXY),
                      request(PROXY, [(b"x-forwarded-client-cert",
                                       b"Hash=" + digest.hex().encode() + b';Cert="'
                                       + quote(pem).encode() + b'"')])),
    }
    for name, (token_claims, binding, req) in cases.items():
        def check(c: dict[str, Any] = token_claims, b: CertificateBinding = binding,
                  r: RequestView = req) -> None:
            if "cnf" in c:  # as BearerAuthenticator.authenticate does
                thumbprint = bound_thumbprint(c)
                if thumbprint is not None:
                    b.check(r, thumbprint)
        check()  # raises if the case is wrong: a benchmark of a refusal would mislead
        best = min(timeit.repeat(check, timer=time.process_time, number=args.number,
                                 repeat=args.repeat))
        print(f"| {name} | {best / args.number * 1e6:.2f} |")
    escaped = quote(pem).encode()
    misses = {
        "first sight: pem": lambda: _pem_digest(unquote_to_bytes(escaped)),
        "first sight: rfc9440": lambda: _rfc9440_digest(b":" + base64.b64encode(der) + b":"),
        "first sight: xfcc-hash": lambda: _xfcc_digest(
            b"Hash=" + digest.hex().encode() + b';Subject="CN=alice"'),
        "first sight: xfcc-cert": lambda: _xfcc_digest(
            b"Hash=" + digest.hex().encode() + b';Cert="' + escaped + b'"'),
    }
    for name, parse_once in misses.items():
        best = min(timeit.repeat(parse_once, timer=time.process_time, number=args.number,
                                 repeat=args.repeat))
        print(f"| {name} | {best / args.number * 1e6:.2f} |")


if __name__ == "__main__":
    main()
