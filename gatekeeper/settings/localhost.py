"""Settings that are safe only when everything is on this machine: a warning each, from both
``gatekeeper check`` and ``gatekeeper run``, naming the key (the config stays valid: the demo
and local development need them).

- ``session.cookie_secure: false``: the browser sends the session cookie over plain http, where
  anyone on the path can read and replay it (RFC 6265 §8.6).
- an ``http://`` issuer, ``jwks_uri`` or discovery: whoever is on the path can serve their own
  keys and so sign any token gatekeeper will accept.
- an ``http://`` redirect URL: the authorization code (and then the session cookie) travels in
  clear; providers refuse it except for loopback (OAuth 2.0 Security BCP, RFC 9700 §2.6).
- an ``upstream`` on another host: identity headers and tokens cross the network in clear, and
  an app that listens there can be reached without passing gatekeeper.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from gatekeeper.settings import Settings


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761 §6.3
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plain_http_elsewhere(url: str | None) -> bool:
    if url is None:
        return False
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname)


def localhost_only_warnings(settings: Settings) -> list[str]:
    """One line per setting that is only safe on localhost, naming its key."""
    found: list[str] = []
    if not is_loopback(urlsplit(settings.upstream).hostname):
        found.append("upstream: not on localhost: identity headers cross the network in clear, "
                     "and an app listening there can be reached around gatekeeper")
    for index, issuer in enumerate(settings.auth.issuers):
        for key, url in (("issuer", issuer.issuer), ("jwks_uri", issuer.jwks_uri)):
            if _plain_http_elsewhere(url):
                found.append(f"auth.issuers.{index}.{key}: plain http to a host other than "
                             "localhost: anyone on the path can serve keys that sign any token")
        exchange = issuer.token_exchange
        if exchange is not None and _plain_http_elsewhere(exchange.token_endpoint):
            found.append(f"auth.issuers.{index}.token_exchange.token_endpoint: plain http to a host "
                         "other than localhost: the client secret, every caller's token and the "
                         "app's exchanged tokens travel in clear")
    oidc = settings.oidc
    if oidc is None:
        return found
    redirects = [("oidc.redirect_url", oidc.redirect_url),
                 ("oidc.post_logout_redirect_url", oidc.post_logout_redirect_url)]
    for index, provider in enumerate(oidc.providers):
        if _plain_http_elsewhere(provider.issuer):
            found.append(f"{oidc.provider_key(index, 'issuer')}: plain http to a host other than "
                         "localhost: anyone on the path can forge ID tokens and read codes")
        redirects.append((oidc.provider_key(index, "redirect_url"), provider.redirect_url))
    for key, url in redirects:
        if _plain_http_elsewhere(url):
            found.append(f"{key}: plain http on a host other than localhost: the login code and "
                         "the session cookie travel in clear")
    used = [oidc.redirect_url_of(p) for p in oidc.providers]
    if not settings.session.cookie_secure and not all(is_loopback(urlsplit(u).hostname) for u in used):
        found.append("session.cookie_secure: false outside localhost: the browser also sends the "
                     "session cookie over plain http, where it can be read and replayed")
    return found
