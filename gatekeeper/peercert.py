"""A verified client certificate (mTLS) as a value: what the policy reads as ``r.claims.x509``.

Only a certificate the TLS handshake verified against ``tls.client_ca_file`` ever becomes one:
OpenSSL aborts the handshake on a certificate that does not verify, with ``client_certificate:
optional`` too, so the protocol asks for the peer certificate only after a completed handshake.
It is parsed once per connection (and a recent one is reused from a small cache: clients
reconnect with the same certificate), never per request.

The claims (docs/tls.md has the table; the names are the interface policies are written against):

    subject             RFC 4514 string of the subject DN, e.g. "CN=alice,O=Example"
    subject_cn          the subject's (last) commonName, or "" when it has none
    issuer              RFC 4514 string of the issuer DN
    serial              the serial number, lower-case hex
    fingerprint_sha256  of the DER certificate, lower-case hex
    not_after           expiry, seconds since the epoch
    san_dns san_uri san_email san_ip    the subjectAltName entries of each kind, in order (lists)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

CLAIM = "x509"  # r.claims.x509: the one claim name gatekeeper reserves for the certificate


@dataclass(frozen=True, slots=True, eq=False)
class ClientCertificate:
    """Equal and hashed by fingerprint: the same certificate on two connections is one key."""

    fingerprint: str
    subject: str
    subject_cn: str
    issuer: str
    san_dns: tuple[str, ...]
    san_uri: tuple[str, ...]
    san_email: tuple[str, ...]
    san_ip: tuple[str, ...]
    claims: Mapping[str, Any] = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientCertificate) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def parse(der: bytes) -> ClientCertificate:
    """The claims of a DER certificate (raises ``ValueError`` for one cryptography cannot read)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san: x509.SubjectAlternativeName | None = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    dns = tuple(san.get_values_for_type(x509.DNSName)) if san else ()
    uri = tuple(san.get_values_for_type(x509.UniformResourceIdentifier)) if san else ()
    email = tuple(san.get_values_for_type(x509.RFC822Name)) if san else ()
    ip = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)) if san else ()
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    raw_cn = common_names[-1].value if common_names else ""
    cn = raw_cn if isinstance(raw_cn, str) else raw_cn.decode("latin-1")
    subject, issuer = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
    fingerprint = hashlib.sha256(der).hexdigest()
    claims = {
        "subject": subject, "subject_cn": cn, "issuer": issuer,
        "serial": format(cert.serial_number, "x"), "fingerprint_sha256": fingerprint,
        "not_after": int(cert.not_valid_after_utc.timestamp()),
        "san_dns": list(dns), "san_uri": list(uri), "san_email": list(email), "san_ip": list(ip),
    }
    return ClientCertificate(fingerprint=fingerprint, subject=subject, subject_cn=cn, issuer=issuer,
                             san_dns=dns, san_uri=uri, san_email=email, san_ip=ip, claims=claims)


class CertificateCache:
    """DER → ClientCertificate for the last ``size`` certificates seen (one per worker): a client
    that reconnects costs a dict lookup, not a parse (~50 µs)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, ClientCertificate] = OrderedDict()

    def get(self, der: bytes) -> ClientCertificate:
        found = self._entries.get(der)
        if found is not None:
            self._entries.move_to_end(der)
            return found
        parsed = parse(der)
        self._entries[der] = parsed
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return parsed
