"""The pipeline's other stages: revocation, the origin check, rate limits, the signed assertion
for the app and token exchange. Each is None when its section is not configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from gatekeeper.assertion import JWKS_PATH
from gatekeeper.assertion.keys import load_keyring
from gatekeeper.assertion.reload import KeyReloader
from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.clients.client_auth import Clients
from gatekeeper.clients.redis import RedisClient
from gatekeeper.cors import CorsPolicy
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.origin import OriginCheck
from gatekeeper.ratelimit import RateLimits, RedisWindowCounter
from gatekeeper.revocation import RevocationList
from gatekeeper.settings import Settings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.token_exchange import IssuerExchange, TokenExchanges
from gatekeeper.wiring import Checks
from gatekeeper.wiring.authentication import certificates_authenticate
from gatekeeper.wiring.backchannel import needs_redis

log = logging.getLogger("gatekeeper")


async def start_revocations(settings: Settings, redis_client: RedisClient | None,
                            metrics: Metrics, namespaces: SubjectNamespaces,
                            stack: contextlib.AsyncExitStack,
                            extra_checks: Checks) -> RevocationList | None:
    if not settings.revocation.enabled:
        return None
    revocations = RevocationList(needs_redis(redis_client, "revocation.enabled"),
                                 settings.revocation,
                                 settings.redis.key_prefix, metrics,
                                 namespaces=namespaces)
    await revocations.start()
    stack.push_async_callback(revocations.aclose)
    extra_checks["revocation"] = revocations.readiness
    return revocations


def rate_limits(settings: Settings, redis_client: RedisClient | None, headers: HeaderPolicy,
                metrics: Metrics) -> RateLimits | None:
    if not settings.rate_limits:
        return None
    return RateLimits(
        settings.rate_limits,
        RedisWindowCounter(needs_redis(redis_client, "rate_limits"), settings.redis.timeout_seconds),
        key_prefix=settings.redis.key_prefix, is_trusted=headers.is_trusted,
        metrics=metrics)


def origin_check(settings: Settings, cors: CorsPolicy | None) -> OriginCheck | None:
    """Only where a browser sends credentials by itself: a session, a token from a cookie, a
    client certificate."""
    if not (settings.oidc is not None or certificates_authenticate(settings)
            or any(s != "header" for s in settings.auth.token_sources)):
        return None
    own = ([] if settings.oidc is None else
           [settings.oidc.redirect_url_of(p) for p in settings.oidc.providers])
    return OriginCheck(own, settings.session.allowed_origins, cors)


async def start_assertions(settings: Settings, stack: contextlib.AsyncExitStack,
                           extra_checks: Checks) -> AssertionSigner | None:
    """The assertion signer with its keys loaded (a bad key file: ConfigError naming it),
    and their reload; None without an ``assertion`` section."""
    if settings.assertion is None:
        return None
    signer = AssertionSigner(settings.assertion,
                             await asyncio.to_thread(load_keyring, settings.assertion))
    reloader = KeyReloader(settings.assertion, signer)
    await reloader.start()
    stack.push_async_callback(reloader.aclose)
    extra_checks["assertion"] = reloader.readiness
    if settings.assertion.serve_jwks_on_listen:
        # Said at start: that path of the app is gatekeeper's from now on.
        log.info("assertion keys served on listen: the app's own path there is not reachable",
                 extra={"path": JWKS_PATH})
    return signer


def token_exchanges(settings: Settings, http: httpx.AsyncClient,
                    clients: Clients, metrics: Metrics) -> TokenExchanges | None:
    if not settings.token_exchange:
        return None
    return TokenExchanges(settings.token_exchange, {
        issuer.issuer: IssuerExchange(issuer, settings.auth, http,
                                      client=clients.exchange[issuer.issuer], metrics=metrics)
        for issuer in settings.auth.issuers if issuer.token_exchange is not None})
