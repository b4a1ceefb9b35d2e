"""``server.http: uvicorn``: uvicorn's httptools protocol, made strict about request targets and
bounded in what a client can make it hold or wait for (gatekeeper's own protocol, http11.py,
keeps the same bounds; the conformance tests in tests/unit/server/ run against both).

Each connection gets (limits from ``ConnectionLimits``):
- a head budget checked before and while httptools parses (414 / 431, see limits.py);
- a deadline for the whole request head, from its first byte (or from the connection's opening)
  to its blank line: a client dripping a header a byte at a time ("slowloris") is dropped at the
  deadline however steadily it sends, which a per-read timeout would not do (408);
- a pace for the request body: after a grace period, a minimum average rate (408), so a body
  dripped a byte at a time cannot hold a connection to the app for ever;
- a send timeout: a client that stops reading an answer (the write buffer full, and not one
  byte taken for ``send_timeout_seconds``) is cut off, so it cannot hold the app's connection
  that the answer streams from;
- uvicorn's idle keep-alive timeout between requests;
- a place among at most ``max_connections`` per worker: one more is answered 503 and closed at
  once, before any byte of it is parsed (uvicorn's ``limit_concurrency`` accepts the connection,
  reads and parses every request on it, and only then answers 503);
- one pipelined request parsed ahead of the one being answered, not a whole read of them:
  uvicorn parses all a read holds and queues a request object for each (~1.7 KB for a 35-byte
  request, so 256 KB pipelined took ~13 MB). The parser is fed ``PIPELINE_STEP`` bytes at a
  time, and once a request waits in the queue the rest is kept as bytes, reading paused, until
  the answer before it is sent (feeder.py, shared with http11.py).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, cast

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gatekeeper.peercert import CertificateCache
from gatekeeper.server.common import RefusalLog, plain_answer, target_problem
from gatekeeper.server.feeder import BudgetFeeder
from gatekeeper.server.limits import BodyPace, ConnectionLimits, HeadBudget, HeadRefused
from gatekeeper.server.tlsinfo import tls_extension

__all__ = ["EdgeProtocol", "OriginFormProtocol", "RefusalLog", "edge_protocol"]


class OriginFormProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, refusing request targets gatekeeper cannot vouch for (see
    ``common.target_problem``)."""

    def on_headers_complete(self) -> None:
        problem = target_problem(self.url, self.headers)
        if problem is not None:
            raise httptools.HttpParserError(problem)
        super().on_headers_complete()


def _never() -> bool:
    return False


class _HoldingFlow(FlowControl):
    """uvicorn's flow control, except that reading stays paused while ``held()``: bytes kept
    behind a waiting pipelined request must not grow by a read each time an app's receive()
    or a finished answer resumes reading (the protocol resumes it once they are parsed)."""

    def __init__(self, transport: asyncio.Transport, held: Callable[[], bool]) -> None:
        super().__init__(transport)
        self._held = held

    def release(self) -> None:
        """Forget the protocol's ``held`` (the connection is gone): it points back at it."""
        self._held = _never

    def resume_reading(self) -> None:
        if self._held():
            self.read_paused = False  # the transport stays paused: the stash's, not ours
            return
        super().resume_reading()


class EdgeProtocol(BudgetFeeder, OriginFormProtocol):
    """Build with ``edge_protocol(limits)`` (a partial of this class) as uvicorn's ``http``."""

    def __init__(self, *args: Any, limits: ConnectionLimits, refusals: RefusalLog,
                 certificates: CertificateCache | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits
        self._refusals = refusals
        self._certificates = certificates
        self._tls: dict[str, Any] | None = None  # the ASGI TLS extension, once per connection
        self._budget = HeadBudget(limits)
        self._head_timer: asyncio.TimerHandle | None = None
        self._pace: BodyPace | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._unsent = 0
        self._stash = b""  # bytes received behind a waiting pipelined request, not yet parsed
        self._body_left = 0  # bytes of a Content-Length body still to come

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _HoldingFlow(transport, lambda: bool(self._stash))
        if self.scheme == "https":
            self._tls = tls_extension(transport, self._certificates)
        if len(self.connections) > self._limits.max_connections:
            self._refuse(HeadRefused(503, "max_connections reached"))
            return
        self._arm_head_deadline()  # a client that opens and never sends is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_body_deadline()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().connection_lost(exc)  # drops the parser
        # Break the other reference cycles (the flow's ``held``, the request cycles' callbacks
        # and a refusal's traceback point back here), so what the connection held (a head up
        # to its limit, stashed bytes) is freed now, by reference counting, not by the cyclic
        # GC, whose next full pass may be many connections away: a flood of refused heads
        # would keep tens of KiB each meanwhile.
        if isinstance(self.flow, _HoldingFlow):
            self.flow.release()
        self.cycle = None  # type: ignore[assignment]
        self.pipeline.clear()
        self._budget.refused = None  # its traceback's frames point back here
        self._stash = b""

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm_send_deadline()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._disarm_send_deadline()

    def _feed_stash(self) -> None:
        if self._stash and not self.pipeline and not self.transport.is_closing():
            self.data_received(b"")
            if not self._stash and not self.flow.read_paused and not self.transport.is_closing():
                self.transport.resume_reading()

    # -- feeding the parser (feeder.py keeps the loop) -----------------------------------------
    def _waiting(self) -> bool:
        return bool(self.pipeline)

    def _pause_for_stash(self) -> None:
        # The transport itself, not uvicorn's flow control: a receive() would resume that.
        self.transport.pause_reading()

    def _feed(self, data: memoryview) -> bool:
        """uvicorn's data_received for one piece, telling our refusals from parse errors."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadRefused):
                raise exc.__context__ from None
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            self._disarm_head_deadline()
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        return self.transport.get_protocol() is self  # else it became a WebSocket

    # -- parser callbacks ---------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        self._budget.target(len(url), len(self.parser.get_method()))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        budget = self._budget
        budget.header(name, value)  # trailers count too: they are bytes held all the same
        if budget.reading_head:
            super().on_header(name, value)
        # else a trailer of a chunked body: uvicorn would append it to the headers the pipeline
        # already decided on. Discarded, as RFC 9110 §6.5.1 allows; nothing forwards trailers.

    def on_headers_complete(self) -> None:
        self._head_complete(self.headers)
        if self._tls is not None:  # uvicorn's protocol gives no TLS extension: ours, per request
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_arrived(len(body))
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._message_done()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._stash:
            self.loop.call_soon(self._feed_stash)  # outside the answer's send()
        if self._budget.started and not self.transport.is_closing():
            self._arm_head_deadline()  # a pipelined head arrived while we answered

    # -- deadlines (deadlines.py keeps the timers) -------------------------------------------
    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _answering(self) -> bool:
        return not self._idle()

    def _holding_body(self) -> bool:
        cycle = self.cycle
        return (self.flow.read_paused or bool(self._stash)
                or (cycle is not None and cycle.waiting_for_100_continue))

    def _writes_paused(self) -> bool:
        return self.flow.write_paused

    # -- answers ------------------------------------------------------------------------------
    def _refuse(self, refused: HeadRefused) -> None:
        self._refusals.refused(refused.status, refused.reason)
        self._answer(refused.status, refused.reason)

    def _answer(self, status: int, text: str) -> None:
        """A plain answer, then close: nothing more is read from this connection."""
        self._disarm_head_deadline()
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()  # a limit hit by trailers mid-answer: no second status line
            return
        self.transport.write(plain_answer(status, text))
        self.transport.close()


def edge_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` option: a picklable factory (workers > 1 send it to each process)."""
    return cast("type[asyncio.Protocol]",
                functools.partial(EdgeProtocol, limits=limits, refusals=RefusalLog(),
                                  certificates=CertificateCache()))
