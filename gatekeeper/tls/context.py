"""The server ``ssl.SSLContext`` of a listener: TLS 1.2 and 1.3 only, Mozilla's "intermediate"
cipher suites, ALPN ``http/1.1``, and client certificates verified against ``tls.client_ca_file``
when configured.

- TLS 1.0 and 1.1 are refused (RFC 8996 deprecates them).
- TLS 1.2 suites: Mozilla's intermediate configuration (v5.7) — ECDHE key exchange, AEAD
  ciphers only — without its DHE suites (no finite-field DH parameters are loaded, and DHE-RSA
  only helps clients that predate ECDHE). TLS 1.3 suites are OpenSSL's, all AEAD.
- Client-initiated renegotiation is off (a CPU-exhaustion lever, CVE-2011-1473), and so is
  TLS compression (CRIME).
- ALPN offers ``http/1.1`` only: both HTTP protocols gatekeeper runs are HTTP/1.1, and a client
  that asked for h2 must not be told it got it (RFC 7301 §3.2).
- Client certificates: ``CERT_REQUIRED`` or ``CERT_OPTIONAL``. Either way OpenSSL aborts the
  handshake on a certificate that does not verify; ``optional`` only lets a client send none.
"""

from __future__ import annotations

import ssl

from gatekeeper.settings.tls import TlsSettings
from gatekeeper.tlsfiles import ServerPair, load_into

MOZILLA_INTERMEDIATE_TLS12 = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
ALPN = ("http/1.1",)


def new_context(tls: TlsSettings, *, verify_clients: bool) -> tuple[ssl.SSLContext, ServerPair]:
    """A fresh context with the files loaded; raises ``tlsfiles.CertificateFileError``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(MOZILLA_INTERMEDIATE_TLS12)
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(list(ALPN))
    ca_file = tls.client_ca_file if verify_clients else None
    pair = load_into(context, tls.cert_file, tls.key_file, ca_file)
    if ca_file is not None:
        context.verify_mode = (ssl.CERT_REQUIRED if tls.client_certificate == "required"
                               else ssl.CERT_OPTIONAL)
    return context, pair

