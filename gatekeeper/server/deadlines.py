"""The timers both HTTP/1.1 protocols keep on a connection (http11.py, gatekeeper's own, and
protocol.py, uvicorn's with the same guards): one copy, so a limit means the same under either
``server.http``.

    head   the whole request head within ``request_head_timeout_seconds`` (408, or a silent
           close when nothing was asked)
    body   the body keeps a minimum pace while the client, not gatekeeper, holds it up (408)
    send   a client that takes no byte of an answer for ``send_timeout_seconds`` is reset

Each protocol says what only it knows: whether it is answering a request, whether it is the one
holding the body back (reading paused, bytes stashed, a 100-continue not yet sent), and whether
its writes are paused.
"""

from __future__ import annotations

import asyncio

from gatekeeper.server.common import RefusalLog, reset
from gatekeeper.server.limits import BodyPace, ConnectionLimits, HeadBudget, HeadRefused


class Deadlines:
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _limits: ConnectionLimits
    _refusals: RefusalLog
    _budget: HeadBudget
    _head_timer: asyncio.TimerHandle | None
    _body_timer: asyncio.TimerHandle | None
    _send_timer: asyncio.TimerHandle | None
    _pace: BodyPace | None
    _unsent: int

    # -- what the protocol knows ----------------------------------------------------------------
    def _answering(self) -> bool:
        raise NotImplementedError

    def _holding_body(self) -> bool:
        raise NotImplementedError

    def _writes_paused(self) -> bool:
        raise NotImplementedError

    def _refuse(self, refused: HeadRefused) -> None:
        raise NotImplementedError

    # -- the head -------------------------------------------------------------------------------
    def _arm_head_deadline(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self._limits.request_head_timeout_seconds, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._budget.reading_head or self._answering():
            return  # answering a request: the answer's end arms it again if needed
        if self._budget.started:
            self._refuse(HeadRefused(408, "request head not received in time"))  # RFC 9110 §15.5.9
        else:
            self.transport.close()  # nothing asked, nothing to answer

    # -- the body's pace ------------------------------------------------------------------------
    def _arm_body_deadline(self) -> None:
        self._pace = BodyPace(self._limits, self.loop.time())
        self._body_timer = self.loop.call_at(self._pace.due(), self._body_check)

    def _disarm_body_deadline(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._pace = None

    def _body_check(self) -> None:
        self._body_timer = None
        pace = self._pace
        if pace is None or self.transport.is_closing() or self._budget.reading_head:
            return
        now = self.loop.time()
        if self._holding_body():
            pace.restart(now)  # we held the body up, not the client
        elif now >= pace.due():
            self._pace = None
            self._refuse(HeadRefused(408, "request body too slow"))  # RFC 9110 §15.5.9
            return
        self._body_timer = self.loop.call_at(pace.due(), self._body_check)

    # -- the answer's pace ----------------------------------------------------------------------
    def _arm_send_deadline(self) -> None:
        if self._send_timer is None:
            self._unsent = self.transport.get_write_buffer_size()
            self._send_timer = self.loop.call_later(self._limits.send_timeout_seconds,
                                                    self._send_check)

    def _disarm_send_deadline(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _send_check(self) -> None:
        """Still paused: cut the client off unless it took some bytes since the last check."""
        self._send_timer = None
        if self.transport.is_closing() or not self._writes_paused():
            return
        unsent = self.transport.get_write_buffer_size()
        if unsent < self._unsent:
            self._unsent = unsent
            self._send_timer = self.loop.call_later(self._limits.send_timeout_seconds,
                                                    self._send_check)
            return
        self._refusals.refused(None, "client stopped reading")
        reset(self.transport)
