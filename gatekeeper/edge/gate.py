"""The ASGI edge: request → Decision (pipeline) → 401 / 403 / 400 / proxy, plus the access log.

Pure ASGI on the request path (no BaseHTTPMiddleware): this is the hottest code in gatekeeper.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import time
from typing import Any

from gatekeeper.cookies import private_answer
from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.edge.method_override import refuse_method_override
from gatekeeper.edge.proxy import ClientDisconnected, Proxy, body_framing
from gatekeeper.edge.responses import send_decision, send_error, send_raw, websocket_denial
from gatekeeper.edge.websocket import WebSocketProxy
from gatekeeper.errors import (
    BadRequest,
    GatekeeperError,
    HeadersTooLarge,
    RateLimited,
    SessionRevoked,
    UpstreamError,
)
from gatekeeper.login.routes import LoginRoutes
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.paths import canonical_path
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import ANONYMOUS, Decision, Outcome
from gatekeeper.ratelimit import RateLimits, send_rate_limited
from gatekeeper.request import RequestView
from gatekeeper.types import Receive, Scope, Send

log = logging.getLogger("gatekeeper.edge.gate")


_COUNTERS_KEPT = 4096
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._\-]{8,128}")


def request_id_of(scope: Scope) -> str:
    """Keep a well-formed X-Request-Id from the client (tracing); otherwise make one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return str(value, "ascii")
            break
    return secrets.token_hex(12)


# A WebSocket's accept carries headers too: a session refreshed at the handshake keeps its cookie.
_STARTS_AN_ANSWER = frozenset({"http.response.start", "websocket.accept",
                               "websocket.http.response.start"})


def _setting_cookies(send: Send, request: RequestView) -> Send:
    """``send`` that adds the request's queued Set-Cookie headers to whatever answer starts, and
    keeps shared caches from storing that answer."""

    async def sending(message: dict[str, Any]) -> None:
        jar = request.set_cookies
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


class Gate:
    def __init__(
        self,
        pipeline: Pipeline,
        proxy: Proxy,
        websockets: WebSocketProxy,
        metrics: Metrics,
        access_log: AccessLog,
        max_header_bytes: int,
        headers: HeaderPolicy,
        forward_auth: ForwardAuth,
        login: LoginRoutes | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self._headers = headers
        self._forward_auth_reader = forward_auth
        self._rate_limits = rate_limits
        self._login = login
        self._max_header_bytes = max_header_bytes
        self._pipeline = pipeline
        self._proxy = proxy
        self._websockets = websockets
        self._metrics = metrics
        self._access_log = access_log
        self._counters: dict[tuple[str, str, int], Any] = {}  # labelled children, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        upstream_seconds: float | None = None
        decision: Decision | None = None
        try:
            self._check_header_size(scope)
            if self._forward_auth_reader.handles(scope):
                decision, status = await self._forward_auth(scope, send, request_id)
                self._record(scope, decision, status, started, None, request_id)
                return
            request = RequestView(scope, canonical_path(scope.get("raw_path") or b"/"))
            login = self._login
            if login is not None:
                send = _setting_cookies(send, request)
                if login.handles(request.path):
                    answered = await login.handle(request, receive, send, request_id)
                    self._record(scope, answered.decision, answered.status, started, None, request_id)
                    return
            body_framing(request)
            refuse_method_override(request.query)
            decision = await self._pipeline.decide(request)
            await self._end_if_revoked(request, decision, request_id)
            if decision.allowed and self._rate_limits is not None:
                decision = await self._rate_limits.check(request, decision)
            if decision.allowed:
                if decision.response_headers:
                    send = _adding_headers(send, decision.response_headers)
                status, upstream_seconds = await self._proxy.forward(
                    scope, receive, send, request, decision, request_id)
            elif isinstance(decision.error, RateLimited):
                status = await send_rate_limited(send, decision.error, request_id,
                                                 request.header(b"accept"))
            elif login is not None and login.wants_login(request, decision):
                status = (await login.redirect_to_login(request, send, request_id)).status
            else:
                sign_out = (login.sign_out_url if login is not None
                            and decision.principal.via == "session" else None)
                status = await send_decision(send, decision, request_id, request.header(b"accept"),
                                             sign_out)
        except ClientDisconnected:
            status = 499  # nginx's convention: the client closed the request
        except (BadRequest, UpstreamError) as exc:
            principal = decision.principal if decision else ANONYMOUS
            decision = Decision(Outcome.ERROR, exc.code, principal, error=exc,
                                path=decision.path if decision else scope.get("path", ""))
            status = await send_error(send, exc, request_id)
        except Exception as exc:
            # A bug, not a client's fault. Fail closed with a plain 500 (nothing was proxied
            # unless the answer had started), and log the type only: values may hold secrets.
            log.error("internal error", extra={"request_id": request_id,
                                               "error": type(exc).__name__})
            internal = GatekeeperError("internal error", code="internal_error")
            decision = Decision(Outcome.ERROR, internal.code, error=internal,
                                path=scope.get("path", ""))
            status = 500
            with contextlib.suppress(Exception):  # the response may have started already
                await send_error(send, internal, request_id)
        self._record(scope, decision, status, started, upstream_seconds, request_id)

    def _check_header_size(self, scope: Scope) -> None:
        # The HTTP parser has no limit of its own: bound what the pipeline will look at.
        size = sum(len(name) + len(value) for name, value in scope["headers"])
        if size > self._max_header_bytes:
            raise HeadersTooLarge("request headers too large")

    async def _end_if_revoked(self, request: RequestView, decision: Decision, request_id: str) -> None:
        if self._login is not None and isinstance(decision.error, SessionRevoked):
            await self._login.end_revoked_session(request, request_id)

    async def _forward_auth(
        self, scope: Scope, send: Send, request_id: str
    ) -> tuple[Decision, int]:
        """The pipeline's answer about another request, for an ingress: 202 / 401 / 403."""
        client = scope.get("client")
        trusted = self._headers.is_trusted(client[0] if client else "")
        original = self._forward_auth_reader.original_request(scope, trusted)
        if self._login is not None:
            # A refreshed or ended session: the ingress passes Set-Cookie on to the browser
            # (nginx: auth_request_set $cookie $upstream_http_set_cookie).
            send = _setting_cookies(send, original)
        decision = await self._pipeline.decide(original)
        await self._end_if_revoked(original, decision, request_id)
        if not decision.allowed:
            accept = original.header(b"accept")
            return decision, await send_decision(send, decision, request_id, accept)
        headers = [*decision.identity_headers, (b"x-request-id", request_id.encode("ascii"))]
        await send_raw(send, 202, headers, b"text/plain", b"")
        return decision, 202

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        request: RequestView | None = None
        try:
            self._check_header_size(scope)
            request = RequestView(scope, canonical_path(scope.get("raw_path") or b"/"))
            refuse_method_override(request.query)
            if self._login is not None:
                send = _setting_cookies(send, request)
            decision = await self._pipeline.decide(request)
            if decision.allowed and self._rate_limits is not None:
                decision = await self._rate_limits.check(request, decision)
        except GatekeeperError as exc:
            decision = Decision(Outcome.ERROR, exc.code, error=exc)
        if request is None or not decision.allowed:
            await receive()  # websocket.connect
            denial = websocket_denial(scope, send)
            accept = request.header(b"accept") if request is not None else None
            if denial is None:
                await send({"type": "websocket.close", "code": 1008})  # the server answers 403
                status = 403
            elif isinstance(decision.error, RateLimited):  # 429 with Retry-After, as for HTTP
                status = await send_rate_limited(denial, decision.error, request_id, accept)
            else:  # the same answer as for HTTP: 401 with its challenge, 403, 503
                status = await send_decision(denial, decision, request_id, accept)
            self._record(scope, decision, status, started, None, request_id)
            return
        principal, path = decision.principal, request.path

        async def recheck(now: float) -> str | None:
            reason = self._pipeline.still_allowed(principal, "GET", path, now)
            if reason is None and principal.via == "session" and self._login is not None:
                reason = await self._login.sessions.still_signed_in(request)  # signed out since?
            return reason

        status = await self._websockets.forward(scope, receive, send, request, decision, request_id,
                                                recheck)
        self._record(scope, decision, status, started, None, request_id)

    def _record(
        self,
        scope: Scope,
        decision: Decision | None,
        status: int,
        started: float,
        upstream_seconds: float | None,
        request_id: str,
    ) -> None:
        total = time.perf_counter() - started
        outcome = decision.outcome.value if decision else "error"
        reason = decision.reason if decision else "error"
        counter = self._counters.get((outcome, reason, status))
        if counter is None:
            counter = self._metrics.requests.labels(outcome=outcome, reason=reason, status=str(status))
            if len(self._counters) < _COUNTERS_KEPT:  # the metric bounds its values; so does this
                self._counters[(outcome, reason, status)] = counter
        counter.inc()
        self._metrics.request_seconds.observe(total)
        client = scope.get("client")
        self._access_log.write({
            "request_id": request_id,
            "method": scope.get("method", "GET"),
            "path": decision.path if decision else scope.get("path", ""),
            "status": status,
            "subject": decision.principal.subject if decision else "anonymous",
            "decision": outcome,
            "reason": reason,
            "rule": decision.rule if decision else None,
            "total_ms": round(total * 1000, 3),
            "upstream_ms": round(upstream_seconds * 1000, 3) if upstream_seconds is not None else None,
            "client": client[0] if client else None,
        })
