"""A read-only view of the incoming request that every pipeline stage shares.

Read-only for real (slots, nothing to set after construction): what one answer must carry
(cookies, the request id) lives on the ``Exchange`` (gatekeeper/exchange.py), which extends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatekeeper.peercert import ClientCertificate

# The key of the verified client certificate in the ASGI TLS extension (server/tlsinfo.py): set
# by gatekeeper's own protocols only, never from anything a client sends.
CLIENT_CERTIFICATE = "gatekeeper.client_certificate"


class RequestView:
    __slots__ = ("client", "client_certificate", "headers", "method", "path", "query", "raw_path",
                 "scheme")

    def __init__(self, scope: dict[str, Any], path: str) -> None:
        # Matched and forwarded upper-case: a lowercase "get" must not slip past rules written
        # for GET (keycloak-gatekeeper CVE-2020-14359), and the app sees what was decided.
        method: str = scope.get("method", "GET")
        self.method = method if method.isupper() else method.upper()
        self.raw_path: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")
        self.query: bytes = scope.get("query_string", b"")
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        client = scope.get("client")
        self.client: str = client[0] if client else ""
        self.scheme: str = scope.get("scheme", "http")
        self.path = path  # canonical path: what the policy sees and the app receives
        extensions = scope.get("extensions")
        tls = extensions.get("tls") if extensions else None
        # mTLS: the certificate the handshake verified (tls.client_ca_file), else None.
        self.client_certificate: ClientCertificate | None = (
            tls.get(CLIENT_CERTIFICATE) if tls else None)

    def header_values(self, name: bytes) -> list[bytes]:
        """All values of a header; ``name`` in lower case (ASGI servers lower-case names)."""
        return [v for k, v in self.headers if k == name]

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None
