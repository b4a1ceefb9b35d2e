"""W3C Trace Context: the ``traceparent`` a request brings, continued, or a new trace started.

The app receives ``traceparent`` naming gatekeeper's own span as its parent (so its spans hang
under gatekeeper's in a trace view) and the caller's ``tracestate`` when it is well formed. The
caller's copies never reach the app as sent: mutate.py drops every spelling of both names and
adds these. Reading is strict (https://www.w3.org/TR/trace-context/ §3.2, §3.3): an unknown
shape, upper-case hex, an all-zero id, version ``ff`` or two ``traceparent`` headers start a new
trace, and a ``tracestate`` is read only beside a valid ``traceparent``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gatekeeper.randomids import RandomIds

# version-traceid-parentid-flags: 2, 32, 16 and 2 lower-case hex digits, three dashes between;
# a later version may append "-" and fields of its own (§3.2.4), read here as printable ASCII.
_HEX = b"0123456789abcdef"
_DASH = ord("-")
_LATER_FIELDS = re.compile(rb"-[\x21-\x7e]*")
_SAMPLED = b"13579bdf"  # the last flags digit of a sampled trace (bit 0 set)
_STATE_MEMBER = re.compile(
    rb"[ \t]*(?:[a-z0-9][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    rb"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e][ \t]*")
MAX_STATE_MEMBERS = 32  # §3.3.1.1
MAX_STATE_BYTES = 512  # what every vendor must pass on (§3.3.1.5); longer is dropped whole
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class RequestSpan(Protocol):
    """A request's recorded span (gatekeeper/otel.py), ended with the access-log line."""

    def end(self, status: int, outcome: str) -> None: ...


class TraceContext:
    """One request's place in a trace. ``span_id`` is gatekeeper's span: the parent the app sees."""

    __slots__ = ("continued", "flags", "parent_id", "span_id", "state", "trace_id")

    def __init__(self, trace_id: str, parent_id: str | None, span_id: str, flags: str,
                 state: bytes | None) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id  # the caller's span, when the trace was continued
        self.continued = parent_id is not None
        self.span_id = span_id
        self.flags = flags
        self.state = state

    def headers(self) -> list[tuple[bytes, bytes]]:
        """What the app receives: always version 00, the only one this code writes."""
        parent = f"00-{self.trace_id}-{self.span_id}-{self.flags}".encode("ascii")
        if self.state is None:
            return [(b"traceparent", parent)]
        return [(b"traceparent", parent), (b"tracestate", self.state)]


def trace_of(headers: Sequence[tuple[bytes, bytes]], *, continue_incoming: bool,
             ids: RandomIds) -> TraceContext:
    """The request's trace: the caller's, when it sent exactly one valid ``traceparent`` and
    ``continue_incoming``; otherwise a new one (not sampled: the flags say nobody records it
    unless a tracer says so)."""
    parents: list[bytes] = []
    states: list[bytes] = []
    for name, value in headers:
        if name == b"traceparent":
            parents.append(value)
        elif name == b"tracestate":
            states.append(value)
    if continue_incoming and len(parents) == 1:
        found = _parent(parents[0])
        if found is not None:
            trace_id, parent_id, flags = found
            return TraceContext(trace_id, parent_id, ids.hex(8), flags, _state(states))
    new = ids.hex(24)  # both ids
    return TraceContext(new[:32], None, new[32:], "00", None)


def _parent(value: bytes) -> tuple[str, str, str] | None:
    # (The HTTP parser has already taken the white space around the value off.)
    # (A deletion of the hex digits and three index checks cost less than a regex here.)
    if (len(value) < 55 or value[:55].translate(None, _HEX) != b"---" or value[2] != _DASH
            or value[35] != _DASH or value[52] != _DASH):
        return None
    version = value[:2]
    if version == b"ff":
        return None
    if len(value) != 55 and (version == b"00" or _LATER_FIELDS.fullmatch(value, 55) is None):
        return None  # version 00 is exactly 55 characters
    text = value[:55].decode("ascii")  # only hex digits and dashes: checked above
    trace_id, parent_id = text[3:35], text[36:52]
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    # Only the sampled bit is defined; the others are not passed on (§3.2.2.5).
    return trace_id, parent_id, "01" if value[54] in _SAMPLED else "00"


def _state(values: list[bytes]) -> bytes | None:
    """The caller's ``tracestate`` (several headers joined, §3.3.1.1), or None when it is not
    well formed, has too many members or keys twice, or is longer than is passed on."""
    if not values:
        return None
    joined = b",".join(values)
    if len(joined) > MAX_STATE_BYTES:
        return None
    members = [member for member in joined.split(b",") if member.strip(b" \t")]
    if not members or len(members) > MAX_STATE_MEMBERS:
        return None
    keys: set[bytes] = set()
    for member in members:
        if _STATE_MEMBER.fullmatch(member) is None:
            return None
        key = member.strip(b" \t").partition(b"=")[0]
        if key in keys:
            return None
        keys.add(key)
    return b",".join(member.strip(b" \t") for member in members)
