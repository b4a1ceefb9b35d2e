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
    "is_foreign_identity",
    "is_forwarding",
    "is_override",
    "never_from_client",
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
# take as their outbound proxy ("httpoxy", CVE-2016-5385). The W3C trace context is replaced by
# gatekeeper's own (tracecontext.py): a second copy under another spelling would be a parent the
# app's tracer may read that gatekeeper never checked.
NEVER_FORWARDED = HOP_BY_HOP | {b"content-length", b"host", b"proxy", b"traceparent", b"tracestate"}

# Names apps route or dispatch by instead of the request line (Symfony/IIS X-Original-URL and
# X-Rewrite-URL, Werkzeug's ProxyFix X-Forwarded-Prefix, the method-override middlewares of
# Flask's docs, Express and Rack): the policy decided on the request line.
_OVERRIDES = frozenset({
    b"x-original-url", b"x-rewrite-url", b"x-original-uri", b"x-forwarded-uri", b"x-forwarded-path",
    b"x-forwarded-prefix", b"x-forwarded-script-name", b"x-forwarded-method", b"x-original-method",
    b"x-envoy-original-path", b"x-envoy-original-url", b"x-script-name", b"x-request-uri",
    b"x-method-override",
})
_OVERRIDE_PREFIXES = (b"x-http-method",)  # X-HTTP-Method, X-HTTP-Method-Override

# Claims about the client's address, scheme or host: the app gets gatekeeper's own view of the
# peer. The prefixes cover every X-Forwarded-*, X-Original-* (ingress-nginx's
# X-Original-Forwarded-For) and Envoy's internal X-Envoy-* (X-Envoy-Internal, -External-Address).
_FORWARDING = frozenset({
    b"forwarded", b"x-forwarded", b"x-real-ip", b"x-client-ip", b"client-ip", b"true-client-ip",
    b"cf-connecting-ip", b"fastly-client-ip", b"x-cluster-client-ip", b"x-proxyuser-ip",
    b"x-host", b"x-http-host-override", b"front-end-https", b"x-url-scheme", b"x-scheme",
})
_FORWARDING_PREFIXES = (b"x-forwarded-", b"x-original-", b"x-envoy-")

# The identity headers other auth proxies set, which an app moved from behind them may still
# trust: oauth2-proxy (X-Auth-Request-*, X-Forwarded-User…), Authelia and Authentik
# (Remote-User…, X-authentik-*), Grafana (X-WEBAUTH-USER), Kong (X-Consumer-*, X-Credential-*,
# X-Userinfo), AWS ALB (X-Amzn-Oidc-*), Google IAP (X-Goog-*), Cloudflare Access (Cf-Access-*),
# Azure App Service (X-MS-Client-Principal*, X-MS-Token-*), Pomerium, mod_auth_openidc
# (OIDC_CLAIM_*), and client-certificate headers (ssl-client-*, X-SSL-*, X-ARR-ClientCert,
# RFC 9440 Client-Cert/-Chain, AWS ALB X-Amzn-Mtls-*, Cloudflare Cf-Client-Cert-*, Google Cloud's
# X-Client-Cert-*): an app behind an mTLS-ending proxy reads those as verified, and RFC 9440 §6
# asks that proxy to remove every client copy — gatekeeper ending mTLS is that proxy.
# gatekeeper may be configured to send one of these itself (``headers:``).
_FOREIGN_IDENTITY = frozenset({
    b"x-forwarded-user", b"x-forwarded-email", b"x-forwarded-groups",
    b"x-forwarded-preferred-username", b"x-forwarded-access-token", b"x-authenticated-user",
    b"x-authenticated-userid", b"x-authenticated-groups", b"x-authenticated-scope",
    b"x-anonymous-consumer", b"x-userinfo", b"x-id-token", b"x-access-token", b"x-jwt-assertion",
    b"oidc-access-token", b"x-client-verify", b"x-client-dn",
})
_FOREIGN_IDENTITY_PREFIXES = (
    b"x-auth-request-", b"remote-", b"x-remote-", b"x-authentik-", b"x-webauth-", b"x-consumer-",
    b"x-credential-", b"x-amzn-oidc-", b"x-goog-authenticated-user-", b"x-goog-iap-", b"cf-access-",
    b"x-ms-client-principal", b"x-ms-token-", b"x-pomerium-", b"oidc-claim-", b"ssl-client-",
    b"x-ssl-", b"x-arr-", b"client-cert", b"x-client-cert", b"x-amzn-mtls-", b"cf-client-cert-",
)

# Kept from a peer in ``trusted_proxies``, and then only in exactly this spelling: a second copy
# under another spelling would be a value the app reads that gatekeeper never looked at.
FORWARDED_FROM_TRUSTED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                                    b"x-forwarded-port"})


def is_override(folded: bytes) -> bool:
    """Whether a folded name tells an app another path or method than the request line's."""
    return folded in _OVERRIDES or folded.startswith(_OVERRIDE_PREFIXES)


def is_forwarding(folded: bytes) -> bool:
    """Whether a folded name claims the client's address, scheme or host."""
    return ((folded in _FORWARDING or folded.startswith(_FORWARDING_PREFIXES))
            and not is_foreign_identity(folded))


def is_foreign_identity(folded: bytes) -> bool:
    """Whether a folded name is an identity header some other auth proxy sets."""
    return folded in _FOREIGN_IDENTITY or folded.startswith(_FOREIGN_IDENTITY_PREFIXES)


# Trace propagation formats other than W3C's: Zipkin B3, Jaeger, Datadog, AWS X-Ray, Google
# Cloud, OpenTracing/Jaeger baggage, W3C baggage, gRPC, SkyWalking, Elastic, New Relic. With
# ``tracing.continue_incoming: false`` a caller may not choose the trace the app's spans hang
# under; an app tracer reading any of these would let it (tracecontext.py replaces W3C's).
_FOREIGN_TRACE = frozenset({
    b"b3", b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags",
    b"uber-trace-id", b"jaeger-debug-id", b"jaeger-baggage", b"x-datadog-trace-id",
    b"x-datadog-parent-id", b"x-datadog-sampling-priority", b"x-datadog-origin",
    b"x-datadog-tags", b"x-amzn-trace-id", b"x-cloud-trace-context", b"grpc-trace-bin",
    b"baggage", b"sw8", b"sw8-correlation", b"elastic-apm-traceparent", b"newrelic",
})
_FOREIGN_TRACE_PREFIXES = (b"uberctx-", b"ot-baggage-", b"ot-tracer-")


def is_foreign_trace(folded: bytes) -> bool:
    """Whether a folded name carries a trace context in a format other than W3C's."""
    return folded in _FOREIGN_TRACE or folded.startswith(_FOREIGN_TRACE_PREFIXES)


def never_from_client(folded: bytes) -> bool:
    """Whether a folded name is an override, a forwarding claim or another proxy's identity
    header: none of these from a client reaches the app."""
    return is_override(folded) or is_forwarding(folded) or is_foreign_identity(folded)
