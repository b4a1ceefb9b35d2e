"""How both HTTP/1.1 protocols (http11.py, gatekeeper's own, and protocol.py, uvicorn's with the
same guards) give a connection's bytes to their parser: one copy, so a limit means the same
under either ``server.http``.

Bytes are counted against the head's raw budget (limits.py) as they arrive, before the parser
sees them: the parser is fed at most the head's remaining room, ``PIPELINE_STEP`` bytes at a time
(a Content-Length body whole), so a head over its limit is refused (431) however it is split
across reads, and at most the requests of one step are parsed ahead of the answer in progress.
Once a parsed request waits for that answer, the rest is kept as bytes, reading paused, up to
``PIPELINE_STASH_LIMIT`` (RFC 9112 §9.3.2: answers in order; CWE-400, CWE-770).

Each protocol says what only it knows: whether a parsed request waits, whether it is idle,
how its parser is fed one piece, and how it pauses reading while bytes wait.
"""

from __future__ import annotations

import asyncio

from gatekeeper.server.deadlines import Deadlines
from gatekeeper.server.limits import HeadRefused

PIPELINE_STEP = 1024  # bytes fed to the parser at once: at most ~50 requests parsed ahead
# Bytes kept unparsed behind a waiting pipelined request: reading is paused while they wait, so
# more than a few reads' worth means a client that ignores it.
PIPELINE_STASH_LIMIT = 1024 * 1024


def content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The bytes a Content-Length body will bring; 0 when the framing is anything else."""
    lengths = [v for k, v in headers if k in (b"content-length", b"transfer-encoding")]
    framing = lengths[0] if len(lengths) == 1 else b""
    # At most 19 digits: int() refuses over 4,300 (CVE-2020-10735), llhttp allows leading zeros.
    return int(framing) if framing.isdigit() and len(framing) < 20 else 0


class BudgetFeeder(Deadlines):
    """``data_received`` and the budget's share of the parser callbacks."""

    _stash: bytes  # bytes received behind a waiting pipelined request, not yet parsed
    _body_left: int  # bytes of a Content-Length body still to come

    # -- what the protocol knows ----------------------------------------------------------------
    def _waiting(self) -> bool:
        """A parsed request waits for the answer before it: parse no further."""
        raise NotImplementedError

    def _idle(self) -> bool:
        """No answer in progress: a head that begins now has its deadline armed."""
        raise NotImplementedError

    def _feed(self, piece: memoryview) -> bool:
        """Give the parser one piece; False when the connection was answered or handed on.
        Raises the ``HeadRefused`` behind a parse error to have it answered."""
        raise NotImplementedError

    def _pause_for_stash(self) -> None:
        """Stop reading while the stash waits (the protocol resumes once it is parsed)."""
        raise NotImplementedError

    def _arrived(self) -> None:
        """Bytes came: whatever waited for them (an idle timer) stops waiting."""

    # -- the loop -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        transport: asyncio.Transport = self.transport
        if transport.is_closing():
            return  # refused already: parse nothing more
        if self._stash:
            data, self._stash = self._stash + data, b""
        self._arrived()
        budget = self._budget
        if budget.reading_head and self._idle():
            self._arm_head_deadline()
        view = memoryview(data)
        while view:
            if self._waiting():
                self._hold(view)
                return
            room = budget.room()
            if room == 0:
                self._refuse(budget.over_budget())
                return
            # A Content-Length body goes in whole; what follows it, a step at a time.
            room = max(PIPELINE_STEP, self._body_left) if room is None else min(room, PIPELINE_STEP)
            piece, view = view[:room], view[room:]
            budget.feeding(len(piece))
            try:
                carry_on = self._feed(piece)
            except HeadRefused as refused:
                self._refuse(refused)
                return
            if not carry_on or transport.is_closing():
                return
        if not budget.reading_head and self._body_timer is None:
            self._arm_body_deadline()  # a head arrived whose body did not come with it

    def _hold(self, rest: memoryview) -> None:
        self._stash = bytes(rest)
        self._pause_for_stash()
        if len(self._stash) > PIPELINE_STASH_LIMIT:
            self._refusals.refused(None, "pipelined too far ahead")
            self.transport.close()  # answers are still owed to earlier requests: no status

    # -- the budget's share of the parser callbacks ---------------------------------------------
    def _head_complete(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._budget.headers_complete()
        self._disarm_head_deadline()
        self._body_left = content_length(headers)

    def _body_arrived(self, size: int) -> None:
        self._body_left = max(0, self._body_left - size)
        if self._pace is not None:
            self._pace.received(size)

    def _message_done(self) -> None:
        self._budget.message_complete()
        self._disarm_body_deadline()
