"""Structured logs: one JSON object per line. Never a token, cookie, query string or secret.

Every line goes through ``redact``, whichever logger wrote it — ours, or a library's: httpx logs
each request's full URL at INFO, redis and uvicorn put URLs and addresses in their messages. A
URL keeps its scheme, host, port and path; its user info (``user:password@``, a Redis URL's
``:password@``) and its query (an API key, a code, a token) are replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

# scheme://[userinfo@]authority[path][?query][#fragment], as far as a URL can run in text.
_URL = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)"
    r"(?P<userinfo>[^/?#\s\"'<>]*@)?"  # to the last @: a password may hold one
    r"(?P<rest>[^?#\s\"'<>]*)"
    r"(?P<query>\?[^#\s\"'<>]*)?"
    r"(?P<fragment>#[^\s\"'<>]*)?")


def _redact_url(match: re.Match[str]) -> str:
    userinfo = "***@" if match["userinfo"] else ""
    query = "?***" if match["query"] else ""
    fragment = "#***" if match["fragment"] else ""
    return f"{match['scheme']}{userinfo}{match['rest']}{query}{fragment}"


def redact(text: str) -> str:
    """``text`` with every URL's user info, query and fragment replaced by ``***``."""
    return _URL.sub(_redact_url, text) if "://" in text else text


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value if value is None or isinstance(value, bool | int | float) else redact(str(value))

_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update((k, _redacted(v)) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # the type only: no values
        return json.dumps(entry, default=str)


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours and print query strings (tokens may hide there).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """One line per request on stdout. The hot path skips logging's machinery, and lines written
    during one short interval go out in one write: a syscall per request costs more than the
    formatting.

    The line is what ``json.dumps(entry)`` wrote, byte for byte (tests/unit/test_logs.py), by the
    C encoder ``json.dumps`` uses, made once here instead of on every call (a third of the cost;
    bench/RESULTS.md has the figures).
    """

    FLUSH_INTERVAL_SECONDS = 0.02

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self._enabled = enabled
        self._stream = stream if stream is not None else sys.stdout
        self._second = -1
        self._second_text = ""  # strftime is slow: format each wall-clock second once
        self._pending: list[str] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._encode = _json_encoder()

    def write(self, entry: dict[str, Any]) -> None:
        if not self._enabled:
            return
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._second))
        entry["time"] = f"{self._second_text}.{int(now % 1 * 1000):03d}Z"
        self._pending.append(self._encode(entry) + "\n")
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(
                self.FLUSH_INTERVAL_SECONDS, self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        if self._pending:
            self._stream.write("".join(self._pending))
            self._pending.clear()
            self._stream.flush()


def _not_serializable(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps`` with its defaults (``ensure_ascii``, ``", "`` and ``": "``, NaN allowed),
    its C encoder built once. No circular-reference check: an entry is a flat dict."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the _json accelerator
        return json.dumps
    encoder = make(None, _not_serializable, json.encoder.encode_basestring_ascii, None, ": ",
                   ", ", False, False, True)

    def encode(entry: dict[str, Any]) -> str:
        return "".join(encoder(entry, 0))

    return encode
