"""One keep-alive connection to the app (an asyncio protocol fed to httptools) and the
response being read on it."""

from __future__ import annotations

import asyncio
import collections
import select
from collections.abc import AsyncIterator
from typing import Protocol, cast

import httptools

from gatekeeper.errors import UpstreamTimeout, UpstreamUnavailable

_HIGH_WATER = 256 * 1024  # pause reading the app when this much response body is unconsumed
_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class ConnectionOwner(Protocol):
    """What a connection needs of its pool (``Http1Pool``): declared here, so the pool imports
    the connection and not the other way round."""

    read_timeout: float

    def release(self, conn: _Connection) -> None: ...

    def forget(self, conn: _Connection) -> None: ...


class _ProtocolViolation(Exception):
    """Raised in a parser callback: llhttp stops, feed_data raises HttpParserCallbackError."""


class _Connection(asyncio.Protocol):
    def __init__(self, pool: ConnectionOwner) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: _Response | None = None
        self.closed = False
        self.used = False
        self.written = 0  # bytes handed to the transport: progress while a body is sent
        self._can_write = asyncio.Event()
        self._can_write.set()

    # -- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            response.fail(UpstreamUnavailable("unexpected protocol upgrade", code="upstream_protocol"))
            self.close()
        except httptools.HttpParserError:
            response.fail(UpstreamUnavailable("malformed response", code="upstream_protocol"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._can_write.set()
        if self.response is not None:
            self.response.connection_lost()
        self._pool.forget(self)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # -- httptools callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response.status:
            # A second final response to one request (response splitting/desync): what follows
            # belongs to nobody. Raising makes feed_data fail, so nothing more is parsed.
            raise _ProtocolViolation("unsolicited response")

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        # Once the final status is known, llhttp reports chunked trailers here: they must not
        # become headers (RFC 9110 §6.5.1), nor race in when they share a read with the head.
        if response is not None and not response.status:
            response.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.headers_complete(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response.feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            self.response.message_complete(self.parser.should_keep_alive())

    # -- used by the pool -----------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        return (not self.closed and self.transport is not None and not self.transport.is_closing()
                and not self._unread())

    def _unread(self) -> bool:
        """Bytes (or an EOF) the kernel holds that the loop has not delivered yet: an answer
        nobody asked for, still in flight when this idle connection is about to serve the next
        request (response desync, CWE-444). Polled, not read: one syscall per reuse."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))

    async def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamUnavailable("connection to the app closed", code="upstream_closed")
        self.transport.write(data)
        self.written += len(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Response:
    """One response being read; also the UpstreamResponse the proxy streams from."""

    def __init__(self, conn: _Connection, pool: ConnectionOwner, method: str) -> None:
        self._conn = conn
        self._pool = pool
        self._method = method
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._headers_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._keep_alive = False
        self._error: Exception | None = None
        self._until_close = False
        self._paused = False
        self.got_bytes = False
        self.request_sent = False
        self._released = False

    # -- fed by the connection ------------------------------------------------------------
    def headers_complete(self, status: int) -> None:
        self.got_bytes = True
        if 100 <= status < 200:
            self.headers = []  # interim 1xx: not forwarded; the final response follows
            return
        has_length = chunked = False
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
            elif lower == b"transfer-encoding":
                # llhttp reads any other coding until close (RFC 9112 §6.3); we forward no
                # coding but chunked, and two TE lines are a framing disagreement: refuse.
                if chunked or value.strip().lower() != b"chunked":
                    raise _ProtocolViolation("unsupported Transfer-Encoding")
                chunked = True
        self.status = status
        self._until_close = not has_length and not chunked and status not in (204, 304)
        if not self._headers_ready.done():
            self._headers_ready.set_result(None)
        if self._method == "HEAD":
            # llhttp cannot be told the request was HEAD; end here and drop the connection.
            self._complete = True
            self._conn.close()
            self._wake()

    def feed(self, data: bytes) -> None:
        if self._complete:
            return  # a body after the head of a HEAD response: not ours to forward
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def message_complete(self, keep_alive: bool) -> None:
        if self.status == 0:
            return  # end of an interim 1xx message
        self._complete = True
        self._keep_alive = keep_alive
        self._wake()

    def connection_lost(self) -> None:
        if self._complete:
            return
        if self._headers_ready.done() and self._until_close:
            self._complete = True  # read-until-close framing: EOF ends the body
        else:
            self.fail(UpstreamUnavailable("the app closed the connection", code="upstream_closed"))
        self._wake()

    def fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        if not self._headers_ready.done():
            self._headers_ready.set_exception(error)
            self._headers_ready.exception()  # retrieved here; the sender re-raises it
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- read by the proxy ----------------------------------------------------------------
    async def wait_headers(self) -> None:
        ready = self._headers_ready
        if not ready.done():
            # A timer, not wait_for + shield: this runs once per proxied request. Every
            # set_result/set_exception on the future checks done() first, so a cancelled wait
            # cannot break the protocol callbacks.
            timer = asyncio.get_running_loop().call_later(
                self._pool.read_timeout, self._headers_timed_out)
            try:
                await ready
            finally:
                timer.cancel()
        else:
            ready.result()
        if self._error is not None:
            raise self._error  # already known (same read as the head): a clean 502, no truncation

    def _headers_timed_out(self) -> None:
        if not self._headers_ready.done():
            self._headers_ready.set_exception(UpstreamTimeout("the app did not answer in time"))

    async def wait_headers_while_sending(self, sender: asyncio.Task[None]) -> None:
        """Like wait_headers, but while the request body still flows each write restarts the
        clock: an upload longer than read_timeout is not a timeout, a stalled one is."""
        conn = self._conn
        while not sender.done():
            written = conn.written
            await asyncio.wait((self._headers_ready, sender), timeout=self._pool.read_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            if self._headers_ready.done():
                break  # the app answered, possibly before reading the whole body
            if not sender.done() and conn.written == written:
                raise UpstreamTimeout("the request body stopped flowing")
        else:
            sender.result()  # the body failed (client gone, app closed): raise that
        await self.wait_headers()

    async def body(self) -> AsyncIterator[bytes]:
        timeout = self._pool.read_timeout
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER:
                    self._paused = False
                    self._conn.resume_reading()
                yield chunk
                continue
            if self._error is not None:
                raise self._error
            if self._complete:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout)
            except TimeoutError:
                self.fail(UpstreamTimeout("the app stopped sending"))
            finally:
                self._waiter = None

    def abort(self) -> None:
        if self._complete or self._released:
            return  # done already; the connection may be back in the pool
        self.fail(UpstreamUnavailable("the client went away", code="client_gone"))
        self._conn.close()  # the app sees the disconnect and can stop its stream

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        done_cleanly = (self._complete and self._error is None and self._keep_alive
                        and not self._chunks and self.request_sent)
        self._conn.response = None
        if done_cleanly and self._conn.reusable:
            self._pool.release(self._conn)
        else:
            self._conn.close()  # its slot is freed when the loop reports connection_lost
