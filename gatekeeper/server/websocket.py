"""The public listener's WebSocket protocol: uvicorn's websockets-sansio protocol that stops
reading from a client while that client is not reading from us, and that bounds what a
fragmented message costs to hold, not only its payload.

uvicorn answers every ping with a pong written at once, whatever the write buffer holds: a
client that sends pings and never reads the pongs grows gatekeeper's buffer without bound
(measured: +240 MiB from 256 MiB of pings). Control frames are answered by the protocol, not
the app, so the app's flow control never sees them. Reading pauses while the write buffer is
over its high-water mark and resumes when it drains; a client that never drains it stops
answering uvicorn's keep-alive pings and is closed after ``ws_ping_timeout``.

``ws_max_size`` (websocket_max_message_bytes) counts payload bytes, so a message made of
millions of empty fragments never reaches it, while uvicorn keeps one list entry per fragment
until the message ends (+60 MiB for 128 MiB of 6-byte frames, and seconds of CPU). Each
fragment is charged at least ``_FRAGMENT_COST`` bytes against the same limit: 1009 beyond.
"""

from __future__ import annotations

from asyncio import BaseTransport
from typing import Any

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame
from websockets.http11 import Request

from gatekeeper.server.tlsinfo import tls_extension

_FRAGMENT_COST = 64  # bytes a fragment is charged at least: its frame, its list entry


class EdgeWebSocketProtocol(WebSocketsSansIOProtocol):
    _write_held = False
    _message_cost = 0
    _too_big = False
    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: BaseTransport) -> None:
        super().connection_made(transport)
        if self.scheme == "wss":  # a client certificate authenticates a handshake too
            self._tls = tls_extension(transport, None)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if self._tls is not None and scope is not None:  # the app's task has not run yet
            scope["extensions"]["tls"] = self._tls

    def handle_text(self, event: Frame) -> None:
        self._message_cost = 0
        if self._charge(event):
            super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        self._message_cost = 0
        if self._charge(event):
            super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        if self._charge(event):
            super().handle_cont(event)

    def _charge(self, event: Frame) -> bool:
        if self._too_big:
            return False  # more frames of the same read, after the close
        self._message_cost += max(len(event.data), _FRAGMENT_COST)
        if self.config.ws_max_size is None or self._message_cost <= self.config.ws_max_size:
            return True
        self._too_big = True
        self.conn.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")  # RFC 6455 §7.4.1
        self.handle_parser_exception()  # the app hears 1009, the client gets it, then closed
        return False

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_held = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_held = False
        if not self.read_paused:  # uvicorn's own pause (an unread message) still holds
            self.transport.resume_reading()

    async def receive(self) -> ASGIReceiveEvent:
        message = await super().receive()
        if self._write_held:
            self.transport.pause_reading()  # uvicorn resumed reading once its queue emptied
        return message
