"""Composition root: create_app(settings) → an ASGI app whose lifespan owns every long-lived thing
(the upstream pool, the control-plane HTTP client, the JWKS caches, the admin listener)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.util
import logging
import math
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gatekeeper import logs
from gatekeeper.assertion import JWKS_PATH
from gatekeeper.assertion.keys import load_keyring
from gatekeeper.assertion.reload import KeyReloader
from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.authn.certbound import CertificateBinding
from gatekeeper.authn.certificate import CertificateAuthenticator, CertificateClaims
from gatekeeper.authn.wiring import dpop_proofs
from gatekeeper.authz import AuthenticatedOnly, Authorizer, PolicyAuthorizer, PublicPaths
from gatekeeper.clients.client_auth import ClientAuth, build_clients, key_readiness
from gatekeeper.clients.redis import RedisClient, connect
from gatekeeper.clients.traced_http import TracedTransport
from gatekeeper.cors import CorsPolicy
from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.edge.gate import Forwarder, Gate, GateSettings, WebSocketForwarder
from gatekeeper.edge.inprocess import AppForward, AppWebSocket, ASGIApp
from gatekeeper.edge.jwks import PublicJwks
from gatekeeper.edge.proxy import Proxy
from gatekeeper.edge.responses import send_raw
from gatekeeper.edge.websocket import WebSocketProxy
from gatekeeper.errors import ConfigError
from gatekeeper.login.routes import LoginRoutes
from gatekeeper.login.wiring import BrowserLogin
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.oidc.provider import Provider
from gatekeeper.ops.access import AdminAccess
from gatekeeper.ops.admin import UpstreamProbe, create_admin_app
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.ops.recent import Traffic
from gatekeeper.origin import OriginCheck
from gatekeeper.pipeline import Authenticator, Pipeline
from gatekeeper.policy.loader import LoadReport, load_policy
from gatekeeper.policy.reload import PolicyHolder
from gatekeeper.ratelimit import RateLimits, RedisWindowCounter
from gatekeeper.revocation import RevocationList
from gatekeeper.server.choice import http_protocol
from gatekeeper.server.limits import ConnectionLimits
from gatekeeper.settings import OidcSettings, Settings, split_host_port
from gatekeeper.settings.server import HttpProtocol
from gatekeeper.settings.tls import TlsSettings
from gatekeeper.subjects import SubjectNamespaces
from gatekeeper.tls.rotation import listener_context
from gatekeeper.token_exchange import IssuerExchange, TokenExchanges
from gatekeeper.tokens.introspect import Introspector
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.tracing import NO_TRACING, Tracing
from gatekeeper.types import Check, Receive, Scope, Send
from gatekeeper.upstream import Http1Pool
from gatekeeper.upstream.address import UpstreamAddress

log = logging.getLogger("gatekeeper")



class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the main listener."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The server's section: the per-connection bounds (config keys of the same names)."""
    return ConnectionLimits(
        max_request_line_bytes=settings.max_request_line_bytes,
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        request_head_timeout_seconds=settings.request_head_timeout_seconds,
        keep_alive_timeout_seconds=settings.keep_alive_timeout_seconds,
        max_connections=settings.max_connections,
        request_body_timeout_seconds=settings.request_body_timeout_seconds,
        request_body_min_bytes_per_second=settings.request_body_min_bytes_per_second,
        send_timeout_seconds=settings.send_timeout_seconds,
    )


class BindError(Exception):
    """A listener's address cannot be bound: one line naming the key and the address."""

    def __init__(self, key: str, address: str, error: OSError) -> None:
        super().__init__(f"{key} {address}: cannot bind ({error.strerror or error})")


def bind_socket(address: str, *, key: str, reuse_port: bool = False) -> socket.socket:
    """Bound and inheritable (workers > 1 share it); BindError naming ``key`` if it cannot be."""
    host, port = split_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # several workers each serve the admin port; the kernel spreads probes
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(key, address, exc) from exc
    sock.set_inheritable(True)
    return sock


def bind_public_listener(settings: Settings) -> socket.socket | None:
    """``listen``, bound before the lifespan starts, so that "gatekeeper ready" is logged only
    once both listeners are bound (uvicorn would bind it after startup, then fail). None after
    logging why it cannot be bound."""
    try:
        return bind_socket(settings.listen, key="listen")
    except BindError as exc:
        log.error("startup failed", extra={"error": str(exc)})
        return None


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
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="admin-listener")
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        sock.close()


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
        settings = self.settings
        tracing = self._tracing or _tracing(settings)
        stack.callback(tracing.shutdown)  # last: the spans of everything closed before it
        # Control plane only (discovery, JWKS). No cookies kept: a shared client must not
        # carry one answer's Set-Cookie into the next request.
        # No pool cap: each issuer's ControlPlane caps its own calls, so one hung provider
        # cannot take the connections another issuer's key fetch needs (controlplane.py).
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
        http = httpx.AsyncClient(cookies=_NoCookies(), follow_redirects=False, trust_env=False,
                                 limits=limits,
                                 transport=TracedTransport(httpx.AsyncHTTPTransport(
                                     limits=limits, trust_env=False), tracing))
        stack.push_async_callback(http.aclose)
        for issuer in settings.auth.issuers:
            if issuer.introspection is not None and issuer.introspection.mode == "always":
                continue  # its every token is introspected: no keys to fetch, none to wait for
            keys = IssuerKeys(issuer, settings.auth, http, self.metrics, shared=self._jwks_dir)
            self.issuer_keys[issuer.issuer] = keys
            stack.push_async_callback(keys.aclose)
        # Start every issuer together: an issuer that is down must not delay the others.
        await asyncio.gather(*(keys.start() for keys in self.issuer_keys.values()))

        upstream = UpstreamAddress.parse(settings.upstream)  # parsed once, handed on as a value
        pool = Http1Pool(upstream.host, upstream.port, max_connections=settings.upstream_max_connections,
                         connect_timeout=settings.upstream_connect_timeout_seconds,
                         read_timeout=settings.upstream_timeout_seconds)
        stack.push_async_callback(pool.aclose)
        headers = HeaderPolicy(settings.header_section())
        access_log = AccessLog(settings.access_log)
        stack.callback(access_log.flush)
        stack.callback(self.metrics.flush)  # with several workers, the shared files keep them
        public_paths = PublicPaths(settings.public_paths)
        authorizer: Authorizer = AuthenticatedOnly(public_paths)
        extra_checks: dict[str, Callable[[], Awaitable[Check]]] = {"draining": self._draining_check}
        traffic: Traffic | None = None
        policy_page: PolicyPage | None = None
        if settings.policy is not None:
            holder = PolicyHolder(
                settings.policy.model, settings.policy.policy, self.metrics,
                loader=functools.partial(load_policy,
                                         cache_size=settings.policy.decision_cache_size,
                                         settings=settings.policy))
            await holder.start(watch=settings.policy.watch, loaded=self._preloaded_policy)
            self._preloaded_policy = None  # served now; a restart of the lifespan loads afresh
            stack.push_async_callback(holder.aclose)
            authorizer = PolicyAuthorizer(holder, public_paths, headers.is_trusted)
            extra_checks["policy"] = _policy_check(holder)
            if self._serve_admin:  # the policy page's samples of the traffic (ops/recent.py)
                traffic = Traffic()
                policy_page = PolicyPage(holder, traffic, public_paths=settings.public_paths,
                                         roles_claims=settings.auth.roles_claims)
        else:
            # SIGHUP's default action ends the process: an operator's `kill -HUP` (a reload
            # elsewhere) would stop the sidecar without a word.
            stack.callback(_on_sighup(lambda: log.info("SIGHUP: no policy to reload")))
        redis_client: RedisClient | None = None
        if settings.uses_redis:
            # One pool for the process, closed last: the stack unwinds in reverse.
            redis_client = connect(settings.redis_connection(), tracing)
            stack.push_async_callback(redis_client.aclose)
        namespaces = SubjectNamespaces(settings.subject_prefixes())
        # The back-channel clients, their private_key_jwt keys read and checked (ConfigError).
        clients = await asyncio.to_thread(build_clients, settings)
        if any(client.kid is not None for client in clients.all):
            extra_checks["client_keys"] = key_readiness(clients.all)
        revocations: RevocationList | None = None
        if settings.revocation.enabled:
            revocations = RevocationList(_needs(redis_client, "revocation.enabled"),
                                         settings.revocation,
                                         settings.redis.key_prefix, self.metrics,
                                         namespaces=namespaces)
            await revocations.start()
            stack.push_async_callback(revocations.aclose)
            extra_checks["revocation"] = revocations.readiness
        # Each wrapped: the claim x509 is the verified client certificate's or nobody's.
        authenticators: list[Authenticator] = [CertificateClaims(
            BearerAuthenticator(settings.auth, self.issuer_keys, self.metrics, namespaces,
                                introspectors=[
                                    Introspector(issuer, settings.auth, http,
                                                 client=clients.introspection[issuer.issuer])
                                    for issuer in settings.auth.issuers
                                    if issuer.introspection is not None],
                                dpop=dpop_proofs(settings, redis_client, headers.is_trusted),
                                binding=CertificateBinding(
                                    settings.auth.client_certificate_header,
                                    settings.auth.client_certificate_header_format,
                                    headers.is_trusted)))]
        login: LoginRoutes | None = None
        if settings.oidc is not None:
            browser = await self._start_browser_login(settings, settings.oidc, http, stack,
                                                      redis_client, clients.login)
            authenticators.append(CertificateClaims(browser.sessions))
            extra_checks["oidc"] = browser.check
            extra_checks["sessions"] = browser.store_check
        certificates_authenticate = (settings.tls is not None and settings.tls.verifies_clients
                                     and settings.tls.client_auth == "principal")
        if settings.tls is not None and certificates_authenticate:
            # Last: a request that brings a token is the token's caller.
            authenticators.append(CertificateAuthenticator(settings.tls.client_principal,
                                                           namespaces))
        rate_limits: RateLimits | None = None
        if settings.rate_limits:
            rate_limits = RateLimits(
                settings.rate_limits,
                RedisWindowCounter(_needs(redis_client, "rate_limits"), settings.redis.timeout_seconds),
                key_prefix=settings.redis.key_prefix, is_trusted=headers.is_trusted,
                metrics=self.metrics)
        cors = CorsPolicy(settings.cors) if settings.cors else None
        origins = None
        if (settings.oidc is not None or certificates_authenticate
                or any(s != "header" for s in settings.auth.token_sources)):
            # Credentials a browser sends by itself: a session, a token from a cookie, a
            # client certificate.
            own = ([] if settings.oidc is None else
                   [settings.oidc.redirect_url_of(p) for p in settings.oidc.providers])
            origins = OriginCheck(own, settings.session.allowed_origins, cors)
        signer = await self._start_assertions(settings, stack, extra_checks)
        exchanges = None
        if settings.token_exchange:
            exchanges = TokenExchanges(settings.token_exchange, {
                issuer.issuer: IssuerExchange(issuer, settings.auth, http,
                                              client=clients.exchange[issuer.issuer])
                for issuer in settings.auth.issuers if issuer.token_exchange is not None})
        pipeline = Pipeline(authenticators, authorizer, headers, revocations=revocations,
                            origins=origins, rate_limits=rate_limits, tracing=tracing,
                            assertions=signer, exchanges=exchanges)
        if settings.oidc is not None:
            # The routes authenticate with the chain; the chain ends a revoked session with them.
            login = browser.routes(pipeline)
            pipeline = pipeline.ending_revoked_sessions(login)
        forward: Forwarder = Proxy(upstream, pool, headers, self.metrics, tracing)
        websockets: WebSocketForwarder = WebSocketProxy(
            upstream, headers, self.metrics, settings.upstream_connect_timeout_seconds,
            settings.websocket_recheck_seconds, settings.auth.leeway_seconds,
            settings.websocket_max_message_bytes)
        if self._inner is not None:
            forward = AppForward(self._inner, headers, self.metrics)
            websockets = AppWebSocket(self._inner, headers, self.metrics,
                                      settings.websocket_recheck_seconds,
                                      settings.auth.leeway_seconds)
        self._gate = Gate(
            pipeline,
            forward,
            websockets,
            ForwardAuth(settings.forward_auth, headers.is_trusted),
            self.metrics,
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
        if self._serve_admin:
            admin = create_admin_app(self.metrics, self.issuer_keys,
                                     UpstreamProbe(upstream.host, upstream.port), extra_checks,
                                     revocations=revocations, access=AdminAccess(settings.admin),
                                     policy_page=policy_page,
                                     jwks=None if signer is None else signer.jwks)
            admin_tls = settings.tls if settings.tls is not None and settings.tls.admin else None
            await stack.enter_async_context(
                admin_listener(admin, settings.admin_listen, shared=settings.workers > 1,
                               limits=connection_limits(settings), http=settings.server.http,
                               tls=admin_tls))
        log.info("gatekeeper ready", extra={"listen": settings.listen, "upstream": settings.upstream,
                                            "admin_listen": settings.admin_listen})


    async def _start_assertions(
        self, settings: Settings, stack: contextlib.AsyncExitStack,
        extra_checks: dict[str, Callable[[], Awaitable[Check]]],
    ) -> AssertionSigner | None:
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

    async def _start_browser_login(
        self, settings: Settings, oidc: OidcSettings, http: httpx.AsyncClient,
        stack: contextlib.AsyncExitStack, redis_client: RedisClient | None,
        login_clients: Mapping[str, ClientAuth],
    ) -> BrowserLogin:
        providers = {p.id: Provider(p, oidc, settings.auth, http, self.metrics,
                                    client_auth=login_clients[p.id]) for p in oidc.providers}
        for provider in providers.values():
            stack.push_async_callback(provider.aclose)
        # A provider that is down at start is retried on demand: bearer traffic must not wait.
        await asyncio.gather(*(p.start() for p in providers.values()))
        login = BrowserLogin(settings, oidc, providers, self.metrics, redis_client)
        login.start()
        stack.push_async_callback(login.aclose)  # before the Redis client closes
        return login


def _on_sighup(handler: Callable[[], None]) -> Callable[[], None]:
    """Install ``handler`` for SIGHUP on the running loop; returns its removal."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


def _needs(client: RedisClient | None, key: str) -> RedisClient:
    """``Settings.uses_redis`` covers ``key``: a real error, not an assert (gone under -O)."""
    if client is None:
        raise ConfigError([f"{key}: needs redis, which is not connected"])
    return client


def _policy_check(holder: PolicyHolder) -> Callable[[], Awaitable[Check]]:
    async def check() -> Check:
        active = holder.active
        if active is None:
            return Check(False, f"no policy: {holder.last_error}")
        loaded = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder.loaded_at or 0))
        detail = f"digest {active.digest}, {len(active.rules)} rules, loaded {loaded}"
        if holder.last_error:
            detail += f"; last reload refused: {holder.last_error}"
        return Check(True, detail)
    return check


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None


def create_app(settings: Settings, *, serve_admin: bool = True,
               policy: LoadReport | None = None, tracing: Tracing | None = None) -> GatekeeperApp:
    return GatekeeperApp(settings, serve_admin=serve_admin, policy=policy, tracing=tracing)


def tracing_problems(settings: Settings) -> list[str]:
    """Why the configured tracing cannot run here (checked at start, with the config)."""
    if settings.tracing.otlp_endpoint is None:
        return []
    missing = [name for name in _OTEL_MODULES if not _installed(name)]
    return [f"tracing.otlp_endpoint: needs the OpenTelemetry SDK ({', '.join(missing)} not "
            "installed): pip install 'gatekeeper[tracing]'"] if missing else []


_OTEL_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # its parent package is missing, or cannot be imported
        return False


def _tracing(settings: Settings) -> Tracing:
    if settings.tracing.otlp_endpoint is None:
        return NO_TRACING
    problems = tracing_problems(settings)
    if problems:
        raise ConfigError(problems)
    from gatekeeper import otel

    return otel.exporting(settings.tracing)


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
