"""W3C Trace Context, read strictly: the caller's trace continued only when its traceparent is
exactly right; tracestate passed on only beside it and well formed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.randomids import RandomIds
from gatekeeper.tracecontext import MAX_STATE_MEMBERS, trace_of

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
GOOD = f"00-{TRACE}-{PARENT}-01".encode()
IDS = RandomIds()


def test_a_valid_traceparent_is_continued_under_a_span_of_our_own() -> None:
    context = trace_of([(b"traceparent", GOOD)], continue_incoming=True, ids=IDS)
    assert (context.trace_id, context.parent_id, context.flags, context.continued) == (
        TRACE, PARENT, "01", True)
    assert context.span_id != PARENT and len(context.span_id) == 16
    assert context.headers() == [(b"traceparent", f"00-{TRACE}-{context.span_id}-01".encode())]


@pytest.mark.parametrize("value", [
    pytest.param(GOOD.upper().replace(b"X", b"x"), id="upper-case hex"),
    pytest.param(f"00-{'0' * 32}-{PARENT}-01".encode(), id="all-zero trace id"),
    pytest.param(f"00-{TRACE}-{'0' * 16}-01".encode(), id="all-zero parent id"),
    pytest.param(f"ff-{TRACE}-{PARENT}-01".encode(), id="version ff"),
    pytest.param(GOOD + b"-extra", id="version 00 with more fields"),
    pytest.param(GOOD[:-1], id="one flag digit"),
    pytest.param(f"00-{TRACE[:-1]}-{PARENT}-01".encode(), id="short trace id"),
    pytest.param(f"00_{TRACE}_{PARENT}_01".encode(), id="underscores"),
    pytest.param(GOOD.replace(b"a", b"g", 1), id="not hex"),
    pytest.param(b"", id="empty"),
    pytest.param(GOOD + b"\x00", id="NUL after"),
    pytest.param(b" " + GOOD, id="white space before"),
    pytest.param(f"01-{TRACE}-{PARENT}-01-\xff".encode("latin-1"),
                 id="later version, non-ASCII field"),
    pytest.param(f"01-{TRACE}-{PARENT}-01-a b".encode(), id="later version, space in a field"),
    pytest.param(f"01-{TRACE}-{PARENT}-01x".encode(), id="later version, no dash after flags"),
])
def test_a_malformed_traceparent_starts_a_new_trace(value: bytes) -> None:
    context = trace_of([(b"traceparent", value), (b"tracestate", b"a=b")], continue_incoming=True, ids=IDS)
    assert not context.continued and context.parent_id is None
    assert context.trace_id != TRACE and len(context.trace_id) == 32
    assert context.flags == "00" and context.state is None  # tracestate not read without it


def test_two_traceparents_start_a_new_trace() -> None:
    """Which one an app's tracer would take is its own business: neither is vouched for."""
    context = trace_of([(b"traceparent", GOOD), (b"traceparent", GOOD)], continue_incoming=True, ids=IDS)
    assert not context.continued


def test_a_later_version_is_read_by_its_version_00_fields() -> None:
    context = trace_of([(b"traceparent", f"cc-{TRACE}-{PARENT}-03-what-comes".encode())],
                       continue_incoming=True, ids=IDS)
    assert (context.trace_id, context.parent_id, context.flags) == (TRACE, PARENT, "01")
    assert context.headers()[0][1].startswith(b"00-")  # written as the version we speak


def test_unknown_flags_are_not_passed_on() -> None:
    context = trace_of([(b"traceparent", f"00-{TRACE}-{PARENT}-fe".encode())],
                       continue_incoming=True, ids=IDS)
    assert context.flags == "00"


def test_a_caller_cannot_choose_the_trace_when_continuing_is_off() -> None:
    context = trace_of([(b"traceparent", GOOD)], continue_incoming=False, ids=IDS)
    assert not context.continued and context.trace_id != TRACE


def test_new_traces_and_spans_get_fresh_ids() -> None:
    first, second = (trace_of([], continue_incoming=True, ids=IDS) for _ in range(2))
    assert first.trace_id != second.trace_id and first.span_id != second.span_id


@pytest.mark.parametrize(("states", "expected"), [
    pytest.param([b"congo=t61rcWkgMzE"], b"congo=t61rcWkgMzE", id="one member"),
    pytest.param([b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"],
                 b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", id="list, spaces trimmed"),
    pytest.param([b"rojo=1", b"congo=2"], b"rojo=1,congo=2", id="two headers joined"),
    pytest.param([b"tenant@vendor=x"], b"tenant@vendor=x", id="multi-tenant key"),
    pytest.param([b"rojo=1,,congo=2"], b"rojo=1,congo=2", id="empty member skipped"),
    pytest.param([b"Rojo=1"], None, id="upper-case key"),
    pytest.param([b"rojo=1,rojo=2"], None, id="key twice"),
    pytest.param([b"rojo"], None, id="no value"),
    pytest.param([b"rojo=a,b"], None, id="member without ="),
    pytest.param([b"rojo=a=b"], None, id="= in the value"),
    pytest.param([b"rojo=\x01"], None, id="control character"),
    pytest.param([b"rojo=" + b"v" * 600], None, id="longer than is passed on"),
    pytest.param([b",".join(b"k%d=v" % i for i in range(MAX_STATE_MEMBERS + 1))], None,
                 id="too many members"),
])
def test_tracestate_is_passed_on_only_when_well_formed(states: list[bytes],
                                                       expected: bytes | None) -> None:
    headers = [(b"traceparent", GOOD), *((b"tracestate", s) for s in states)]
    context = trace_of(headers, continue_incoming=True, ids=IDS)
    assert context.continued and context.state == expected
    assert (b"tracestate", expected) in context.headers() if expected else len(context.headers()) == 1


@given(st.lists(st.tuples(st.sampled_from([b"traceparent", b"tracestate", b"x"]),
                          st.one_of(st.binary(max_size=80), st.just(GOOD),
                                    # a well-formed start under any version, any bytes after it
                                    st.builds(lambda version, tail: version + GOOD[2:] + tail,
                                              st.binary(min_size=2, max_size=2),
                                              st.binary(max_size=20)))), max_size=4))
def test_whatever_the_caller_sends_the_app_gets_a_well_formed_traceparent(
        headers: list[tuple[bytes, bytes]]) -> None:
    context = trace_of(headers, continue_incoming=True, ids=IDS)
    sent = dict(context.headers())
    assert re.fullmatch(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", sent[b"traceparent"])
    assert b"0" * 32 not in sent[b"traceparent"]
    state = sent.get(b"tracestate")
    assert state is None or (len(state) <= 512 and all(0x20 <= c < 0x7f for c in state))
