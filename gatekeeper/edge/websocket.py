"""Proxy an authenticated WebSocket to the app: the upstream handshake carries the same identity
headers as an HTTP request; then frames are relayed both ways until either side closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import EXTERNAL_CLOSE_CODES
from websockets.typing import Subprotocol

from gatekeeper.edge.responses import refuse_handshake
from gatekeeper.exchange import Exchange
from gatekeeper.headernames import fold
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.principal import Decision
from gatekeeper.types import Receive, Scope, Send
from gatekeeper.upstream.address import UpstreamAddress

log = logging.getLogger("gatekeeper.edge.websocket")


# The websockets client writes its own handshake headers; never copy the client's.
_HANDSHAKE = frozenset({b"host", b"sec-websocket-key", b"sec-websocket-version",
                        b"sec-websocket-extensions", b"sec-websocket-protocol", b"origin",
                        b"user-agent"})


class WebSocketProxy:
    def __init__(
        self, upstream: UpstreamAddress, headers: HeaderPolicy, metrics: Metrics,
        open_timeout: float, recheck_seconds: float, leeway_seconds: float, max_message_bytes: int,
    ) -> None:
        self._base = upstream.websocket_base
        self._headers = headers
        self._metrics = metrics
        self._open_timeout = open_timeout
        self._recheck_seconds = recheck_seconds
        self._leeway = leeway_seconds  # as for an HTTP request: exp plus auth.leeway_seconds
        self._max_message = max_message_bytes

    async def forward(
        self,
        scope: Scope,
        exchange: Exchange,
        receive: Receive,
        send: Send,
        decision: Decision,
        recheck: Callable[[float], Awaitable[str | None]],
    ) -> int:
        """Relay one WebSocket session; return the HTTP status of the handshake we answered.
        ``recheck(now)`` says why the caller may no longer hold it (None: still allowed)."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return 400
        request_id = exchange.request_id
        host = exchange.header(b"host") or b"localhost"
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in self._headers.upstream_headers(
                exchange, decision.identity_headers, request_id, host, exchange.trace)
            if fold(k) not in _HANDSHAKE  # Sec_WebSocket_Key is HTTP_SEC_WEBSOCKET_KEY to a WSGI app
        ]
        origin = exchange.header(b"origin")
        target = exchange.path + ("?" + exchange.query.decode("latin-1") if exchange.query else "")
        try:
            upstream = await connect(
                self._base + target,
                additional_headers=headers,
                subprotocols=[Subprotocol(p) for p in scope.get("subprotocols", [])] or None,
                origin=origin.decode("latin-1") if origin else None,  # type: ignore[arg-type]
                user_agent_header=None,
                proxy=None,  # never route the app hop through an environment proxy
                open_timeout=self._open_timeout,
                compression=None,
                # The app's messages are read whole before they are relayed: bound them as the
                # client's are (uvicorn's ws_max_size), or one message takes any amount of memory.
                max_size=self._max_message,
                max_queue=4,  # messages read ahead of a slow client: 4 x max_size at most
            )
        except InvalidStatus as exc:  # the app said no: pass its answer on, as for HTTP
            return await refuse_handshake(scope, send, exc.response.status_code,
                                 exc.response.headers.get("content-type"), bytes(exc.response.body),
                                 request_id)
        except (OSError, InvalidHandshake, TimeoutError):
            return await refuse_handshake(scope, send, 502, None, None, request_id)
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        self._metrics.websockets.inc()
        watch = self._watch(recheck, decision.principal.expires_at, request_id)
        try:
            await _relay(upstream, receive, send, watch)
        finally:
            self._metrics.websockets.dec()
            await upstream.close()
        return 101

    async def _watch(self, recheck: Callable[[float], Awaitable[str | None]], expires_at: float,
                     request_id: str) -> str:
        """Return once the session must end: checked every ``recheck_seconds`` and right after
        the credentials expire."""
        while True:
            wait = self._recheck_seconds
            if expires_at > 0:
                wait = min(wait, max(0.0, expires_at + self._leeway - time.time()) + 0.01)
            await asyncio.sleep(wait)
            reason = await recheck(time.time() - self._leeway)
            if reason is not None:
                log.info("websocket closed: no longer allowed",
                         extra={"reason": reason, "request_id": request_id})
                return reason


def _sendable(code: int) -> int:
    """1005/1006/1015 only report a close locally and are never sent (RFC 6455 §7.4.1): a client
    that vanished or closed without a code is "going away" to the app."""
    return code if code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000 else 1001


async def _relay(upstream: ClientConnection, receive: Receive, send: Send,
                 watch: Coroutine[Any, Any, str]) -> None:
    async def client_to_app() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=_sendable(message.get("code", 1000)))
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def app_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": data})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        sent = upstream.protocol.close_sent
        if sent is not None and sent.code == 1009:
            code = 1009  # the app's message was too big (RFC 6455 §7.4.1): say so to the client
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code})

    async def end_when_no_longer_allowed() -> None:
        reason = await watch
        # 1008 (policy violation) both ways, the client first (closing the app makes
        # app_to_client pass the app's close on): it reconnects and is checked again.
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
        with contextlib.suppress(ConnectionClosed, OSError):
            await upstream.close(code=1008, reason=reason)

    tasks = [asyncio.create_task(client_to_app()), asyncio.create_task(app_to_client()),
             asyncio.create_task(end_when_no_longer_allowed())]
    _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, OSError):
            await task
