"""What both HTTP/1.1 protocols share (uvicorn's, subclassed in protocol.py, and gatekeeper's own
in http11.py): the request-target check, the rate-limited refusal log, plain refusal answers and
the reset that cuts off a client that stopped reading. No parser state here."""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import struct
import time

import httptools

log = logging.getLogger("gatekeeper.server")


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINE = {status: _status_line(status) for status in range(100, 600)}


def target_problem(target: bytes, headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why gatekeeper cannot vouch for this request target, or None (origin-form, or an
    absolute-form naming the Host header's authority).

    uvicorn keeps only the path of an absolute-form target (``GET http://elsewhere/x``), so the
    pipeline would never see the authority. RFC 9112 §3.2.2 has servers accept absolute-form;
    it is accepted when its authority is the Host header's, refused (400) otherwise, and so is
    any other non-origin form (``*``, authority-form). A raw ``#`` is refused too: the server
    would drop it and what follows, while a proxy in front may have routed on the whole target
    (RFC 9112 §3.2: a request-target has no fragment).
    """
    if b"#" in target:
        return "a fragment in the request target"
    if target.startswith(b"/"):
        return None
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return "unsupported request target"
    authority = url.host or b""
    if url.port is not None:
        authority += b":%d" % url.port
    hosts = [v for k, v in headers if k == b"host"]
    if not authority or (hosts != [authority]
                         and [h.lower() for h in hosts] != [authority.lower()]):
        return "request target names another host"
    return None


class RefusalLog:
    """One warning per refusal reason and ``interval`` at most, with the count since the last:
    an attack must not turn into a flood of log lines (one object per worker process)."""

    def __init__(self, interval: float = 30.0) -> None:
        self._interval = interval
        self._counts: dict[tuple[int | None, str], int] = {}
        self._logged_at: dict[tuple[int | None, str], float] = {}

    def refused(self, status: int | None, reason: str) -> None:
        """``status``: the answer sent, None when none could be."""
        key = (status, reason)
        self._counts[key] = self._counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self._logged_at.get(key, -self._interval) >= self._interval:
            log.warning("client refused at the edge",
                        extra={"status": status, "reason": reason, "refused": self._counts[key]})
            self._logged_at[key] = now
            self._counts[key] = 0


def plain_answer(status: int, text: str) -> bytes:
    """A whole text/plain answer that closes the connection."""
    body = text.encode("ascii")
    return b"".join([
        STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body])


def reset(transport: asyncio.Transport) -> None:
    """Close with a reset, not a FIN queued behind data the client will never read: close()
    would wait for a flush that never comes."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
