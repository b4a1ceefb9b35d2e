"""A small, strict HTTP/1.1 client for the one upstream app: pooled keep-alive connections on
asyncio protocols, responses parsed by httptools (llhttp).

Why not httpx or aiohttp: measured on this machine (bench/RESULTS.md), their per-request CPU cost
dominates a proxied request. Being thin, this client must be strict itself:
- framing only by Content-Length, chunked, or (responses) read-until-close — llhttp refuses
  a response with both, duplicate lengths, or malformed chunks; we refuse any other
  Transfer-Encoding and a second response to one request (response splitting), then drop the
  connection;
- the request head is checked for stray CR/LF before it is written (no request splitting);
- a connect timeout, a per-read timeout (while a request body still flows, each write
  restarts the clock for the answer), a cap on open connections; a request waiting for the cap
  is handed the next connection that is released or closed;
- a connection is reused only after a complete, keep-alive response to a fully sent request;
  on any doubt it is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol, cast

import httptools

from gatekeeper.errors import UpstreamTimeout, UpstreamUnavailable

_HIGH_WATER = 256 * 1024  # pause reading the app when this much response body is unconsumed
_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class _ProtocolViolation(Exception):
    """Raised in a parser callback: llhttp stops, feed_data raises HttpParserCallbackError."""


class UpstreamResponse(Protocol):
    status: int
    headers: list[tuple[bytes, bytes]]

    def body(self) -> AsyncIterator[bytes]: ...

    def abort(self) -> None:
        """The client went away: make body() stop and drop the connection to the app."""

    async def aclose(self) -> None: ...


class UpstreamTransport(Protocol):
    """The one method the proxy needs; swap implementations on measured evidence."""

    async def send(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Http1Pool) -> None:
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
        return not self.closed and self.transport is not None and not self.transport.is_closing()

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

    def __init__(self, conn: _Connection, pool: Http1Pool, method: str) -> None:
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
        try:
            await asyncio.wait_for(asyncio.shield(self._headers_ready), self._pool.read_timeout)
        except TimeoutError:
            raise UpstreamTimeout("the app did not answer in time") from None
        if self._error is not None:
            raise self._error  # already known (same read as the head): a clean 502, no truncation

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


class Http1Pool:
    """Keep-alive connections to one host:port, at most ``max_connections`` open."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._host = host
        self._port = port
        self.read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._max = max_connections
        self._reserved = 0  # connections open or being opened; never above _max
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        # Requests waiting at the cap, first come first served. Each is handed a released
        # connection, or None: the slot of a closed one, to open a new connection with.
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def send(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
    ) -> _Response:
        head = _request_head(method, target, headers, body is not None, content_length)
        retry = body is None and method in _IDEMPOTENT
        while True:
            conn = await self._acquire()
            reused = conn.used
            conn.used = True
            response = _Response(conn, self, method)
            conn.response = response
            try:
                await self._exchange(conn, response, head, body, content_length)
                return response
            except UpstreamUnavailable:
                await response.aclose()
                # An idle keep-alive connection may have been closed by the app just now:
                # retry once on a fresh one, if nothing was received and the request is safe.
                if reused and retry and not response.got_bytes:
                    retry = False
                    continue
                raise
            except BaseException:
                await response.aclose()
                raise

    async def _exchange(
        self,
        conn: _Connection,
        response: _Response,
        head: bytes,
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
    ) -> None:
        await conn.write(head)
        if body is None:
            response.request_sent = True
            await response.wait_headers()
            return
        sender = asyncio.create_task(_send_body(conn, response, body, content_length))
        try:
            await response.wait_headers_while_sending(sender)
        except BaseException:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            raise
        if not sender.done():
            # The app answered before reading the whole body (e.g. 413): stream the answer,
            # and never reuse this connection (request_sent stays False unless it finishes).
            sender.add_done_callback(_consume_result)
        else:
            _consume_result(sender)  # a body that failed after the answer: still forward it

    async def _acquire(self) -> _Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.reusable:
                    return conn
                self.forget(conn)
            if self._reserved < self._max:
                self._reserved += 1
                return await self._connect()
            handed = await self._wait_turn()
            if handed is None:
                return await self._connect()  # the slot of a closed connection is ours now
            if handed.reusable:
                return handed
            # Closed on its way to us: forget() has passed its slot on; wait again.

    async def _wait_turn(self) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, self.read_timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._hand_back(waiter.result())  # handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout(
                    "too many requests waiting for a connection to the app") from None
            raise

    async def _connect(self) -> _Connection:
        """Open a connection in a slot already reserved for it; free the slot on failure."""
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self._host, self._port),
                self._connect_timeout,
            )
        except TimeoutError:
            self._hand_back(None)
            raise UpstreamTimeout("connecting to the app timed out") from None
        except OSError as exc:
            self._hand_back(None)
            raise UpstreamUnavailable("the app refused the connection",
                                      code="upstream_refused") from exc
        except BaseException:
            self._hand_back(None)
            raise
        self._open.add(conn)
        if conn.closed:  # lost before we could count it open: forget() skipped it
            self.forget(conn)
            raise UpstreamUnavailable("the app closed the connection", code="upstream_closed")
        return conn

    def release(self, conn: _Connection) -> None:
        self._hand_back(conn)

    def _hand_back(self, conn: _Connection | None) -> None:
        """A connection (or, None, the slot of a closed one) goes to the first waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)
        else:
            self._reserved -= 1

    def forget(self, conn: _Connection) -> None:
        """Called when a connection closes, in use or idle: free its slot once."""
        if conn in self._open:
            self._open.discard(conn)
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
            self._hand_back(None)

    async def aclose(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._idle.clear()


async def _send_body(
    conn: _Connection, response: _Response, body: AsyncIterator[bytes], content_length: int | None
) -> None:
    sent = 0
    try:
        async for chunk in body:
            if not chunk:
                continue
            sent += len(chunk)
            if content_length is not None:
                if sent > content_length:
                    raise UpstreamUnavailable("request body longer than its Content-Length")
                await conn.write(chunk)
            else:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        if content_length is None:
            await conn.write(b"0\r\n\r\n")
        elif sent != content_length:
            raise UpstreamUnavailable("request body shorter than its Content-Length")
        response.request_sent = True
    except BaseException:
        conn.close()  # a half-sent body leaves the connection unusable
        raise


def _consume_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _request_head(
    method: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    has_body: bool,
    content_length: int | None,
) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (method.encode("ascii"), target)]
    lines.extend(b"%s: %s" % pair for pair in headers)
    if has_body:
        lines.append(b"transfer-encoding: chunked" if content_length is None
                     else b"content-length: %d" % content_length)
    elif method in ("POST", "PUT", "PATCH"):
        lines.append(b"content-length: 0")
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    # Each line adds exactly one CR and one LF: any more means a value tried to split the request.
    if head.count(b"\n") != len(lines) + 1 or head.count(b"\r") != len(lines) + 1:
        raise UpstreamUnavailable("refusing to send a header with CR/LF", code="header_injection")
    return head
