"""Bounds on what one client connection may make the server hold, as plain values and counters.

No I/O here: both HTTP protocols (gatekeeper's own on httptools, http11.py, and the subclass
of uvicorn's, protocol.py) feed ``HeadBudget`` what the parser reports and ask it how many more
bytes the parser may be given. Limits are checked as bytes arrive, never after a head was buffered whole:
a parser that accumulates a header across reads (httptools concatenates) would otherwise hold
any amount, at a cost quadratic in the number of reads (CWE-400, CWE-770).

Two kinds of check, both needed:
- exact ones, in the parser's callbacks: the request line (414), each completed header's bytes
  and the header count (431);
- a raw byte budget for the whole head, checked before the parser is fed, which bounds what an
  element still in progress (a header that never ends, padding the callbacks never see) can
  take. Only a head that begins inside the read that ended the previous request (pipelining)
  may go past it, by at most that one read, and its complete elements are still checked exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

_VERSION_BYTES = len(" HTTP/1.1")
_LINE_OVERHEAD = len(": \r\n")  # what a header line adds to its name and value


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection and per-worker bounds (config keys of the same names, see settings)."""

    max_request_line_bytes: int = 8192
    max_header_bytes: int = 32768
    max_header_count: int = 100
    request_head_timeout_seconds: float = 10.0
    keep_alive_timeout_seconds: float = 75.0
    max_connections: int = 1024
    request_body_timeout_seconds: float = 20.0
    request_body_min_bytes_per_second: int = 500
    send_timeout_seconds: float = 60.0

    @property
    def max_head_bytes(self) -> int:
        """Raw bytes one head may take: the request line, the headers with their separators and
        the blank line that ends them."""
        return (self.max_request_line_bytes + 2 + self.max_header_bytes
                + _LINE_OVERHEAD * self.max_header_count + 2)


class HeadRefused(Exception):
    """A request head over a limit: answer ``status`` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HeadBudget:
    """The counters of the request head being read on one connection."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits
        self.reading_head = True  # False from the end of a head to the end of its message
        self.refused: HeadRefused | None = None
        self._reset()

    def _reset(self) -> None:
        self.fed = 0  # raw bytes given to the parser since this head began
        self._target = 0
        self._header_bytes = 0
        self._headers = 0

    @property
    def started(self) -> bool:
        """Some bytes of the next head have arrived."""
        return self.reading_head and self.fed > 0

    def room(self) -> int | None:
        """How many more bytes the parser may be given now; None while a body is read."""
        if not self.reading_head:
            return None
        return max(0, self._limits.max_head_bytes - self.fed)

    def feeding(self, size: int) -> None:
        if self.reading_head:
            self.fed += size

    def over_budget(self) -> HeadRefused:
        """The answer when a head needs more than ``room``: every element the callbacks saw was
        within its limit, so what is in progress is a header, or padding (RFC 9110 §15.5.20)."""
        return self._refuse(431, "request header fields too large")

    # -- parser callbacks ---------------------------------------------------------------------
    def target(self, size: int, method_size: int) -> None:
        """``size`` more bytes of the request target (callbacks come once per read)."""
        self._target += size
        if self._target + method_size + 1 + _VERSION_BYTES > self._limits.max_request_line_bytes:
            raise self._refuse(414, "request line too long")  # RFC 9110 §15.5.15

    def header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._header_bytes += len(name) + len(value)
        if self._headers > self._limits.max_header_count:
            raise self._refuse(431, "too many request header fields")
        if self._header_bytes > self._limits.max_header_bytes:
            raise self._refuse(431, "request header fields too large")

    def headers_complete(self) -> None:
        self.reading_head = False

    def message_complete(self) -> None:
        self.reading_head = True
        self._reset()

    def _refuse(self, status: int, reason: str) -> HeadRefused:
        if self.refused is None:
            self.refused = HeadRefused(status, reason)
        return self.refused


class BodyPace:
    """How long a request body may take: ``grace`` seconds, plus one second for every
    ``min_rate`` bytes received. A body dripped a byte at a time ("slow POST", R.U.D.Y.) would
    otherwise hold its connection and a connection to the app for as long as it likes, and
    enough of them starve every other client of the app's pool. The clock restarts whenever
    the server, not the client, held the body up (reading paused, 100-continue not sent)."""

    def __init__(self, limits: ConnectionLimits, now: float) -> None:
        self._grace = limits.request_body_timeout_seconds
        self._rate = limits.request_body_min_bytes_per_second
        self.restart(now)

    def restart(self, now: float) -> None:
        self._since = now
        self._received = 0

    def received(self, size: int) -> None:
        self._received += size

    def due(self) -> float:
        """When the body is too slow unless more arrives (loop time)."""
        return self._since + self._grace + self._received / self._rate
