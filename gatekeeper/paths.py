"""Request-target canonicalization: the path the policy sees is the path the app acts on.

Security-critical. A target is either brought to one canonical form or refused with 400:
- percent-encoded unreserved characters (RFC 3986 §2.3) and the other pchar (sub-delims but
  ``;``, ``:``, ``@``) are decoded once (``/%61dmin`` → ``/admin``, ``/a%40b`` → ``/a@b``): the app
  decodes both spellings to one path, so the policy sees one;
- dot segments are removed (RFC 3986 §5.2.4) and repeated slashes merged;
- refused: an encoded ``/``, ``\\``, ``?``, ``#``, NUL or control character; an encoded dot
  segment (``%2e%2e``); a ``;`` parameter; any raw byte that is not an RFC 3986 §3.3 pchar
  (``#``, ``[``, ``]``, ``\\``, space, controls, non-ASCII…: a front proxy may cut the path there
  or route it elsewhere); dot segments that climb above the root; invalid or overlong UTF-8 in
  what the app would decode; a target that is not origin-form.
The query string never takes part in the path; ``check_query`` refuses the bytes no proxy agrees on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gatekeeper.errors import BadRequest

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters a canonical path may hold literally (RFC 3986 pchar minus ';', plus '/').
_SAFE = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,=:@/]*")
# RFC 3986 §3.3 pchar, raw: unreserved, sub-delims except ';', ':' and '@' ('%' is decoded apart).
PCHAR = frozenset(_UNRESERVED | frozenset(b"!$&'()*+,=:@"))
_FORBIDDEN_ENCODED = frozenset(b"/\\?#") | frozenset(range(0x20)) | {0x7F}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_QUERY_BAD = re.compile(rb"[\x00-\x20#\x7f-\xff]")


def _bad(reason: str) -> BadRequest:
    return BadRequest(f"malformed request target: {reason}", code="malformed_target")


def canonical_path(raw_path: bytes) -> str:
    """The canonical form of ``raw_path`` (no query), or raise BadRequest."""
    if not raw_path.startswith(b"/"):
        raise _bad("not origin-form")
    if _SAFE.fullmatch(raw_path) and b"//" not in raw_path and b"/." not in raw_path:
        return raw_path.decode("ascii")  # the common case: already canonical
    return _canonicalize(raw_path)


def path_as_sent(raw_path: bytes) -> str:
    """The canonical path of a target that reaches the app as sent, not as gatekeeper forwards
    it (forward-auth: the front proxy passes the client's bytes on). A dot segment or an empty
    segment is refused rather than resolved or merged: Starlette, werkzeug and Django route
    ``/admin/../public/x`` and ``/admin//../public/x`` under ``/admin`` as sent, so resolving
    them (RFC 3986 §5.2.4 is the client's job) would decide on a path the app does not route."""
    segments = raw_path.split(b"/")[1:]
    if any(segment in (b".", b"..") for segment in segments):
        raise _bad("dot segment in a target the front proxy forwards as sent")
    if b"" in segments[:-1]:
        raise _bad("empty segment ('//') in a target the front proxy forwards as sent")
    return canonical_path(raw_path)


def _canonicalize(raw: bytes) -> str:
    segments = raw.split(b"/")[1:]
    out: list[bytes] = []
    decoded_all = bytearray()
    for position, segment in enumerate(segments):
        # The app decodes each segment between slashes: "/caf%C3/%A9" is invalid UTF-8 to it,
        # so the check must see the slash too, not the segments glued together.
        decoded_all.append(0x2F)
        text, was_encoded_dot = _decode_segment(segment, decoded_all)
        last = position == len(segments) - 1
        if text in (b".", b".."):
            if was_encoded_dot:
                raise _bad("encoded dot segment")
            if text == b"..":
                if not out:
                    raise _bad("dot segments climb above the root")
                out.pop()
            if last:
                out.append(b"")  # "/a/." and "/a/b/.." name a directory: keep the slash
            continue
        if text == b"" and not last:
            continue  # merge repeated slashes
        out.append(text)
    try:
        bytes(decoded_all).decode("utf-8", errors="strict")  # rejects overlong forms too
    except UnicodeDecodeError:
        raise _bad("invalid UTF-8") from None
    return "/" + b"/".join(out).decode("ascii")


def _decode_segment(segment: bytes, decoded_all: bytearray) -> tuple[bytes, bool]:
    """Decode pchar escapes; keep others (upper-cased); refuse dangerous bytes."""
    out = bytearray()
    encoded_dot = False
    i = 0
    while i < len(segment):
        byte = segment[i]
        if byte == 0x25:  # '%'
            pair = segment[i + 1:i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise _bad("bad percent-encoding")
            value = int(pair, 16)
            if value in _FORBIDDEN_ENCODED:
                raise _bad(f"encoded %{value:02X}")
            decoded_all.append(value)
            # Every pchar is decoded, not only the unreserved: the app decodes "%40" and "@" to
            # one path, so the policy must see one (a deny on /a@b held for /a@b only).
            if value in PCHAR:
                encoded_dot |= value == 0x2E
                out.append(value)
            else:
                out += b"%%%02X" % value
            i += 3
            continue
        if byte not in PCHAR:
            if byte == 0x3B:  # ';'
                raise _bad("path parameters (';')")
            raise _bad("forbidden character")
        decoded_all.append(byte)
        out.append(byte)
        i += 1
    return bytes(out), encoded_dot


def check_query(query: bytes) -> None:
    """Refuse a query no two parsers read alike: a raw ``#`` (the rest is a fragment to one, query
    to another), space, control, DEL or non-ASCII byte (RFC 3986 §3.4 allows none of them)."""
    if _QUERY_BAD.search(query):
        raise _bad("forbidden character in the query")


class PathPatterns:
    """A set of ``/exact`` and ``/prefix/*`` patterns (public_paths, rate_limits): is a path in
    any of them? One set lookup and one ``str.startswith`` over a tuple."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        patterns = list(patterns)
        self._exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def __contains__(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)


def matches_prefix_pattern(path: str, pattern: str) -> bool:
    """``/public/*`` matches ``/public/`` and below; a pattern without ``*`` matches exactly."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern
