"""The last hop when gatekeeper runs inside the app's process (``gatekeeper.Gatekeeper``): an
allowed request goes to the wrapped ASGI app as the sidecar would send it over the wire.

The app gets the scope a server would build from what the sidecar forwards: the canonical path
(``raw_path``, and ``path`` decoded once), the headers ``mutate.HeaderPolicy.upstream_headers``
writes (every spelling of an identity header the client sent dropped; gatekeeper's own identity,
request id and trace context added), plus Starlette's ``AuthenticationMiddleware`` conventions:
``scope["user"]`` (``is_authenticated``, ``display_name``, ``identity``) and ``scope["auth"]``
(``scopes``), so ``request.user``, ``request.auth.scopes`` and ``@requires(...)`` work. Both are
duck-typed here: the request path imports no Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from gatekeeper.exchange import Exchange
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.principal import Decision, Principal
from gatekeeper.types import Receive, Scope, Send

# Any ASGI app: Starlette types its scope as a MutableMapping, others as a dict.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class GatekeeperUser:
    """``scope["user"]``: who gatekeeper says the caller is (Starlette's ``BaseUser`` shape)."""

    __slots__ = ("claims", "principal")

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.claims: Mapping[str, Any] = principal.claims

    @property
    def is_authenticated(self) -> bool:
        return self.principal.via != "anonymous"

    @property
    def display_name(self) -> str:
        name = self.claims.get("name") or self.claims.get("preferred_username")
        return name if isinstance(name, str) else self.identity

    @property
    def identity(self) -> str:
        return self.principal.subject if self.is_authenticated else ""

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.principal.roles)


class GatekeeperCredentials:
    """``scope["auth"]`` (Starlette's ``AuthCredentials`` shape): ``authenticated`` for a caller
    with credentials, each of its roles, and each OAuth scope of its token (``scope``/``scp``)."""

    __slots__ = ("scopes",)

    def __init__(self, principal: Principal) -> None:
        if principal.via == "anonymous":
            self.scopes: list[str] = []
            return
        scopes = ["authenticated", *principal.roles, *_token_scopes(principal.claims)]
        self.scopes = list(dict.fromkeys(scopes))


def _token_scopes(claims: Mapping[str, Any]) -> list[str]:
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def app_scope(scope: Scope, exchange: Exchange, decision: Decision, headers: HeaderPolicy) -> Scope:
    """The scope the wrapped app sees for an allowed request (HTTP or WebSocket)."""
    host = exchange.header(b"host") or b""
    sent = headers.upstream_headers(exchange, decision.identity_headers, exchange.request_id, host,
                                    exchange.trace)
    if not host:
        sent = sent[1:]  # no Host came, none is made up
    sent = [(name.lower(), value) for name, value in sent]  # ASGI names are lower case
    principal = decision.principal
    return {
        **scope,
        "method": exchange.method,
        "path": unquote(exchange.path),
        "raw_path": exchange.path.encode("ascii"),
        "headers": sent,
        "user": GatekeeperUser(principal),
        "auth": GatekeeperCredentials(principal),
        "gatekeeper": {"principal": principal, "rule": decision.rule, "reason": decision.reason},
    }


class AppForward:
    """Instead of the upstream client: call the app, in process."""

    def __init__(self, app: ASGIApp, headers: HeaderPolicy, metrics: Metrics) -> None:
        self._app = app
        self._headers = headers
        self._metrics = metrics

    async def forward(self, exchange: Exchange, receive: Receive, send: Send,
                      decision: Decision) -> int:
        status = 500
        started = time.perf_counter()

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                exchange.upstream_seconds = time.perf_counter() - started
                headers = self._headers.response_headers(message.get("headers", []))
                headers.append((b"x-request-id", exchange.request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self._app(app_scope(exchange.scope, exchange, decision, self._headers), receive,
                        sending)
        return status


class AppWebSocket:
    """An allowed WebSocket handed to the app; closed with 1008 when the caller no longer holds
    it (expired, revoked, policy changed), checked like the sidecar's relay."""

    def __init__(self, app: ASGIApp, headers: HeaderPolicy, metrics: Metrics,
                 recheck_seconds: float, leeway_seconds: float) -> None:
        self._app = app
        self._headers = headers
        self._metrics = metrics
        self._recheck_seconds = recheck_seconds
        self._leeway = leeway_seconds

    async def forward(self, scope: Scope, exchange: Exchange, receive: Receive, send: Send,
                      decision: Decision, recheck: Callable[[float], Awaitable[str | None]]) -> int:
        ended = asyncio.Event()
        accepted = False

        async def receiving() -> dict[str, Any]:
            message_task = asyncio.ensure_future(receive())
            end_task = asyncio.ensure_future(ended.wait())
            done, _ = await asyncio.wait({message_task, end_task}, return_when=asyncio.FIRST_COMPLETED)
            if message_task in done:
                end_task.cancel()
                return message_task.result()
            message_task.cancel()
            return {"type": "websocket.disconnect", "code": 1008}

        async def sending(message: dict[str, Any]) -> None:
            nonlocal accepted
            if ended.is_set():
                return  # closed by gatekeeper: the app's last words go nowhere
            if message["type"] == "websocket.accept":
                accepted = True
            await send(message)

        async def watch() -> None:
            expires_at = decision.principal.expires_at
            while True:
                wait = self._recheck_seconds
                if expires_at > 0:
                    wait = min(wait, max(0.0, expires_at + self._leeway - time.time()) + 0.01)
                await asyncio.sleep(wait)
                reason = await recheck(time.time() - self._leeway)
                if reason is not None:
                    ended.set()
                    with contextlib.suppress(Exception):
                        await send({"type": "websocket.close", "code": 1008, "reason": reason})
                    return

        watcher = asyncio.create_task(watch())
        self._metrics.websockets.inc()
        try:
            await self._app(app_scope(scope, exchange, decision, self._headers), receiving, sending)
        finally:
            self._metrics.websockets.dec()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return 101 if accepted else 403
