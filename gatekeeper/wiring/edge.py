"""The edge: the upstream pool, the last hop (the proxy, or the app in the same process), and the
gate in front of the pipeline (forward-auth, CORS preflights, the assertion's JWKS on ``listen``)."""

from __future__ import annotations

import contextlib

from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.cors import CorsPolicy
from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.edge.gate import Forwarder, Gate, GateSettings, WebSocketForwarder
from gatekeeper.edge.inprocess import AppForward, AppWebSocket, ASGIApp
from gatekeeper.edge.jwks import PublicJwks
from gatekeeper.edge.proxy import Proxy
from gatekeeper.edge.websocket import WebSocketProxy
from gatekeeper.login.routes import LoginRoutes
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.ops.recent import Traffic
from gatekeeper.pipeline import Pipeline
from gatekeeper.settings import Settings
from gatekeeper.tracing import Tracing
from gatekeeper.upstream import Http1Pool
from gatekeeper.upstream.address import UpstreamAddress


def start_upstream(settings: Settings,
                   stack: contextlib.AsyncExitStack) -> tuple[UpstreamAddress, Http1Pool]:
    upstream = UpstreamAddress.parse(settings.upstream)  # parsed once, handed on as a value
    pool = Http1Pool(upstream.host, upstream.port, max_connections=settings.upstream_max_connections,
                     connect_timeout=settings.upstream_connect_timeout_seconds,
                     read_timeout=settings.upstream_timeout_seconds)
    stack.push_async_callback(pool.aclose)
    return upstream, pool


def forwarders(settings: Settings, upstream: UpstreamAddress, pool: Http1Pool,
               headers: HeaderPolicy, metrics: Metrics, tracing: Tracing,
               inner: ASGIApp | None) -> tuple[Forwarder, WebSocketForwarder]:
    """Where allowed requests and WebSockets go: the upstream, or ``inner`` (in process,
    ``gatekeeper.Gatekeeper``)."""
    if inner is not None:
        return (AppForward(inner, headers, metrics),
                AppWebSocket(inner, headers, metrics, settings.websocket_recheck_seconds,
                             settings.auth.leeway_seconds))
    return (Proxy(upstream, pool, headers, metrics, tracing),
            WebSocketProxy(upstream, headers, metrics, settings.upstream_connect_timeout_seconds,
                           settings.websocket_recheck_seconds, settings.auth.leeway_seconds,
                           settings.websocket_max_message_bytes))


def gate(settings: Settings, pipeline: Pipeline, forward: Forwarder,
         websockets: WebSocketForwarder, headers: HeaderPolicy, metrics: Metrics,
         access_log: AccessLog, login: LoginRoutes | None, traffic: Traffic | None,
         tracing: Tracing, signer: AssertionSigner | None, cors: CorsPolicy | None) -> Gate:
    return Gate(
        pipeline,
        forward,
        websockets,
        ForwardAuth(settings.forward_auth, headers.is_trusted),
        metrics,
        access_log,
        GateSettings(max_header_bytes=settings.max_header_bytes,
                     continue_trace=settings.tracing.continue_incoming,
                     dpop_algs=(tuple(settings.auth.dpop.algorithms)
                                if settings.auth.dpop.enabled else ())),
        login,
        traffic,
        tracing,
        jwks=(PublicJwks(signer.jwks) if signer is not None and settings.assertion is not None
              and settings.assertion.serve_jwks_on_listen else None),
        cors=cors,
    )
