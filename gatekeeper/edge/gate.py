"""The ASGI edge: dispatch on the scope type, run the pipeline, render its Decision; the access log.

    http        /oauth2/auth (forward-auth)  → pipeline → 202 / 401 / 403 / 429
                a login route (login/)        → the route answers
                a CORS preflight on a ``cors`` route → answered (cors.py), never authenticated
                anything else                 → framing checked → pipeline → proxy, or the answer
                                                (on a ``cors`` route, with its CORS headers)
    websocket   pipeline → the app's handshake, or the HTTP answer as a handshake refusal

The chain itself (authenticate, revocation, origin, authorize, rate limit, mutate) is the
pipeline's (pipeline.py), the same for all three; every answer written here is built by
responses.py. Pure ASGI on the request path (no BaseHTTPMiddleware): this is the hottest code
in gatekeeper.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gatekeeper.cookies import private_answer
from gatekeeper.cors import CorsPolicy, is_preflight, owned_headers
from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.edge.jwks import PublicJwks
from gatekeeper.edge.method_override import refuse_method_override
from gatekeeper.edge.proxy import ClientDisconnected, body_framing
from gatekeeper.edge.responses import (
    Answer,
    refuse_websocket,
    send_answer,
    send_check_passed,
    send_decision,
    send_error,
    send_preflight,
)
from gatekeeper.errors import BadRequest, GatekeeperError, HeadersTooLarge, UpstreamError
from gatekeeper.exchange import Exchange
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.paths import canonical_path
from gatekeeper.principal import ANONYMOUS, Decision, Outcome, Principal
from gatekeeper.randomids import RandomIds
from gatekeeper.request import RequestView
from gatekeeper.tracecontext import trace_of
from gatekeeper.tracing import NO_TRACING, Tracing
from gatekeeper.types import Receive, Scope, Send

log = logging.getLogger("gatekeeper.edge.gate")


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._\-]{8,128}")


# -- what the gate needs from its collaborators (narrow, so any implementation fits) ------------

class Decider(Protocol):
    """The pipeline (pipeline.py) as the edge uses it."""

    async def decide(self, exchange: Exchange) -> Decision: ...

    def still_allowed(self, principal: Principal, method: str, path: str, now: float,
                      request: RequestView | None = None) -> str | None: ...


class SignedInCheck(Protocol):
    async def still_signed_in(self, request: Exchange) -> str | None: ...


class Forwarder(Protocol):
    """The last hop of an allowed request: the app over the wire (edge/proxy.py ``Proxy``) or
    in process (edge/inprocess.py). Returns the status the client got."""

    async def forward(self, exchange: Exchange, receive: Receive, send: Send,
                      decision: Decision) -> int: ...


class WebSocketForwarder(Protocol):
    async def forward(self, scope: Scope, exchange: Exchange, receive: Receive, send: Send,
                      decision: Decision,
                      recheck: Callable[[float], Awaitable[str | None]]) -> int: ...


class LoginEdge(Protocol):
    """The browser-login routes (login/) as the edge reaches them."""

    @property
    def sign_out_url(self) -> str: ...

    @property
    def sessions(self) -> SignedInCheck: ...  # re-reads an open WebSocket's session

    def handles(self, path: str) -> bool: ...

    async def handle(self, request: Exchange, receive: Receive, request_id: str) -> Answer: ...

    def wants_login(self, request: Exchange, decision: Decision) -> bool: ...

    async def redirect_to_login(self, request: Exchange, request_id: str) -> Answer: ...


class TrafficRecorder(Protocol):
    """What the policy page samples from the traffic (ops/recent.py): bounded, and cheap enough
    to run on every request — a route already seen allocates nothing."""

    def route(self, method: str, path: str) -> None: ...

    def denied(self, entry: dict[str, Any]) -> None:
        """A 401/403's access-log entry, kept as it is (the gate builds it anyway)."""
        ...


_DENIED = frozenset({Outcome.UNAUTHENTICATED.value, Outcome.UNAUTHORIZED.value})


@dataclass(frozen=True, slots=True)
class GateSettings:
    """The gate's own settings values (from ``Settings`` at wiring)."""

    max_header_bytes: int  # the HTTP parser has no limit of its own: bound what the pipeline reads
    continue_trace: bool = True  # tracing.continue_incoming
    dpop_algs: tuple[str, ...] = ()  # auth.dpop.algorithms when enabled: a DPoP challenge on 401s


def request_id_of(scope: Scope, ids: RandomIds) -> str:
    """Keep a well-formed X-Request-Id from the client (tracing); otherwise make one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return str(value, "ascii")
            break
    return ids.hex(12)


# A WebSocket's accept carries headers too: a session refreshed at the handshake keeps its cookie.
_STARTS_AN_ANSWER = frozenset({"http.response.start", "websocket.accept",
                               "websocket.http.response.start"})


def _setting_cookies(send: Send, exchange: Exchange) -> Send:
    """``send`` that adds the exchange's queued Set-Cookie headers to whatever answer starts, and
    keeps shared caches from storing that answer."""

    async def sending(message: dict[str, Any]) -> None:
        jar = exchange.set_cookies
        if jar and message["type"] in _STARTS_AN_ANSWER:
            headers = list(message.get("headers", ()))
            if message["type"] != "websocket.accept":  # a 101 is never stored by a cache
                headers = private_answer(headers)
            message = {**message, "headers": [*headers, *jar.headers()]}
        await send(message)

    return sending


def _adding_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` that adds ``headers`` to the app's answer, unless it already names them (the
    app's own limits are the more specific)."""
    names = {name for name, _ in headers}

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message["headers"]}
            if not names & present:
                message = {**message, "headers": [*message["headers"], *headers]}
        await send(message)

    return sending


def _owning_cors(send: Send, grant: tuple[tuple[bytes, bytes], ...]) -> Send:
    """``send`` whose answer, the app's or ours, carries the route's CORS headers and no others."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": owned_headers(message["headers"], grant)}
        await send(message)

    return sending


class Gate:
    def __init__(
        self,
        pipeline: Decider,
        proxy: Forwarder,
        websockets: WebSocketForwarder,
        forward_auth: ForwardAuth,
        metrics: Metrics,
        access_log: AccessLog,
        settings: GateSettings,
        login: LoginEdge | None = None,
        traffic: TrafficRecorder | None = None,
        tracing: Tracing = NO_TRACING,
        jwks: PublicJwks | None = None,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._tracing = tracing
        self._continue_trace = settings.continue_trace
        self._ids = RandomIds()
        self._proxy = proxy
        self._websockets = websockets
        self._forward_auth = forward_auth
        self._metrics = metrics
        self._access_log = access_log
        self._max_header_bytes = settings.max_header_bytes
        self._dpop_algs = settings.dpop_algs
        self._login = login
        self._traffic = traffic
        self._jwks = jwks  # assertion.serve_jwks_on_listen
        self._cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope, self._ids)
        exchange: Exchange | None = None
        decision: Decision | None = None
        login = self._login
        try:
            self._check_header_size(scope)
            if self._forward_auth.handles(scope):
                exchange = self._forward_auth.original(scope, request_id, started)
                self._trace(exchange)
                if login is not None:
                    # A refreshed or ended session: the ingress passes Set-Cookie on to the
                    # browser (nginx: auth_request_set $cookie $upstream_http_set_cookie).
                    send = _setting_cookies(send, exchange)
                decision = await self._pipeline.decide(exchange)
                status = await (send_check_passed(send, decision, request_id) if decision.allowed
                                else send_decision(send, decision, request_id,
                                                   exchange.header(b"accept"),
                                                   dpop_algs=self._dpop_algs))
            else:
                exchange = Exchange(scope, canonical_path(scope.get("raw_path") or b"/"),
                                    request_id, started)
                self._trace(exchange)
                if self._jwks is not None and self._jwks.handles(exchange.path):
                    decision, status = await self._jwks.answer(exchange, send)
                    self._record(scope, request_id, started, exchange, decision, status)
                    return
                if login is not None:
                    send = _setting_cookies(send, exchange)
                    if login.handles(exchange.path):
                        answer = await login.handle(exchange, receive, request_id)
                        decision, status = answer.decision, await send_answer(send, answer)
                        # Not a route the policy decides: kept out of the route sample.
                        self._record(scope, request_id, started, exchange, decision, status,
                                     policy_route=False)
                        return
                exchange.framing = body_framing(exchange)
                refuse_method_override(exchange.query)
                cors = self._cors.route(exchange.path) if self._cors is not None else None
                if cors is not None:
                    if is_preflight(exchange):  # answered here: a preflight carries no credentials
                        decision = cors.preflight(exchange)
                        status = await send_preflight(send, decision, request_id,
                                                      exchange.header(b"accept"))
                        self._record(scope, request_id, started, exchange, decision, status)
                        return
                    send = _owning_cors(send, cors.grant(exchange))
                decision = await self._pipeline.decide(exchange)
                if decision.allowed:
                    if decision.response_headers:
                        send = _adding_headers(send, decision.response_headers)
                    status = await self._proxy.forward(exchange, receive, send, decision)
                else:
                    status = await self._refuse(exchange, send, decision)
        except ClientDisconnected:
            status = 499  # nginx's convention: the client closed the request
        except (BadRequest, UpstreamError) as exc:
            principal = decision.principal if decision else ANONYMOUS
            decision = Decision(Outcome.ERROR, exc.code, principal, error=exc)
            status = await send_error(send, exc, request_id)
        except Exception as exc:
            # A bug, not a client's fault. Fail closed with a plain 500 (nothing was proxied
            # unless the answer had started), and log the type only: values may hold secrets.
            log.error("internal error", extra={"request_id": request_id,
                                               "error": type(exc).__name__})
            internal = GatekeeperError("internal error", code="internal_error")
            decision = Decision(Outcome.ERROR, internal.code, error=internal)
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                await send_error(send, internal, request_id)
        self._record(scope, request_id, started, exchange, decision, status)

    async def _refuse(self, exchange: Exchange, send: Send, decision: Decision) -> int:
        """A proxied request the pipeline refused: a browser is sent to log in, others get
        the decision's answer (401, 403, 429, 503…)."""
        login = self._login
        if login is not None and login.wants_login(exchange, decision):
            return await send_answer(send, await login.redirect_to_login(exchange,
                                                                         exchange.request_id))
        sign_out = (login.sign_out_url if login is not None
                    and decision.principal.via == "session" else None)
        return await send_decision(send, decision, exchange.request_id, exchange.header(b"accept"),
                                   sign_out, dpop_algs=self._dpop_algs)

    def _check_header_size(self, scope: Scope) -> None:
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > self._max_header_bytes:
            raise HeadersTooLarge("request headers too large")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope, self._ids)
        exchange: Exchange | None = None
        try:
            self._check_header_size(scope)
            exchange = Exchange(scope, canonical_path(scope.get("raw_path") or b"/"),
                                request_id, started)
            self._trace(exchange)
            refuse_method_override(exchange.query)
            if self._login is not None:
                send = _setting_cookies(send, exchange)
            decision = await self._pipeline.decide(exchange)
        except GatekeeperError as exc:
            decision = Decision(Outcome.ERROR, exc.code, error=exc)
        if exchange is None or not decision.allowed:
            await receive()  # websocket.connect
            accept = exchange.header(b"accept") if exchange is not None else None
            status = await refuse_websocket(scope, send, decision, request_id, accept)
            self._record(scope, request_id, started, exchange, decision, status)
            return
        principal, path, login, opened = decision.principal, exchange.path, self._login, exchange

        async def recheck(now: float) -> str | None:
            reason = self._pipeline.still_allowed(principal, "GET", path, now, opened)
            if reason is None and principal.via == "session" and login is not None:
                reason = await login.sessions.still_signed_in(opened)  # signed out since?
            return reason

        status = await self._websockets.forward(scope, exchange, receive, send, decision, recheck)
        self._record(scope, request_id, started, exchange, decision, status)

    def _trace(self, exchange: Exchange) -> None:
        exchange.trace = trace_of(exchange.headers, continue_incoming=self._continue_trace,
                                  ids=self._ids)
        exchange.span = self._tracing.begin(exchange)

    def _record(
        self,
        scope: Scope,
        request_id: str,
        started: float,
        exchange: Exchange | None,
        decision: Decision | None,
        status: int,
        policy_route: bool = True,
    ) -> None:
        total = time.perf_counter() - started
        outcome = decision.outcome.value if decision else "error"
        reason = decision.reason if decision else "error"
        metrics = self._metrics
        metrics.count_request(outcome, reason, status)  # both batched: a few list and dict updates
        metrics.request_seconds.observe(total)
        client = scope.get("client")
        # The path decided on: canonical, or for forward-auth the one asked about; before a
        # target could be read (400), the path as the server decoded it.
        path = exchange.path if exchange is not None else scope.get("path", "")
        upstream_seconds = exchange.upstream_seconds if exchange is not None else None
        trace = exchange.trace if exchange is not None else None
        if exchange is not None and exchange.span is not None:
            exchange.span.end(status, outcome)
        entry = {
            "request_id": request_id,
            "method": scope.get("method", "GET"),
            "path": path,
            "status": status,
            "subject": decision.principal.subject if decision else "anonymous",
            "decision": outcome,
            "reason": reason,
            "rule": decision.rule if decision else None,
            "total_ms": round(total * 1000, 3),
            "upstream_ms": round(upstream_seconds * 1000, 3) if upstream_seconds is not None else None,
            "client": client[0] if client else None,
            "trace_id": trace.trace_id if trace is not None else None,
        }
        self._access_log.write(entry)
        traffic = self._traffic
        if traffic is not None:  # the policy page's samples (ops/recent.py)
            if exchange is not None and policy_route:
                traffic.route(exchange.method, path)
            if outcome in _DENIED:
                traffic.denied(entry)
