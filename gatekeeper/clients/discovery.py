"""One endpoint of an issuer read from its discovery document (OpenID Connect Discovery 1.0 §4,
RFC 8414 §3), for the back-channel clients that may be configured without it (introspection,
token exchange)."""

from __future__ import annotations

from urllib.parse import urlsplit

from gatekeeper.clients.controlplane import ControlPlane


async def discovered_endpoint(discovery: ControlPlane, issuer: str, name: str) -> str:
    """The issuer metadata's ``name`` (e.g. ``token_endpoint``): an http(s) URL; ValueError
    when the document names another issuer (§4.3: its metadata could send our calls, with our
    client's credentials and callers' tokens, anywhere) or has no such endpoint. FetchError
    when it cannot be fetched."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = (await discovery.get(url)).raise_for_status().json()
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise ValueError("discovery document's issuer does not match")
    endpoint = document.get(name)
    if (not isinstance(endpoint, str) or not endpoint.isascii()
            or urlsplit(endpoint).scheme not in ("https", "http")):
        raise ValueError(f"discovery document has no {name}")
    return endpoint
