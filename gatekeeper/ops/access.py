"""Who may open the policy page: a trusted peer, or a caller with the admin token. Fail closed.

The admin listener serves /healthz /readyz /metrics to anyone who reaches it (``admin_listen``
defaults to 0.0.0.0:9901: Prometheus scrapes the pod there). Every path under ``/policy`` is
for operators only, checked here before any route is matched:

    Authorization: Bearer <admin.token> (right)        → served, from any peer
    Authorization: Bearer <anything else>              → 401 (when admin.token is set)
    no token, TCP peer in admin.trusted_peers,
        Host an IP literal or localhost                → served
    anything else                                      → 404, the same answer as a path that
                                                          does not exist: nothing to probe for

- The peer is the TCP peer (``scope["client"]``); the admin listener runs uvicorn with
  ``proxy_headers=False`` (app.py), so no X-Forwarded-For can name another.
- A trusted peer must also name this host by address or as ``localhost``: a web page the
  operator visits could otherwise point its own name at 127.0.0.1 and read the page through
  their browser (DNS rebinding). With the token, Host does not matter.
- The token is compared in constant time, and never logged: a wrong one may be the right one
  with a typo.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any, Literal

from gatekeeper.edge.responses import error_json, send_raw
from gatekeeper.settings.admin import AdminSettings
from gatekeeper.types import Receive, Scope, Send

log = logging.getLogger("gatekeeper.ops.access")

Verdict = Literal["token", "peer", "not_found", "unauthorized"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
GUARDED_PREFIX = "/policy"


class AdminAccess:
    def __init__(self, settings: AdminSettings) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(item, strict=False) for item in settings.trusted_peers)
        token = settings.token
        self._token = token.get_secret_value().encode("ascii") if token is not None else None

    def verdict(self, scope: Scope) -> Verdict:
        presented = _bearer(scope)
        if self._token is not None and presented is not None:
            return "token" if hmac.compare_digest(presented, self._token) else "unauthorized"
        if self.trusts_peer(scope) and _names_this_host(_header(scope, b"host")):
            return "peer"
        return "not_found"

    def trusts_peer(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client:
            return False  # a Unix socket or an unknown peer: not a trusted one
        try:
            address = ipaddress.ip_address(str(client[0]))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener sees ::ffff:127.0.0.1
        return any(address in network for network in self._networks)


class Guarded:
    """Pure ASGI: every path under ``/policy`` passes ``AdminAccess`` before reaching ``app``."""

    def __init__(self, app: Any, access: AdminAccess) -> None:  # Any: starlette's ASGI types
        self._app = app
        self._access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and str(scope.get("path", "")).startswith(
                GUARDED_PREFIX):
            verdict = self._access.verdict(scope)
            if verdict == "unauthorized":
                client = scope.get("client")
                log.warning("policy page refused: wrong admin token",
                            extra={"client": client[0] if client else None})
                await _refuse(scope, send, 401, b"application/json", error_json(
                    "unauthorized", "Authorization: Bearer <admin.token> is wrong"),
                    [(b"www-authenticate", b'Bearer realm="gatekeeper-admin", error="invalid_token"')])
                return
            if verdict == "not_found":
                # What the router answers for a path it does not have (starlette's 404).
                await _refuse(scope, send, 404, b"text/plain; charset=utf-8", b"Not Found", [])
                return
        await self._app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, status: int, content_type: bytes, body: bytes,
                  headers: list[tuple[bytes, bytes]]) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send_raw(send, status, headers, content_type, body)


def _header(scope: Scope, name: bytes) -> bytes | None:
    values = [value for key, value in scope.get("headers", ()) if key == name]
    return values[0] if len(values) == 1 else None  # two Host headers: none to trust


def _bearer(scope: Scope) -> bytes | None:
    """The credentials of ``Authorization: Bearer …``; None when no such header (or several)."""
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.partition(b" ")
    if scheme.lower() != b"bearer":
        return b""  # presented, but not a bearer token: never equal to one
    return credentials.strip()


def _names_this_host(host: bytes | None) -> bool:
    """``localhost`` or an IP literal, with or without a port (RFC 9110 §7.2, RFC 3986 §3.2.2)."""
    if host is None:
        return False
    try:
        text = host.decode("ascii").strip()
    except UnicodeDecodeError:
        return False
    if text.startswith("["):
        literal, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return False
        name = literal
    else:
        name, colon, port = text.rpartition(":") if ":" in text else (text, "", "")
        if colon and not port.isdigit():
            return False
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
