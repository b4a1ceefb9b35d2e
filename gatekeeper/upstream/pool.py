"""The pool: at most ``max_connections`` to the app, reused when safe, handed out in order."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from gatekeeper.errors import UpstreamTimeout, UpstreamUnavailable
from gatekeeper.upstream.connection import _IDEMPOTENT, _Connection, _Response


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
                if self._retire(conn):
                    return await self._connect()  # its slot is ours
            if self._reserved < self._max:
                self._reserved += 1
                return await self._connect()
            handed = await self._wait_turn()
            if handed is None:
                return await self._connect()  # the slot of a closed connection is ours now
            if handed.reusable:
                return handed
            if self._retire(handed):
                return await self._connect()
            # Closed on its way to us: forget() has passed its slot on; wait again.

    def _retire(self, conn: _Connection) -> bool:
        """Close a connection that must not serve another request (closed by the app, or with
        bytes nobody asked for). True when its slot passes to the caller; False when the
        connection was already lost and forget() has passed the slot on."""
        conn.close()
        if conn in self._open:
            self._open.discard(conn)  # connection_lost's forget() will find nothing to free
            return True
        return False

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
