"""The admin listener (/healthz, /readyz, /metrics, /revoke, the policy page): a second uvicorn
server on ``admin_listen``, run as a task inside the public listener's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import uvicorn

from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.metrics import Metrics
from gatekeeper.ops.access import AdminAccess
from gatekeeper.ops.admin import UpstreamProbe, create_admin_app
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.revocation import RevocationList
from gatekeeper.server.choice import http_protocol
from gatekeeper.server.limits import ConnectionLimits
from gatekeeper.settings import Settings
from gatekeeper.settings.server import HttpProtocol
from gatekeeper.settings.tls import TlsSettings
from gatekeeper.tls.rotation import listener_context
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.upstream.address import UpstreamAddress
from gatekeeper.wiring import Checks
from gatekeeper.wiring.listeners import bind_socket, connection_limits


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def admin_listener(app: Any, address: str, *, shared: bool, limits: ConnectionLimits,
                         http: HttpProtocol, tls: TlsSettings | None = None) -> AsyncIterator[None]:
    """``tls``: serve it with the public listener's certificate, asking for no client
    certificate (the kubelet's HTTPS probes present none)."""
    sock = bind_socket(address, key="admin_listen", reuse_port=shared)
    # The same bounds as the public listener: the admin port is reachable too.
    # proxy_headers=False: the policy page trusts the TCP peer (ops/access.py); uvicorn would
    # otherwise take a loopback peer's X-Forwarded-For as the client.
    config = uvicorn.Config(app, lifespan="off", access_log=False, log_config=None,
                            log_level="warning", http=http_protocol(http, limits),
                            proxy_headers=False,
                            timeout_keep_alive=math.ceil(limits.keep_alive_timeout_seconds),
                            ssl_context_factory=None if tls is None else functools.partial(
                                listener_context, tls, False))
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="admin-listener")
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        sock.close()


async def serve_admin(settings: Settings, metrics: Metrics, issuer_keys: Mapping[str, IssuerKeys],
                      upstream: UpstreamAddress, extra_checks: Checks,
                      revocations: RevocationList | None, policy_page: PolicyPage | None,
                      signer: AssertionSigner | None, stack: contextlib.AsyncExitStack) -> None:
    """The admin app, bound and served until ``stack`` closes (a BindError naming
    ``admin_listen`` if it cannot be)."""
    admin = create_admin_app(metrics, issuer_keys,
                             UpstreamProbe(upstream.host, upstream.port), extra_checks,
                             revocations=revocations, access=AdminAccess(settings.admin),
                             policy_page=policy_page,
                             jwks=None if signer is None else signer.jwks)
    admin_tls = settings.tls if settings.tls is not None and settings.tls.admin else None
    await stack.enter_async_context(
        admin_listener(admin, settings.admin_listen, shared=settings.workers > 1,
                       limits=connection_limits(settings), http=settings.server.http,
                       tls=admin_tls))
