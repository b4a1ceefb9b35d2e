"""The public listener's WebSocket protocol: uvicorn's websockets-sansio protocol that stops
reading from a client while that client is not reading from us.

uvicorn answers every ping with a pong written at once, whatever the write buffer holds: a
client that sends pings and never reads the pongs grows gatekeeper's buffer without bound
(measured: +240 MiB from 256 MiB of pings). Control frames are answered by the protocol, not
the app, so the app's flow control never sees them. Reading pauses while the write buffer is
over its high-water mark and resumes when it drains; a client that never drains it stops
answering uvicorn's keep-alive pings and is closed after ``ws_ping_timeout``.
"""

from __future__ import annotations

from uvicorn._types import ASGIReceiveEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class EdgeWebSocketProtocol(WebSocketsSansIOProtocol):
    _write_held = False

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
