"""Composition root: create_app(settings) → an ASGI app whose lifespan owns every long-lived thing
(the upstream pool, the control-plane HTTP client, the JWKS caches, the admin listener).

``GatekeeperApp._start`` is the ordered list of what is started; each step is wired in
gatekeeper/wiring/ and pushes its closing onto the exit stack, which unwinds in reverse."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from pathlib import Path

from gatekeeper import logs
from gatekeeper.cors import CorsPolicy
from gatekeeper.edge.gate import Gate
from gatekeeper.edge.inprocess import ASGIApp
from gatekeeper.edge.responses import send_raw
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.pipeline import Pipeline
from gatekeeper.policy.loader import LoadReport
from gatekeeper.settings import Settings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.tracing import Tracing
from gatekeeper.types import Check, Receive, Scope, Send
from gatekeeper.wiring import Checks, edge, stages
from gatekeeper.wiring.admin import admin_listener, serve_admin
from gatekeeper.wiring.authentication import start_authentication
from gatekeeper.wiring.backchannel import (
    connect_redis,
    control_plane_client,
    read_clients,
    start_issuer_keys,
)
from gatekeeper.wiring.listeners import (
    BindError,
    bind_public_listener,
    bind_socket,
    connection_limits,
)
from gatekeeper.wiring.policy import start_authorization
from gatekeeper.wiring.tracing import configured_tracing, tracing_problems

# Wired in gatekeeper/wiring/, and imported from here by __main__ and the tests.
__all__ = [
    "BindError", "GatekeeperApp", "admin_listener", "bind_public_listener", "bind_socket",
    "connection_limits", "create_app", "create_worker_app", "tracing_problems",
]

log = logging.getLogger("gatekeeper")


class GatekeeperApp:
    """The public listener's ASGI app. Requests before startup completes get 503."""

    def __init__(
        self, settings: Settings, *, serve_admin: bool = True, metrics_dir: str | None = None,
        policy: LoadReport | None = None, jwks_dir: str | None = None,
        tracing: Tracing | None = None, inner: ASGIApp | None = None,
    ) -> None:
        """``jwks_dir``: with ``workers > 1``, the directory through which the workers share
        their JWKS fetches (tokens/shared.py). ``tracing``: where spans go; by default from
        ``settings.tracing`` (OTLP when an endpoint is set, else nothing recorded)."""
        self._tracing = tracing
        self._inner = inner  # in process (gatekeeper.Gatekeeper): the app allowed requests go to
        self.settings = settings
        self._jwks_dir = None if jwks_dir is None else Path(jwks_dir)
        self._preloaded_policy = policy
        self.metrics = Metrics(multiprocess_dir=metrics_dir)
        self._serve_admin = serve_admin
        self._gate: Gate | None = None
        self.issuer_keys: dict[str, IssuerKeys] = {}
        self.draining = False

    def start_draining(self) -> None:
        """Called on SIGTERM: readiness fails so the load balancer stops sending traffic."""
        self.draining = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        gate = self._gate
        if gate is None:
            if scope["type"] == "http":
                await send_raw(send, 503, [], b"text/plain", b"")
            return
        await gate(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self._start(stack)
            except Exception as exc:
                error = str(exc) if isinstance(exc, BindError) else f"{type(exc).__name__}: {exc}"
                log.error("startup failed", extra={"error": error})
                # No message: uvicorn would log it a second time; the line above says it.
                await send({"type": "lifespan.startup.failed", "message": ""})
                return
            # Everything built so far lives as long as the process: keep it out of the
            # collector's full passes, which otherwise show up as latency spikes.
            gc.freeze()
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            self._gate = None
        await send({"type": "lifespan.shutdown.complete"})

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Build and start everything (what the lifespan's startup does), closed by ``stack``;
        for ``gatekeeper.Gatekeeper``, which runs inside another app's lifespan."""
        await self._start(stack)

    def stopped(self) -> None:
        """Requests from now on get 503 (before ``stack`` closes what they would use)."""
        self._gate = None

    async def _draining_check(self) -> Check:
        if self.draining:
            return Check(False, "draining: stopping, in-flight requests are finishing")
        return Check(True, "serving")

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """In this order; what is started first is closed last."""
        settings, metrics = self.settings, self.metrics
        tracing = self._tracing or configured_tracing(settings)
        stack.callback(tracing.shutdown)  # last: the spans of everything closed before it
        http = control_plane_client(tracing, stack)
        await start_issuer_keys(settings, http, metrics, stack, self.issuer_keys,
                                shared=self._jwks_dir)
        upstream, pool = edge.start_upstream(settings, stack)
        headers = HeaderPolicy(settings.header_section())
        access_log = AccessLog(settings.access_log)
        stack.callback(access_log.flush)
        stack.callback(metrics.flush)  # with several workers, the shared files keep them
        extra_checks: Checks = {"draining": self._draining_check}
        authorization = await start_authorization(
            settings, metrics, headers, stack, extra_checks,
            preloaded=self._preloaded_policy, serve_admin=self._serve_admin)
        self._preloaded_policy = None  # served now; a restart of the lifespan loads afresh
        redis_client = connect_redis(settings, tracing, stack)
        namespaces = SubjectNamespaces(settings.subject_prefixes())
        clients = await read_clients(settings, extra_checks)
        revocations = await stages.start_revocations(settings, redis_client, metrics, namespaces,
                                                     stack, extra_checks)
        authentication = await start_authentication(
            settings, http, metrics, headers, namespaces, self.issuer_keys, clients, redis_client,
            stack, extra_checks)
        rate_limits = stages.rate_limits(settings, redis_client, headers, metrics)
        cors = CorsPolicy(settings.cors) if settings.cors else None
        origins = stages.origin_check(settings, cors)
        signer = await stages.start_assertions(settings, stack, extra_checks)
        exchanges = stages.token_exchanges(settings, http, clients, metrics)
        pipeline = Pipeline(authentication.authenticators, authorization.authorizer, headers,
                            revocations=revocations, origins=origins, rate_limits=rate_limits,
                            tracing=tracing, assertions=signer, exchanges=exchanges)
        login = None
        if authentication.browser is not None:
            # The routes authenticate with the chain; the chain ends a revoked session with them.
            login = authentication.browser.routes(pipeline)
            pipeline = pipeline.ending_revoked_sessions(login)
        forward, websockets = edge.forwarders(settings, upstream, pool, headers, metrics, tracing,
                                              self._inner)
        self._gate = edge.gate(settings, pipeline, forward, websockets, headers, metrics,
                               access_log, login, authorization.traffic, tracing, signer, cors)
        if self._serve_admin:
            await serve_admin(settings, metrics, self.issuer_keys, upstream, extra_checks,
                              revocations, authorization.policy_page, signer, stack)
        log.info("gatekeeper ready", extra={"listen": settings.listen, "upstream": settings.upstream,
                                            "admin_listen": settings.admin_listen})


def create_app(settings: Settings, *, serve_admin: bool = True,
               policy: LoadReport | None = None, tracing: Tracing | None = None) -> GatekeeperApp:
    return GatekeeperApp(settings, serve_admin=serve_admin, policy=policy, tracing=tracing)


def create_worker_app(settings: Settings, jwks_dir: str | None = None) -> GatekeeperApp:
    """The factory each worker process calls (``workers > 1``) with the settings the parent
    validated once. uvicorn pickles its Config, this factory and its settings included, into
    every worker it spawns — a worker respawned after a crash as well — so all of them run one
    configuration, whatever the file on disk or the environment says by then. (Reading the file
    again in a respawned worker split the workers' behaviour after an edit, and crash-looped
    them on a broken file.) ``jwks_dir``: the supervisor's directory for sharing JWKS fetches."""
    logs.configure(settings.log_level)
    return GatekeeperApp(settings, metrics_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
                         jwks_dir=jwks_dir)
