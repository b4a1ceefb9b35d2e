"""The access log's line is, byte for byte, the JSON ``json.dumps`` writes for the entry and its
``time``, whatever a value holds: one line per request, nothing unescaped
(gatekeeper/logs.py ``AccessLog``)."""

from __future__ import annotations

import io
import json
from enum import StrEnum
from typing import Any

import pytest

from gatekeeper.logs import AccessLog
from tests.support.fakes import run


class _Code(StrEnum):
    ALLOW = "allow"


GATE_ENTRY = {"request_id": "0123456789abcdef01234567", "method": "GET", "path": "/items/1",
              "status": 200, "subject": "alice", "decision": "allow", "reason": "authenticated",
              "rule": None, "total_ms": 0.812, "upstream_ms": 0.401, "client": "127.0.0.1"}

ENTRIES: list[tuple[str, dict[str, Any]]] = [
    ("the gate's entry", GATE_ENTRY),
    ("a refused one without upstream time", {**GATE_ENTRY, "status": 401, "subject": "anonymous",
                                             "upstream_ms": None, "rule": "policy.csv:12"}),
    ("quotes, backslashes and a line break in a path",
     {**GATE_ENTRY, "path": '/a"b\\c\nd\r{"forged": 1}'}),
    ("control characters and DEL", {**GATE_ENTRY, "subject": "\x00\x01\x1b[31m\x7f\t"}),
    ("non-ASCII, astral and lone surrogate text",
     {**GATE_ENTRY, "subject": "zoë 日本 \U0001F600 \u2028 \ud800"}),
    ("numbers of every shape", {"a": 0, "b": -3, "c": 10**30, "d": 1e-07, "e": 1e22,
                                "f": 123456.789, "g": -0.0, "h": 0.1 + 0.2}),
    ("non-finite floats", {"a": float("nan"), "b": float("inf"), "c": float("-inf")}),
    ("booleans, an enum, a list and a dict", {"a": True, "b": False, "c": _Code.ALLOW,
                                              "d": ["x", 1, None], "e": {"k": "v"}}),
    ("a key that needs escaping", {'we"ird\nkey': 1, "ключ": "значение"}),
    ("an entry naming its own time", {"time": "ignored", "status": 200}),
    ("nothing", {}),
]


def _written(*entries: dict[str, Any]) -> str:
    stream = io.StringIO()

    async def write() -> None:
        log = AccessLog(stream=stream)
        for entry in entries:
            log.write(dict(entry))
        log.flush()

    run(write())
    return stream.getvalue()


@pytest.mark.parametrize("entry", [e for _, e in ENTRIES], ids=[name for name, _ in ENTRIES])
def test_the_line_is_exactly_what_json_dumps_writes(entry: dict[str, Any]) -> None:
    (line,) = _written(entry).splitlines(keepends=True)
    written_time = json.loads(line)["time"]
    expected = {**entry, "time": written_time}  # the entry's keys in order, then the time
    assert line == json.dumps(expected) + "\n"


def test_every_entry_is_one_line_with_a_millisecond_utc_time() -> None:
    entries = [dict(entry) for _, entry in ENTRIES] * 3
    lines = _written(*entries).split("\n")
    assert lines[-1] == "" and len(lines) == len(entries) + 1
    for line in lines[:-1]:
        time = json.loads(line)["time"]
        assert len(time) == len("2026-12-07T19:57:00.123Z") and time.endswith("Z")


def test_a_disabled_log_writes_nothing() -> None:
    stream = io.StringIO()

    async def write() -> None:
        log = AccessLog(enabled=False, stream=stream)
        log.write(dict(GATE_ENTRY))
        log.flush()

    run(write())
    assert stream.getvalue() == ""
