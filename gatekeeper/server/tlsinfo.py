"""What a TLS connection tells the app: the ASGI TLS extension (``scope["extensions"]["tls"]``),
built once per connection by both HTTP/1.1 protocols and the WebSocket protocol.

The asyncio (and uvloop) SSL transport calls ``connection_made`` after the handshake, so the
peer certificate is final by then: it was verified against ``tls.client_ca_file`` or the
handshake failed (peercert.py). The extension follows the ASGI TLS spec's keys — the chain holds
the client's own certificate only (the standard library offers no verified chain before
Python 3.13), and ``cipher_suite`` is None (it offers no suite number) — plus the key
``request.CLIENT_CERTIFICATE``: the parsed value the pipeline reads (``RequestView``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from gatekeeper.peercert import CertificateCache, ClientCertificate, parse
from gatekeeper.request import CLIENT_CERTIFICATE

# TLS version numbers as the ASGI TLS extension gives them (the record layer's, RFC 8446 §4.2.1).
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: asyncio.BaseTransport,
                  certificates: CertificateCache | None) -> dict[str, Any] | None:
    """The extension for a TLS connection; None on a plain one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, (ssl.SSLObject, ssl.SSLSocket)):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    certificate: ClientCertificate | None = None
    error: str | None = None
    if der:
        try:
            certificate = parse(der) if certificates is None else certificates.get(der)
        except ValueError:  # verified by OpenSSL, unreadable to cryptography: no claims from it
            error = "the client certificate could not be parsed"
    version = ssl_object.version()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": certificate.subject if certificate is not None else None,
        "client_cert_error": error,
        "tls_version": _VERSIONS.get(version or ""),
        "cipher_suite": None,
        CLIENT_CERTIFICATE: certificate,
    }
