"""Forward an allowed request to the app and stream the answer back. Bodies are never buffered.

This module owns the edge between ASGI and the upstream transport (gatekeeper/upstream/): request
framing checks (``body_framing``, run once by the gate before the pipeline; the result rides on
the Exchange), the outgoing target and headers, and streaming in both directions.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gatekeeper.errors import BadRequest, UpstreamError
from gatekeeper.exchange import Exchange
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.principal import Decision
from gatekeeper.request import RequestView
from gatekeeper.tracing import NO_TRACING, Tracing
from gatekeeper.types import Receive, Send
from gatekeeper.upstream import UpstreamResponse, UpstreamTransport
from gatekeeper.upstream.address import UpstreamAddress

log = logging.getLogger("gatekeeper.edge.proxy")



class ClientDisconnected(Exception):
    """The client went away while its request body was being forwarded."""


def body_framing(request: RequestView) -> tuple[bool, int | None]:
    """(has a body, its Content-Length or None for chunked); refuse ambiguous framing (400).

    Both Content-Length and Transfer-Encoding, or two Content-Length values, are how request
    smuggling starts (RFC 9112 §6.3): never guess, refuse.
    """
    lengths = request.header_values(b"content-length")
    encodings = request.header_values(b"transfer-encoding")
    if lengths and encodings:
        raise BadRequest("both Content-Length and Transfer-Encoding", code="ambiguous_framing")
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        raise BadRequest("more than one Content-Length", code="ambiguous_framing")
    if encodings:
        if len(encodings) > 1 or encodings[0].strip().lower() != b"chunked":
            raise BadRequest("unsupported Transfer-Encoding", code="ambiguous_framing")
        return True, None
    if lengths:
        value = lengths[0].strip()
        if not value.isdigit() or len(value) > 18:
            raise BadRequest("invalid Content-Length", code="ambiguous_framing")
        length = int(value)
        return length > 0, length
    return False, None


def upstream_target(request: RequestView) -> bytes:
    """The raw target byte-for-byte when it was already canonical; else the canonical path."""
    path = request.raw_path if request.raw_path == request.path.encode() else request.path.encode()
    return path + b"?" + request.query if request.query else path


async def _watch_disconnect(receive: Receive, response: UpstreamResponse) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    response.abort()


class _RequestBody:
    """The client's request body as async chunks; ``done`` once read to its end."""

    __slots__ = ("_receive", "done")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False

    def __aiter__(self) -> _RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while not self.done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            self.done = not message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            if chunk:
                return chunk
        raise StopAsyncIteration


class Proxy:
    def __init__(
        self, upstream: UpstreamAddress, transport: UpstreamTransport, headers: HeaderPolicy,
        metrics: Metrics, tracing: Tracing = NO_TRACING,
    ) -> None:
        self._transport = transport
        self._headers = headers
        self._metrics = metrics
        self._tracing = tracing
        self._default_host = upstream.netloc.encode("ascii")

    async def forward(self, exchange: Exchange, receive: Receive, send: Send,
                      decision: Decision) -> int:
        """Stream the exchange; return the status sent. ``exchange.framing`` was checked by the
        gate; ``exchange.upstream_seconds`` is set once the app's headers arrived."""
        if self._tracing is NO_TRACING:
            return await self._forward(exchange, receive, send, decision)
        with self._tracing.upstream(exchange):  # the app's traceparent names this hop
            return await self._forward(exchange, receive, send, decision)

    async def _forward(self, exchange: Exchange, receive: Receive, send: Send,
                       decision: Decision) -> int:
        has_body, length = exchange.framing
        request_id = exchange.request_id
        host = exchange.header(b"host") or self._default_host
        headers = self._headers.upstream_headers(exchange, decision.identity_headers, request_id,
                                                 host, exchange.trace)
        body = _RequestBody(receive) if has_body else None
        started = time.perf_counter()
        response = await self._transport.send(
            exchange.method, upstream_target(exchange), headers, body, length if has_body else None)
        upstream_seconds = exchange.upstream_seconds = time.perf_counter() - started
        self._metrics.upstream_seconds.observe(upstream_seconds)
        watcher: asyncio.Task[None] | None = None
        try:
            out_headers = self._headers.response_headers(response.headers)
            out_headers.append((b"x-request-id", request_id.encode("ascii")))
            await send({"type": "http.response.start", "status": response.status,
                        "headers": out_headers})
            first = True
            try:
                async for chunk in response.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    if first:
                        first = False
                    elif watcher is None and (body is None or body.done):
                        # A streamed answer: the server's send() ignores a departed client, so
                        # watch for it, or the app's stream (SSE, downloads) would run on to its
                        # end. One-chunk answers never pay for this task. Only once the request
                        # body is done: receive() must not have two readers.
                        watcher = asyncio.create_task(_watch_disconnect(receive, response))
            except UpstreamError as exc:
                if watcher is not None and watcher.done():
                    raise ClientDisconnected from exc
                # Headers are gone already: all we can do is cut the response short. A body
                # stall (UpstreamTimeout) too: re-raised, the gate would start a second response.
                log.warning("upstream response truncated",
                            extra={"request_id": request_id, "reason": exc.code})
                return response.status
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if watcher is not None:
                watcher.cancel()
            await response.aclose()
        return response.status
