"""Header names as an app may read them, and the classes of names gatekeeper never forwards.

An app does not see a header under the name the client wrote: CGI and WSGI servers upper-case it
and turn ``-`` into ``_`` (RFC 3875 §4.1.18), so ``X_HTTP_Method_Override`` and
``X-HTTP-Method-Override`` both become ``HTTP_X_HTTP_METHOD_OVERRIDE`` under the standard
library's ``wsgiref`` and ``cheroot`` — and ``cheroot`` makes ``Content_Length`` the app's
``CONTENT_LENGTH``. PHP and older Apache map every non-alphanumeric character to ``_``
(CVE-2025-64484, Traefik GHSA-x677). The parser already refuses anything outside RFC 9110's
token characters; of those, only letters and digits keep their identity, so :func:`fold` maps
every other byte to ``-``. Every strip list is compared on folded names, through this one
function, so no spelling of a stripped name survives.
"""

from __future__ import annotations

__all__ = [
    "FORWARDED_FROM_TRUSTED",
    "HOP_BY_HOP",
    "NEVER_FORWARDED",
    "fold",
    "is_forwarding_or_override",
]

# Lower-case letters and digits stay; upper case is lowered; every other byte becomes "-".
_FOLD_TABLE = bytes(
    b if (0x30 <= b <= 0x39 or 0x61 <= b <= 0x7A) else b + 0x20 if 0x41 <= b <= 0x5A else 0x2D
    for b in range(256)
)


def fold(name: bytes) -> bytes:
    """The name every app framework could read ``name`` as: ``X_Forwarded.For`` → ``x-forwarded-for``."""
    return name.translate(_FOLD_TABLE)


# RFC 9110 §7.6.1 (and HTTP2-Settings, RFC 7540 §3.2.1): meaningful for one hop only.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding",
    b"upgrade", b"proxy-authorization", b"proxy-authenticate", b"http2-settings",
})

# Never copied from the client: gatekeeper frames the upstream hop itself (Content-Length,
# Transfer-Encoding, Host), and ``Proxy`` becomes a CGI app's HTTP_PROXY, which HTTP clients
# take as their outbound proxy ("httpoxy", CVE-2016-5385).
NEVER_FORWARDED = HOP_BY_HOP | {b"content-length", b"host", b"proxy"}

# Claims about the client's address, scheme or host, and names apps route or dispatch by instead
# of the request line (Symfony/IIS X-Original-URL and X-Rewrite-URL, Werkzeug's ProxyFix
# X-Forwarded-Prefix, the method-override middlewares of Flask's docs, Express and Rack). The
# policy decided on the request line and gatekeeper's own view of the peer: none of these from a
# client reaches the app. Folded names; the prefixes cover every X-Forwarded-*, X-Original-*
# (ingress-nginx's X-Original-Forwarded-For too), Envoy's internal X-Envoy-* and X-HTTP-Method*.
_FORWARDING_OR_OVERRIDE = frozenset({
    b"forwarded", b"x-forwarded", b"x-real-ip", b"x-client-ip", b"client-ip", b"true-client-ip",
    b"cf-connecting-ip", b"fastly-client-ip", b"x-cluster-client-ip", b"x-proxyuser-ip",
    b"x-host", b"x-http-host-override", b"front-end-https", b"x-url-scheme", b"x-scheme",
    b"x-rewrite-url", b"x-request-uri", b"x-script-name", b"x-method-override",
})
_FORWARDING_OR_OVERRIDE_PREFIXES = (b"x-forwarded-", b"x-original-", b"x-envoy-", b"x-http-method")

# Kept from a peer in ``trusted_proxies``, and then only in exactly this spelling: a second copy
# under another spelling would be a value the app reads that gatekeeper never looked at.
FORWARDED_FROM_TRUSTED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                                    b"x-forwarded-port"})


def is_forwarding_or_override(folded: bytes) -> bool:
    """Whether a folded name claims where the request came from or what it really asks for."""
    return folded in _FORWARDING_OR_OVERRIDE or folded.startswith(_FORWARDING_OR_OVERRIDE_PREFIXES)
