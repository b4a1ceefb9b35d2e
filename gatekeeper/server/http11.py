"""Gatekeeper's own HTTP/1.1 server protocol (``server.http: gatekeeper``), run by uvicorn.

uvicorn stays the process runner (workers, lifespan, signals, sockets, graceful shutdown); its
``http`` option takes this class (``http11_protocol(limits)``). It is an ``asyncio.Protocol`` on
httptools' parser, written for a proxy, with the same bounds as ``protocol.EdgeProtocol`` (the
stock uvicorn protocol with gatekeeper's guards, ``server.http: uvicorn``), kept in one place:

- Limits as bytes arrive (limits.py): the parser is fed at most the head's remaining raw budget,
  ``PIPELINE_STEP`` bytes at a time (feeder.py, shared with protocol.py); the request line
  (414), each header's bytes and the header count (431) are checked in the callbacks; a
  deadline runs from a head's first byte (or the connection's opening) to its blank line
  (408); an idle keep-alive connection is closed after ``keep_alive_timeout_seconds``; one
  connection beyond ``max_connections`` per worker is answered 503 before any byte of it is
  parsed; a request body must keep a minimum pace (408); a client that takes no byte of an
  answer for ``send_timeout_seconds`` is reset.
  What a connection holds is bounded by these: one head (``max_head_bytes``), the request body
  up to ``cycle.BODY_HIGH_WATER`` plus one read, the requests parsed ahead within one step, and
  at most ``PIPELINE_STASH_LIMIT`` unparsed bytes behind them (reading paused meanwhile).
- The ASGI scope is built once per request in ``on_headers_complete`` (scope.py): the header
  list the callbacks filled (names lower-cased, values as bytes) is the scope's own, the target
  is split at ``?`` without a URL object, nothing is copied again.
- One exchange is answered at a time (cycle.py): a pipelined request waits, parsed, in a queue
  (RFC 9112 §9.3.2: answers in order); reading stops while it waits and resumes, and the bytes
  kept behind it are parsed, once the answer before it is complete.
- Flow control both ways: reading pauses while the app has not taken a body's buffered bytes,
  and ``send`` waits for the transport's buffer to drain below its high-water mark, so a slow
  client slows the app's answer down instead of growing gatekeeper's memory.
- A WebSocket handshake is handed, as uvicorn's own protocol does, to the ``ws`` protocol class
  (websocket.py); another ``Upgrade`` is answered as a plain request and the connection closed.
- Over TLS, the ASGI TLS extension (tlsinfo.py: the verified client certificate among it) is
  built once per connection and handed to each request's scope; ``scheme`` is ``https``.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any, cast

import httptools
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from gatekeeper.peercert import CertificateCache
from gatekeeper.server.common import RefusalLog, plain_answer, target_problem
from gatekeeper.server.cycle import BODY_HIGH_WATER, Exchange
from gatekeeper.server.feeder import BudgetFeeder
from gatekeeper.server.limits import BodyPace, ConnectionLimits, HeadBudget, HeadRefused
from gatekeeper.server.scope import ConnectionScope
from gatekeeper.server.tlsinfo import tls_extension


class Http11Protocol(BudgetFeeder, asyncio.Protocol):
    """Build with ``http11_protocol(limits)`` as uvicorn's ``http`` option."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None, *, limits: ConnectionLimits,
                 refusals: RefusalLog, certificates: CertificateCache | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._connections: set[Any] = server_state.connections
        self._tasks: set[asyncio.Task[None]] = server_state.tasks
        self._limits = limits
        self._refusals = refusals
        self._certificates = certificates
        self._parser = httptools.HttpRequestParser(self)
        # Answer the first of two pipelined requests when the first says Connection: close.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._budget = HeadBudget(limits)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._scopes: ConnectionScope = None  # type: ignore[assignment]  # once connected
        # The message being parsed.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect = False
        self._websocket: tuple[bytes, bytes, list[tuple[bytes, bytes]]] | None = None
        self._parsing: Exchange | None = None
        self._body_left = 0  # bytes of a Content-Length body still to come
        # The exchange being answered, those parsed ahead, the bytes kept behind them.
        self.cycle: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._stash = b""
        # Flow control and timers.
        self._reading = True
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._pace: BodyPace | None = None
        self._unsent = 0

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        return cast("list[tuple[bytes, bytes]]", self._server_state.default_headers)

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._connections.add(self)
        self.transport = transport
        https = is_ssl(transport)
        self._scopes = ConnectionScope(
            asgi_version=self._config.asgi_version, root_path=self._config.root_path,
            server=cast("tuple[str, int] | None", get_local_addr(transport)),
            client=get_remote_addr(transport), scheme="https" if https else "http",
            app_state=self._app_state,
            tls=tls_extension(transport, self._certificates) if https else None)
        if len(self._connections) > self._limits.max_connections:
            self._refuse(HeadRefused(503, "max_connections reached"))
            return
        self._arm_head_deadline()  # a client that opens and never sends is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        for timer in (self._head_timer, self._idle_timer, self._body_timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = self._body_timer = self._send_timer = None
        for exchange in (self.cycle, self._parsing, *self._queue):
            if exchange is not None and not exchange.response_complete:
                exchange.lost()
        self._queue.clear()
        self._release_writers()
        if exc is None:
            self.transport.close()
        # Break the reference cycles (the parser, the exchanges and a refusal's traceback point
        # back here), so what the connection held (a head up to its limit, stashed bytes) is
        # freed now, by reference counting, not by the cyclic GC, whose next full pass may be
        # many connections away: a flood of refused heads would keep tens of KiB each meanwhile.
        self._parser = None  # type: ignore[assignment]
        self._budget.refused = None  # its traceback's frames point back here
        self.cycle = self._parsing = None
        self._stash, self._url, self._headers = b"", b"", []

    def eof_received(self) -> None:
        return None  # the transport closes (as uvicorn's protocol does)

    def shutdown(self) -> None:
        """uvicorn's graceful stop: close when idle, else after the answer in progress."""
        if self.cycle is None:
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    def pause_writing(self) -> None:
        self.write_paused = True
        self._arm_send_deadline()

    def resume_writing(self) -> None:
        self._disarm_send_deadline()
        self._release_writers()

    # -- what an exchange asks of its connection (cycle.Connection) ----------------------------
    async def drain(self) -> None:
        if self.write_paused:
            if self._drained is None:
                self._drained = self.loop.create_future()
            await asyncio.shield(self._drained)  # one waiter's cancellation is not the others'

    def body_taken(self, exchange: Exchange) -> None:
        self._sync_reading()

    def continue_sent(self) -> None:
        if self._pace is not None:
            self._pace.restart(self.loop.time())  # the body's clock starts when it is asked for

    def response_done(self, exchange: Exchange) -> None:
        self._server_state.total_requests += 1
        if exchange is self.cycle:
            self.cycle = None
        if self.transport.is_closing():
            return
        if self._queue:
            self._start(self._queue.popleft())
        else:
            self._idle_timer = self.loop.call_later(self._limits.keep_alive_timeout_seconds,
                                                    self._idle_timed_out)
        if self._stash:
            self.loop.call_soon(self._feed_stash)  # outside the answer's send()
        self._sync_reading()
        if self._budget.started:
            self._arm_head_deadline()  # a pipelined head arrived while we answered

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._expect = False

    def on_url(self, url: bytes) -> None:
        self._budget.target(len(url), len(self._parser.get_method()))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        budget = self._budget
        budget.header(name, value)  # trailers count too: they are bytes held all the same
        if not budget.reading_head:
            return  # a trailer: discarded (RFC 9110 §6.5.1), nothing forwards trailers
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing OWS (RFC 9110 §5.5)
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        url, headers, parser = self._url, self._headers, self._parser
        self._head_complete(headers)
        problem = target_problem(url, headers)
        if problem is not None:
            raise httptools.HttpParserError(problem)  # 400
        method_bytes = parser.get_method()
        version = parser.get_http_version()
        keep_alive = version != "1.0" and parser.should_keep_alive()
        if parser.should_upgrade():
            if self._is_websocket(headers):
                self._websocket = (method_bytes, url, headers)
                self._parsing = None
                return
            keep_alive = False  # the parser stops at an upgrade: nothing more can be framed
        scope = self._scopes.request(method_bytes, url, version, headers)
        exchange = Exchange(self, scope, keep_alive=keep_alive, expect_continue=self._expect)
        self._parsing = exchange
        if self.cycle is None:
            self._start(exchange)
        else:
            self._queue.append(exchange)

    def on_body(self, body: bytes) -> None:
        self._body_arrived(len(body))
        exchange = self._parsing
        if exchange is None or exchange.response_complete or exchange.disconnected:
            return  # answered already: the rest of the body is read and dropped
        exchange.body(body)
        if exchange.buffered > BODY_HIGH_WATER and self._reading:
            self._sync_reading()

    def on_message_complete(self) -> None:
        self._message_done()
        exchange, self._parsing = self._parsing, None
        if exchange is not None:
            exchange.message_complete()

    # -- exchanges, pipelining and reading ----------------------------------------------------
    def _start(self, exchange: Exchange) -> None:
        self.cycle = exchange
        task = self.loop.create_task(exchange.run(self.app))
        task.add_done_callback(self._tasks.discard)
        self._tasks.add(task)

    def _sync_reading(self) -> None:
        """Read while nothing waits: no request parsed ahead, no bytes kept behind one, and no
        more than ``BODY_HIGH_WATER`` body bytes held for the app."""
        parsing = self._parsing
        want = not self._stash and not self._queue and (
            parsing is None or parsing.buffered <= BODY_HIGH_WATER)
        if want != self._reading and not self.transport.is_closing():
            self._reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _feed_stash(self) -> None:
        if self._stash and not self._queue and not self.transport.is_closing():
            self.data_received(b"")
            self._sync_reading()

    def _release_writers(self) -> None:
        self.write_paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- upgrades -----------------------------------------------------------------------------
    def _is_websocket(self, headers: list[tuple[bytes, bytes]]) -> bool:
        connection: list[bytes] = []
        upgrade = None
        for name, value in headers:
            if name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
            elif name == b"upgrade":
                upgrade = value.lower()
        return (b"upgrade" in connection and upgrade == b"websocket"
                and self._config.ws_protocol_class is not None)

    def _upgrade(self) -> None:
        """The parser stopped at an upgrade: a WebSocket handshake goes to the ``ws`` protocol,
        which reads it again from the head rebuilt here (as uvicorn's protocol does)."""
        websocket, self._websocket = self._websocket, None
        if websocket is None:
            self.transport.pause_reading()  # another protocol: its request is answered, closed
            self._reading = False
            return
        self._disarm_head_deadline()
        self._disarm_body_deadline()
        self._connections.discard(self)
        method, url, headers = websocket
        head = [method, b" ", url, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        protocol = self._config.ws_protocol_class(
            config=self._config, server_state=self._server_state, app_state=self._app_state)
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(b"".join(head))

    # -- feeding the parser (feeder.py keeps the loop) -----------------------------------------
    def _waiting(self) -> bool:
        return bool(self._queue)

    def _idle(self) -> bool:
        return self.cycle is None

    def _arrived(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _feed(self, piece: memoryview) -> bool:
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            self._upgrade()
            return False
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadRefused):
                self._refuse(exc.__context__)
            else:
                self._refuse(HeadRefused(400, "Invalid HTTP request received."))
            return False
        return True

    def _pause_for_stash(self) -> None:
        self._sync_reading()

    # -- deadlines (deadlines.py keeps the timers) -------------------------------------------
    def _answering(self) -> bool:
        return self.cycle is not None

    def _holding_body(self) -> bool:
        parsing = self._parsing
        return (not self._reading or bool(self._stash)
                or (parsing is not None and parsing.waiting_for_100_continue))

    def _writes_paused(self) -> bool:
        return self.write_paused

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    # -- refusals -----------------------------------------------------------------------------
    def _refuse(self, refused: HeadRefused) -> None:
        """A plain answer, then close: nothing more is read from this connection."""
        self._refusals.refused(refused.status, refused.reason)
        self._disarm_head_deadline()
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # a limit hit mid-answer: no second status line
            return
        self.transport.write(plain_answer(refused.status, refused.reason))
        self.transport.close()


def http11_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` option: a picklable factory (workers > 1 send it to each process)."""
    return cast("type[asyncio.Protocol]",
                functools.partial(Http11Protocol, limits=limits, refusals=RefusalLog(),
                                  certificates=CertificateCache()))
