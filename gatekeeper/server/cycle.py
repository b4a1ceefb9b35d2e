"""One request and its answer on gatekeeper's own HTTP/1.1 protocol (http11.py): the ASGI
``receive`` and ``send`` of one exchange.

- The request body is kept as the list of pieces the parser gave, joined once per receive();
  the connection stops reading while more than ``BODY_HIGH_WATER`` bytes wait here, so a client
  cannot make gatekeeper hold a body the app is not taking.
- ``Expect: 100-continue`` is answered on the first receive(): only an app that decided to take
  the body (the pipeline allowed the request) reads it. An answer sent without reading it closes
  the connection: the client may or may not send the body now, and either way the next bytes
  could not be framed (RFC 9110 §10.1.1).
- The response head is held until the first body message, so that head and a small body go out
  in one ``transport.write``; a head whose body does not follow at once is written on the next
  loop turn. Before each write, send() waits while the transport's buffer is over its high-water
  mark: a slow client makes the app wait, never gatekeeper buffer its answer.
- Response header names and values are checked for CR, LF and other bytes that would split the
  response (RFC 9112 §2.2, CWE-113) and the framing is chosen here: Content-Length as the app
  gave it, else chunked; none for HEAD, 204 and 304 (RFC 9110 §6.4.1).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any, Protocol

from gatekeeper.server.common import STATUS_LINE

log = logging.getLogger("gatekeeper.server")

BODY_HIGH_WATER = 65536  # request body bytes held for the app before reading pauses
_BAD_NAME = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SMALL_BODY = 16384  # a body up to this is copied into the head's write; beyond, written apart


class Connection(Protocol):
    """What an exchange needs of its connection (http11.Http11Protocol)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    write_paused: bool

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]: ...

    async def drain(self) -> None: ...
    def body_taken(self, exchange: Exchange) -> None: ...
    def response_done(self, exchange: Exchange) -> None: ...
    def continue_sent(self) -> None: ...


class Exchange:
    __slots__ = (
        "_chunked",
        "_final_given",
        "_head",
        "_head_only",
        "_length_left",
        "_waiter",
        "buffered",
        "chunks",
        "conn",
        "disconnected",
        "keep_alive",
        "more_body",
        "response_complete",
        "response_started",
        "scope",
        "waiting_for_100_continue",
    )

    def __init__(self, conn: Connection, scope: dict[str, Any], *, keep_alive: bool,
                 expect_continue: bool) -> None:
        self.scope = scope
        self.conn = conn
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_continue
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.more_body = True
        self._final_given = False  # the request message's last piece went to the app
        self._waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._head = b""  # the response head, until its first body message
        self._chunked = False
        self._length_left = 0
        self._head_only = scope["method"] == "HEAD"

    # -- what the connection tells us ---------------------------------------------------------
    def body(self, piece: bytes) -> None:
        self.chunks.append(piece)
        self.buffered += len(piece)
        self.wake()

    def message_complete(self) -> None:
        self.more_body = False
        self.wake()

    def lost(self) -> None:
        self.disconnected = True
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- ASGI ----------------------------------------------------------------------------------
    async def run(self, app: Any) -> None:
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            log.error("app failed to answer", extra={"reason": "exception"}, exc_info=exc)
            if not self.response_started:
                await self._send_500()
            else:
                self.conn.transport.close()
            if not isinstance(exc, Exception):
                raise
        else:
            if result is not None:
                log.error("app failed to answer", extra={"reason": "returned a value"})
                self.conn.transport.close()
            elif not self.response_started and not self.disconnected:
                log.error("app failed to answer", extra={"reason": "returned without an answer"})
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                log.error("app failed to answer", extra={"reason": "returned before the answer ended"})
                self.conn.transport.close()

    async def _send_500(self) -> None:
        await self.send({"type": "http.response.start", "status": 500, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"),
            (b"connection", b"close")]})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    async def receive(self) -> dict[str, Any]:
        conn = self.conn
        if self.waiting_for_100_continue:
            self.waiting_for_100_continue = False
            if not self.response_started and not conn.transport.is_closing():
                conn.transport.write(_CONTINUE)
                conn.continue_sent()
        while not (self.chunks or (not self.more_body and not self._final_given)
                   or self.disconnected or self.response_complete):
            conn.body_taken(self)  # nothing held: the connection may read again
            self._waiter = conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self.buffered = 0
        if not self.more_body:
            self._final_given = True
        conn.body_taken(self)
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Any) -> None:
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got {kind!r}.")
            self.response_started = True
            self._head = self._encode_head(message["status"], message.get("headers", ()))
            conn.loop.call_soon(self._flush_head)  # unless a body message joins it first
            return
        if self.response_complete or kind != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message {kind!r}.")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self._head_only:
            out = b""
        elif self._chunked:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self._length_left:
                raise RuntimeError("Response content longer than Content-Length")
            self._length_left -= len(body)
            out = body
        head = self._head
        if head:
            self._head = b""
            if len(out) <= _SMALL_BODY:
                conn.transport.write(head + out)  # one write, one segment for a small answer
            else:
                conn.transport.write(head)
                conn.transport.write(out)
        elif out:
            conn.transport.write(out)
        if not more:
            if self._length_left and not self._head_only:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.wake()
            if not self.keep_alive:
                conn.transport.close()
            conn.response_done(self)

    def _flush_head(self) -> None:
        head = self._head
        if head and not self.disconnected:
            self._head = b""
            self.conn.transport.write(head)

    def _encode_head(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        if self.waiting_for_100_continue and self.more_body:
            self.keep_alive = False  # answered before the body was asked for: see the docstring
            self.waiting_for_100_continue = False
        parts = [STATUS_LINE[status]]
        length: bytes | None = None
        chunked = close = False
        for name, value in (*self.conn.default_headers, *headers):
            if _BAD_NAME.search(name):
                raise RuntimeError("Invalid HTTP header name.")
            if _BAD_VALUE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            name = name.lower()
            if name == b"content-length" and length is None and not chunked:
                length = value
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                chunked, length = True, None
            elif name == b"connection" and b"close" in [
                    token.strip().lower() for token in value.split(b",")]:
                self.keep_alive = False
                close = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close:
            parts.append(b"connection: close\r\n")
        if length is not None:
            self._length_left = int(length.decode())
        elif not chunked and not self._head_only and status not in (204, 304):
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        self._chunked = chunked and not self._head_only
        parts.append(b"\r\n")
        return b"".join(parts)
