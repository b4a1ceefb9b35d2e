"""Hostile spellings of header names, and the names gatekeeper must never let a client set.

Every spelling here passes the HTTP parser (RFC 9110 token characters only) and reads, to some
app framework, as the canonical name: CGI/WSGI servers upper-case and map ``-`` to ``_``; PHP and
older Apache map every other non-alphanumeric character to ``_`` as well.

    spellings("X-Forwarded-For")  # ["X-Forwarded-For", "x_forwarded_for", "X.Forwarded.For", ...]
"""

from __future__ import annotations

__all__ = [
    "FOREIGN_IDENTITY",
    "FORWARDING",
    "IDENTITY",
    "OVERRIDES",
    "TRUSTED_FORWARDING",
    "app_key",
    "spellings",
]

# What gatekeeper injects (default ``headers:``), and X-Request-Id / the access-token header.
IDENTITY = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups",
            "X-Auth-Request-Access-Token", "X-Request-Id"]
# Client address, scheme and host claims.
TRUSTED_FORWARDING = ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port"]
FORWARDING = [*TRUSTED_FORWARDING, "Forwarded", "X-Forwarded", "X-Real-IP", "X-Client-IP", "Client-IP",
              "True-Client-IP", "CF-Connecting-IP", "Fastly-Client-IP", "X-Cluster-Client-IP",
              "X-ProxyUser-Ip", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Scheme",
              "X-Forwarded-Protocol", "X-Url-Scheme", "X-Scheme", "Front-End-Https", "X-Host",
              "X-Original-Host", "X-HTTP-Host-Override", "X-Original-Forwarded-For",
              "X-Envoy-External-Address", "X-Envoy-Internal", "Proxy"]
# Identity headers other auth proxies set (oauth2-proxy, Authelia, Authentik, Grafana, Kong, AWS
# ALB, Google IAP, Cloudflare Access, Azure App Service, Pomerium, mod_auth_openidc, mTLS).
FOREIGN_IDENTITY = ["X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups",
                    "X-Forwarded-Preferred-Username", "X-Auth-Request-Preferred-Username",
                    "Remote-User", "Remote-Groups", "X-Remote-User", "X-authentik-username",
                    "X-WEBAUTH-USER", "X-Consumer-Username", "X-Credential-Identifier", "X-Userinfo",
                    "X-Amzn-Oidc-Identity", "X-Amzn-Oidc-Data", "X-Goog-Authenticated-User-Email",
                    "X-Goog-IAP-JWT-Assertion", "Cf-Access-Authenticated-User-Email",
                    "X-MS-Client-Principal-Name", "X-MS-Token-AAD-Access-Token",
                    "X-Pomerium-Jwt-Assertion", "OIDC-Claim-sub", "SSL-Client-Verify",
                    "X-SSL-Client-Cert", "X-Forwarded-Client-Cert", "X-Authenticated-Userid"]
# Names an app or its middleware routes or dispatches by instead of the request line.
OVERRIDES = ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL",
             "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri", "X-Forwarded-Path",
             "X-Forwarded-Prefix", "X-Forwarded-Method", "X-Original-Method", "X-Envoy-Original-Path",
             "X-Script-Name", "X-Request-URI"]


def spellings(name: str) -> list[str]:
    """The canonical name and variants every fold-minded app reads as it (all distinct)."""
    words = name.split("-")
    variants = [name, name.lower(), name.upper(), name.swapcase()]
    if len(words) > 1:
        variants += [
            "_".join(words),
            "_".join(w.lower() for w in words),
            ".".join(words),
            "~".join(words),
            "!".join(words),
            "*".join(words),
            "-".join(words[:-1]) + "_" + words[-1],
            "_".join(w.upper() for w in words[:-1]) + "." + words[-1],
        ]
    return list(dict.fromkeys(variants))


def app_key(name: str) -> str:
    """How a CGI/WSGI server names a header for the app (RFC 3875 §4.1.18), loosest reading."""
    return "".join(c if c.isalnum() else "_" for c in name).upper()
