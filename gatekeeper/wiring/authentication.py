"""The authentication chain, in the order it is asked: bearer tokens (JWT, introspection, DPoP,
certificate binding), browser sessions (the OIDC login), then client certificates as principals.
The first authenticator that takes responsibility wins (pipeline.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.authn.certbound import CertificateBinding
from gatekeeper.authn.certificate import CertificateAuthenticator, CertificateClaims
from gatekeeper.authn.wiring import dpop_proofs
from gatekeeper.clients.client_auth import ClientAuth, Clients
from gatekeeper.clients.redis import RedisClient
from gatekeeper.login.wiring import BrowserLogin
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.oidc.provider import Provider
from gatekeeper.pipeline import Authenticator
from gatekeeper.settings import OidcSettings, Settings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.tokens.introspect import Introspector
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.wiring import Checks


@dataclass(frozen=True)
class Authentication:
    """The chain, and the browser login whose routes the gate serves (None without ``oidc``)."""

    authenticators: list[Authenticator]
    browser: BrowserLogin | None


def certificates_authenticate(settings: Settings) -> bool:
    """A verified client certificate is a principal of its own (``tls.client_auth: principal``)."""
    return (settings.tls is not None and settings.tls.verifies_clients
            and settings.tls.client_auth == "principal")


async def start_authentication(
    settings: Settings, http: httpx.AsyncClient, metrics: Metrics, headers: HeaderPolicy,
    namespaces: SubjectNamespaces, issuer_keys: Mapping[str, IssuerKeys], clients: Clients,
    redis_client: RedisClient | None, stack: contextlib.AsyncExitStack, extra_checks: Checks,
) -> Authentication:
    # Each wrapped: the claim x509 is the verified client certificate's or nobody's.
    authenticators: list[Authenticator] = [CertificateClaims(
        BearerAuthenticator(settings.auth, issuer_keys, metrics, namespaces,
                            introspectors=[
                                Introspector(issuer, settings.auth, http,
                                             client=clients.introspection[issuer.issuer],
                                             metrics=metrics)
                                for issuer in settings.auth.issuers
                                if issuer.introspection is not None],
                            dpop=dpop_proofs(settings, redis_client, headers.is_trusted),
                            binding=CertificateBinding(
                                settings.auth.client_certificate_header,
                                settings.auth.client_certificate_header_format,
                                headers.is_trusted),
                            is_trusted=headers.is_trusted))]
    browser: BrowserLogin | None = None
    if settings.oidc is not None:
        browser = await _start_browser_login(settings, settings.oidc, http, metrics, stack,
                                             redis_client, clients.login)
        authenticators.append(CertificateClaims(browser.sessions))
        extra_checks["oidc"] = browser.check
        extra_checks["sessions"] = browser.store_check
    if settings.tls is not None and certificates_authenticate(settings):
        # Last: a request that brings a token is the token's caller.
        authenticators.append(CertificateAuthenticator(settings.tls.client_principal, namespaces))
    return Authentication(authenticators, browser)


async def _start_browser_login(
    settings: Settings, oidc: OidcSettings, http: httpx.AsyncClient, metrics: Metrics,
    stack: contextlib.AsyncExitStack, redis_client: RedisClient | None,
    login_clients: Mapping[str, ClientAuth],
) -> BrowserLogin:
    providers = {p.id: Provider(p, oidc, settings.auth, http, metrics,
                                client_auth=login_clients[p.id]) for p in oidc.providers}
    for provider in providers.values():
        stack.push_async_callback(provider.aclose)
    # A provider that is down at start is retried on demand: bearer traffic must not wait.
    await asyncio.gather(*(p.start() for p in providers.values()))
    login = BrowserLogin(settings, oidc, providers, metrics, redis_client)
    login.start()
    stack.push_async_callback(login.aclose)  # before the Redis client closes
    return login
