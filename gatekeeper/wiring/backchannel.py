"""The back channel: the control-plane HTTP client, the issuers' signing keys fetched through it,
the Redis pool, and the clients gatekeeper authenticates as (their private_key_jwt keys read)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx

from gatekeeper.clients.client_auth import Clients, build_clients, key_readiness
from gatekeeper.clients.redis import RedisClient, connect
from gatekeeper.clients.traced_http import TracedTransport
from gatekeeper.errors import ConfigError
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.tracing import Tracing
from gatekeeper.wiring import Checks


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def control_plane_client(tracing: Tracing, stack: contextlib.AsyncExitStack) -> httpx.AsyncClient:
    """Control plane only (discovery, JWKS). No cookies kept: a shared client must not carry one
    answer's Set-Cookie into the next request.
    No pool cap: each issuer's ControlPlane caps its own calls, so one hung provider cannot take
    the connections another issuer's key fetch needs (controlplane.py)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    http = httpx.AsyncClient(cookies=_NoCookies(), follow_redirects=False, trust_env=False,
                             limits=limits,
                             transport=TracedTransport(httpx.AsyncHTTPTransport(
                                 limits=limits, trust_env=False), tracing))
    stack.push_async_callback(http.aclose)
    return http


async def start_issuer_keys(settings: Settings, http: httpx.AsyncClient, metrics: Metrics,
                            stack: contextlib.AsyncExitStack, issuer_keys: dict[str, IssuerKeys],
                            *, shared: Path | None) -> None:
    """Each issuer's JWKS cache, added to ``issuer_keys`` and started. ``shared``: the workers'
    directory for sharing their fetches (tokens/shared.py)."""
    for issuer in settings.auth.issuers:
        if issuer.introspection is not None and issuer.introspection.mode == "always":
            continue  # its every token is introspected: no keys to fetch, none to wait for
        keys = IssuerKeys(issuer, settings.auth, http, metrics, shared=shared)
        issuer_keys[issuer.issuer] = keys
        stack.push_async_callback(keys.aclose)
    # Start every issuer together: an issuer that is down must not delay the others.
    await asyncio.gather(*(keys.start() for keys in issuer_keys.values()))


def connect_redis(settings: Settings, tracing: Tracing,
                  stack: contextlib.AsyncExitStack) -> RedisClient | None:
    """One pool for the process when anything configured uses Redis; None otherwise."""
    if not settings.uses_redis:
        return None
    # Closed after everything started later: the stack unwinds in reverse.
    redis_client = connect(settings.redis_connection(), tracing)
    stack.push_async_callback(redis_client.aclose)
    return redis_client


def needs_redis(client: RedisClient | None, key: str) -> RedisClient:
    """``Settings.uses_redis`` covers ``key``: a real error, not an assert (gone under -O)."""
    if client is None:
        raise ConfigError([f"{key}: needs redis, which is not connected"])
    return client


async def read_clients(settings: Settings, extra_checks: Checks) -> Clients:
    """The back-channel clients, their private_key_jwt keys read and checked (ConfigError)."""
    clients = await asyncio.to_thread(build_clients, settings)
    if any(client.kid is not None for client in clients.all):
        extra_checks["client_keys"] = key_readiness(clients.all)
    return clients
