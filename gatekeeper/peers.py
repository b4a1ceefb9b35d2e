"""Who sent a request and which host it named, as far as gatekeeper may believe it.

The rate limiter (``per: client_ip``) and the policy (``ipMatch``, a tenant taken from the host)
read these, and must read the same thing: so both live here, below both. ``is_trusted`` is the
``trusted_proxies`` test (gatekeeper/mutate.py ``HeaderPolicy.is_trusted``); a client-sent
``X-Forwarded-For`` or ``X-Forwarded-Host`` counts only when the peer is one of them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from gatekeeper.headernames import fold
from gatekeeper.request import RequestView

IsTrusted = Callable[[str], bool]


def forwarded_client(request: RequestView, is_trusted: IsTrusted) -> str:
    """The caller's address: the peer; behind ``trusted_proxies``, the nearest untrusted hop.

    Each proxy appends the address it saw to X-Forwarded-For, so only entries appended by trusted
    proxies are believed: walking from the right, the first untrusted entry is the client.
    Everything left of it is whatever the client wrote (taking the left-most entry would let a
    client choose a fresh identity per request). An IPv4-mapped IPv6 address is given as IPv4
    (a dual-stack socket's view of an IPv4 peer).
    """
    address = request.client
    if is_trusted(address):
        for value in reversed(request.header_values(b"x-forwarded-for")):
            for hop in reversed(value.split(b",")):
                text = _without_port(hop.strip().decode("latin-1"))
                if not text:
                    continue
                address = text
                if not is_trusted(text):
                    return _unmapped(address)
    return _unmapped(address)


def _without_port(text: str) -> str:
    if text.startswith("["):  # [2001:db8::1]:443
        return text[1:].partition("]")[0]
    if text.count(":") == 1:  # 192.0.2.1:443
        return text.partition(":")[0]
    return text


def _unmapped(address: str) -> str:
    if not address.startswith("::ffff:") and not address.startswith("::FFFF:"):
        return address
    try:
        mapped = ipaddress.IPv6Address(address).ipv4_mapped
    except ValueError:
        return address
    return str(mapped) if mapped is not None else address


# A host as RFC 3986 §3.2.2 spells a reg-name of DNS labels or an IP literal, with an optional
# port; anything else (userinfo, percent-escapes, spaces, a comma list) is not one host.
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?)*\.?"
                   r"|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


class HostUnclear(ValueError):
    """The request names no single host gatekeeper may believe (``code``: the reason)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def forwarded_host(request: RequestView, is_trusted: IsTrusted) -> str:
    """The host the app is told about, lower-cased, without port or trailing dot.

    It is what gatekeeper forwards as ``X-Forwarded-Host`` (mutate.py ``upstream_headers``): a
    trusted proxy's ``X-Forwarded-Host`` (canonical spelling; unless ``Connection`` names it),
    else the client's ``Host``. A client that is not a trusted proxy never chooses it by
    ``X-Forwarded-Host`` (mutate.py drops that header). Two values, a list, or something that is
    not a host name raise HostUnclear: the app might read another one (RFC 9112 §3.2: one Host).
    """
    hosts = request.header_values(b"host")
    if len(hosts) > 1:
        raise HostUnclear("ambiguous_host")
    value = hosts[0] if hosts else None
    if is_trusted(request.client):
        forwarded = request.header_values(b"x-forwarded-host")
        named = any(fold(token.strip()) == b"x-forwarded-host"
                    for connection in request.headers if fold(connection[0]) == b"connection"
                    for token in connection[1].split(b","))
        if forwarded and not named:
            if len(forwarded) > 1:
                raise HostUnclear("ambiguous_host")
            value = forwarded[0]
    if not value:
        raise HostUnclear("no_host")
    text = value.decode("latin-1").strip().lower()
    if not _HOST.fullmatch(text):
        raise HostUnclear("bad_host")
    if text.startswith("["):
        return text[: text.index("]") + 1]
    return text.partition(":")[0].removesuffix(".")
