"""Certificate-bound access tokens (RFC 8705 §3): ``cnf.x5t#S256`` must name the caller's certificate.

A token whose ``cnf`` (RFC 7800 §3.1) holds ``x5t#S256`` is good only from the client holding the
certificate whose DER SHA-256 that is: a stolen token is useless without the private key. The
certificate is the one the TLS handshake verified (``tls.client_ca_file``), or — when
``auth.client_certificate_header`` is set and the peer is one of ``trusted_proxies`` — the one the
front proxy that terminated mTLS forwards in that header. From any other peer the header is never
read (and mutate.py strips it, in every spelling, from what the app receives); from a trusted
peer it is the only source: the proxy's own connection certificate is not the client's.

Header formats (docs/tls.md):

    pem      nginx ``$ssl_client_escaped_cert``: the URL-encoded PEM certificate
    rfc9440  ``Client-Cert: :<base64 DER>:`` (RFC 9440 §2.2, a structured-field byte sequence)
    xfcc     Envoy ``x-forwarded-client-cert`` with ONE element (``SANITIZE_SET``) carrying
             ``Hash=`` (hex SHA-256 of the DER) and/or ``Cert=`` (URL-encoded PEM); both present
             must agree. Several elements (``APPEND_FORWARD``): refused, which hop is the client
             is not ours to guess.

Everything that is not exactly one well-formed ``cnf`` with ``x5t#S256`` as its only member, a
certificate that does not match, no certificate, or the header twice (or in another spelling)
from a trusted peer: 401 ``invalid_token``. Other ``cnf`` members (``jkt``: DPoP, RFC 9449 §6)
need a proof this module does not check, so they are refused too — fail closed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from gatekeeper.errors import InvalidToken
from gatekeeper.headernames import fold
from gatekeeper.lru import LRU
from gatekeeper.request import RequestView

HeaderFormat = Literal["pem", "rfc9440", "xfcc"]
X5T = "x5t#S256"
_B64URL_SHA256 = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 bytes, unpadded (RFC 7515 §2)
_HEX_SHA256 = re.compile(rb"[0-9a-fA-F]{64}")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----")
_MAX_HEADER_BYTES = 16384  # a certificate chain's worth; more is not a certificate we read
_DIGESTS_KEPT = 1024  # forwarded header value → SHA-256: a client reuses its certificate


def _refuse(description: str, code: str = "certificate_mismatch") -> InvalidToken:
    return InvalidToken(description, code=code)


def bound_thumbprint(claims: Mapping[str, Any]) -> bytes | None:
    """The SHA-256 a token's ``cnf`` binds it to; ``None`` for an unbound token; 401 for any
    ``cnf`` gatekeeper cannot hold the caller to (RFC 7800 §3.1; RFC 8705 §3.1)."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {X5T}:
        raise _refuse("a key-bound token needs a proof gatekeeper cannot check", "bound_token")
    value = cnf[X5T]
    if not isinstance(value, str) or not _B64URL_SHA256.fullmatch(value):
        raise _refuse("malformed cnf x5t#S256", "bound_token")
    digest = base64.urlsafe_b64decode(value + "=")
    if base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") != value:
        raise _refuse("malformed cnf x5t#S256", "bound_token")  # non-canonical trailing bits
    return digest


class CertificateBinding:
    """The presented certificate's SHA-256, per request, and the check against a token's."""

    def __init__(self, header: str | None, header_format: HeaderFormat,
                 is_trusted: Callable[[str], bool]) -> None:
        self._header = header.lower().encode("ascii") if header else None
        self._folded = fold(self._header) if self._header else b""
        self._format = header_format
        self._is_trusted = is_trusted
        # Only well-formed values are kept (a refusal raises before put); a value is the whole
        # header, so the key covers every input of its digest.
        self._digests: LRU[bytes, bytes] = LRU(_DIGESTS_KEPT)

    def check(self, request: RequestView, thumbprint: bytes) -> None:
        """Raise 401 unless the request presents the certificate ``thumbprint`` names."""
        presented = self.presented(request)
        if presented is None:
            raise _refuse("a certificate-bound token needs the client certificate",
                          "certificate_required")
        if not hmac.compare_digest(presented, thumbprint):
            raise _refuse("the token is bound to another certificate")

    def presented(self, request: RequestView) -> bytes | None:
        """SHA-256 of the client certificate's DER: the forwarded one from a trusted front proxy
        (when configured), else the one this connection's handshake verified."""
        if self._header is not None and self._is_trusted(request.client):
            return self._forwarded(request)
        certificate = request.client_certificate
        return bytes.fromhex(certificate.fingerprint) if certificate is not None else None

    def _forwarded(self, request: RequestView) -> bytes | None:
        found: bytes | None = None
        for name, value in request.headers:
            if fold(name) != self._folded:
                continue
            # Two copies, or one in another spelling (X_SSL_Client_Cert): which one the proxy set
            # is unknowable, so neither is believed.
            if name != self._header or found is not None:
                raise _refuse("the client certificate header more than once, or spelled "
                              "otherwise", "duplicate_certificate_header")
            found = value
        if found is None or not found.strip():
            return None
        if len(found) > _MAX_HEADER_BYTES:
            raise _refuse("the client certificate header is too large", "bad_certificate_header")
        digest = self._digests.get(found)
        if digest is None:
            if self._format == "pem":
                digest = _pem_digest(unquote_to_bytes(found.strip()))
            elif self._format == "rfc9440":
                digest = _rfc9440_digest(found.strip())
            else:
                digest = _xfcc_digest(found)
            self._digests.put(found, digest)
        return digest


def _pem_digest(pem: bytes) -> bytes:
    block = _PEM.fullmatch(pem.strip())  # one certificate, nothing around it
    if block is None:
        raise _refuse("the client certificate header is not one PEM certificate",
                      "bad_certificate_header")
    try:
        der = base64.b64decode(b"".join(block.group(1).split()), validate=True)
    except binascii.Error:
        raise _refuse("the client certificate header is not one PEM certificate",
                      "bad_certificate_header") from None
    return hashlib.sha256(der).digest()


def _rfc9440_digest(value: bytes) -> bytes:
    if len(value) < 3 or value[:1] != b":" or value[-1:] != b":":
        raise _refuse("the Client-Cert header is not a byte sequence", "bad_certificate_header")
    try:
        der = base64.b64decode(value[1:-1], validate=True)
    except binascii.Error:
        raise _refuse("the Client-Cert header is not a byte sequence",
                      "bad_certificate_header") from None
    return hashlib.sha256(der).digest()


def _xfcc_digest(value: bytes) -> bytes:
    elements = _xfcc_elements(value)
    if len(elements) != 1:
        raise _refuse("x-forwarded-client-cert must hold exactly one element",
                      "bad_certificate_header")
    pairs = elements[0]
    hashes = [v for k, v in pairs if k == b"hash"]
    certs = [v for k, v in pairs if k == b"cert"]
    if len(hashes) > 1 or len(certs) > 1 or not (hashes or certs):
        raise _refuse("x-forwarded-client-cert needs one Hash or Cert", "bad_certificate_header")
    from_hash: bytes | None = None
    for value in hashes:
        if not _HEX_SHA256.fullmatch(value):
            raise _refuse("x-forwarded-client-cert Hash is not a SHA-256", "bad_certificate_header")
        from_hash = bytes.fromhex(value.decode("ascii"))
    for value in certs:
        from_cert = _pem_digest(unquote_to_bytes(value))
        if from_hash is not None and not hmac.compare_digest(from_hash, from_cert):
            raise _refuse("x-forwarded-client-cert Hash and Cert disagree",
                          "bad_certificate_header")
        return from_cert
    return bytes.fromhex(hashes[0].decode("ascii"))  # Hash only


# One key=value pair of Envoy's XFCC grammar: the value bare, or double-quoted with \" escapes;
# then the separator (";" between pairs, "," between elements) or the end.
_XFCC_PAIR = re.compile(rb'\s*([A-Za-z]+)=("(?:[^"\\]|\\.)*"|[^;,"]*)\s*([;,]|$)')
_ESCAPED = re.compile(rb"\\(.)")


def _xfcc_elements(value: bytes) -> list[list[tuple[bytes, bytes]]]:
    """Envoy's grammar: elements split by ``,``, pairs by ``;``, ``key=value`` with the value
    optionally double-quoted (``\\"`` escapes a quote inside); keys case-insensitive. Anything
    else anywhere is refused."""
    elements: list[list[tuple[bytes, bytes]]] = [[]]
    position, end = 0, len(value)
    while position < end:
        match = _XFCC_PAIR.match(value, position)
        if match is None or match.end() == position:
            raise _refuse("malformed x-forwarded-client-cert", "bad_certificate_header")
        key, raw, separator = match.groups()
        if raw.startswith(b'"'):
            raw = _ESCAPED.sub(rb"\1", raw[1:-1])
        elements[-1].append((key.lower(), raw))
        position = match.end()
        if separator == b",":
            elements.append([])
    return [e for e in elements if e]
