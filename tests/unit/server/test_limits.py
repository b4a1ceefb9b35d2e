"""The request-head budget (gatekeeper/server/limits.py) on its own: exact edges of each limit,
and the raw budget that bounds what the callbacks cannot see."""

from __future__ import annotations

import pytest

from gatekeeper.server.limits import BodyPace, ConnectionLimits, HeadBudget, HeadRefused

LIMITS = ConnectionLimits(max_request_line_bytes=64, max_header_bytes=100, max_header_count=3)


def test_a_request_line_of_exactly_the_limit_passes_and_one_byte_more_is_414() -> None:
    budget = HeadBudget(LIMITS)
    room = 64 - len("GET ") - len(" HTTP/1.1")
    budget.target(room - 10, 3)
    budget.target(10, 3)  # the target arrives in pieces, one per read
    with pytest.raises(HeadRefused) as refused:
        budget.target(1, 3)
    assert (refused.value.status, budget.refused) == (414, refused.value)


@pytest.mark.parametrize(("headers", "reason"), [
    pytest.param([(b"a", b"b")] * 4, "too many request header fields", id="one field too many"),
    pytest.param([(b"name", b"v" * 96), (b"x", b"")], "request header fields too large",
                 id="one byte over the total"),
])
def test_headers_over_a_limit_are_431(headers: list[tuple[bytes, bytes]], reason: str) -> None:
    budget = HeadBudget(LIMITS)
    with pytest.raises(HeadRefused) as refused:
        for name, value in headers:
            budget.header(name, value)
    assert (refused.value.status, refused.value.reason) == (431, reason)


def test_headers_at_every_limit_pass() -> None:
    budget = HeadBudget(LIMITS)
    for name, value in [(b"a", b"b" * 48), (b"c", b"d" * 48), (b"e", b"")]:
        budget.header(name, value)
    budget.headers_complete()
    assert budget.refused is None and budget.room() is None  # a body: no head budget


def test_the_raw_budget_shrinks_as_bytes_are_fed_and_resets_for_the_next_request() -> None:
    budget = HeadBudget(LIMITS)
    assert budget.room() == LIMITS.max_head_bytes and not budget.started
    budget.feeding(LIMITS.max_head_bytes)
    assert budget.room() == 0 and budget.started
    assert budget.over_budget().status == 431
    budget.headers_complete()
    budget.feeding(10**9)  # body bytes are not the head's
    budget.message_complete()
    assert budget.room() == LIMITS.max_head_bytes and not budget.started


def test_the_raw_budget_holds_a_head_at_every_limit_with_its_separators() -> None:
    line = b"GET /" + b"t" * (64 - len("GET / HTTP/1.1")) + b" HTTP/1.1\r\n"
    head = line + b"a: " + b"b" * 97 + b"\r\nc: \r\nd: \r\n\r\n"  # 100 header bytes, 3 fields
    assert len(line) == 64 + 2 and len(head) == LIMITS.max_head_bytes


def test_a_body_s_deadline_moves_with_what_arrives_and_restarts_when_asked() -> None:
    limits = ConnectionLimits(request_body_timeout_seconds=20, request_body_min_bytes_per_second=500)
    pace = BodyPace(limits, now=100.0)
    assert pace.due() == 120.0  # the grace
    pace.received(1000)
    assert pace.due() == 122.0  # two more seconds earned at 500 B/s
    pace.restart(now=130.0)
    assert pace.due() == 150.0
