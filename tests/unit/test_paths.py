"""Request-target canonicalization: what the policy sees is what the app acts on."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.edge.method_override import refuse_method_override
from gatekeeper.errors import BadRequest
from gatekeeper.paths import canonical_path

CANONICAL = [
    ("/", "/"),
    ("/api/v1/items", "/api/v1/items"),
    ("/%61dmin/x", "/admin/x"),
    ("//admin/x", "/admin/x"),
    ("/a///b", "/a/b"),
    ("/public/../admin/x", "/admin/x"),
    ("/a/./b", "/a/b"),
    ("/a/b/..", "/a/"),
    ("/a/.", "/a/"),
    ("/caf%C3%A9", "/caf%C3%A9"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    ("/a.b/c..d", "/a.b/c..d"),
    ("/x%7e", "/x~"),
    ("/a%21b%24%26%27%28%29%2a%2B%2c%3d%3A%40", "/a!b$&'()*+,=:@"),
    ("/a%3bb", "/a%3Bb"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL, ids=[r for r, _ in CANONICAL])
def test_targets_are_brought_to_one_canonical_form(raw: str, expected: str) -> None:
    assert canonical_path(raw.encode()) == expected


REFUSED = [
    ("/admin%2fx", "encoded slash"),
    ("/admin%2Fx", "encoded slash, upper case"),
    ("/admin%5cx", "encoded backslash"),
    ("/admin\\x", "raw backslash"),
    ("/public/%2e%2e/admin", "encoded dot-dot"),
    ("/public/%2E./admin", "half-encoded dot-dot"),
    ("/public/.%2e/admin", "other half-encoded dot-dot"),
    ("/admin;x/y", "path parameter"),
    ("/admin%00", "encoded NUL"),
    ("/a%0d%0aSet-Cookie:x", "encoded CRLF"),
    ("/admin%23frag", "encoded #"),
    ("/admin%3fq=1", "encoded ?"),
    ("/..", "climbs above the root"),
    ("/a/../../etc/passwd", "climbs above the root twice"),
    ("/%c0%ae%c0%ae/admin", "overlong UTF-8 dots"),
    ("/%ff", "invalid UTF-8"),
    ("/a%zz", "bad percent-encoding"),
    ("/a%2", "truncated percent-encoding"),
    ("http://evil.example/admin", "absolute-form"),
    ("*", "asterisk-form"),
    ("/a b", "raw space"),
    ("/public/x#/../../admin", "raw # (a fragment to a URL parser, path to others)"),
    ("/public/../x#", "raw # on the slow path"),
    ("/a/[x]", "raw [ and ] (not pchar)"),
    ("/a//[::1]", "raw brackets on the slow path"),
    ('/a/"x"', "raw double quote"),
    ("/a/{x}", "raw braces"),
    ("/a/x|y", "raw pipe"),
    ("/a/x^y", "raw caret"),
    ("/a/x`y", "raw backtick"),
    ("/a/<x>", "raw angle brackets"),
    ("/a/x\x7f", "raw DEL"),
    ("/a/caf\xe9", "raw non-ASCII"),
    ("/a\tb", "raw tab"),
]


@pytest.mark.parametrize(("raw", "why"), REFUSED, ids=[w for _, w in REFUSED])
def test_dangerous_targets_are_refused(raw: str, why: str) -> None:
    with pytest.raises(BadRequest):
        canonical_path(raw.encode("latin-1"))


TOKENS = ["a", "b", "Z9", "-", "_", "~", ".", "..", "", "%2e", "%2E", "%2f", "%41", "%61dmin",
          "a%20b", "%C3%A9", ";", "%25", "x.y", "!", "%21", "@", "%40", ":", "%3a", "+", "%2B",
          "*", "%2A", "=", "%3D", "%3B", "%c3%a9"]
targets = st.lists(st.lists(st.sampled_from(TOKENS), max_size=3).map("".join), max_size=6).map(
    lambda segments: "/" + "/".join(segments))


def framework_view(target: str) -> str:
    """How a typical app resolves a target: decode once, merge slashes, resolve dot segments."""
    decoded = re.sub("/+", "/", unquote(target))
    resolved = posixpath.normpath(decoded)
    return resolved + "/" if decoded.endswith(("/", "/.", "/..")) and resolved != "/" else resolved


# RFC 3986 §3.3: pchar = unreserved / pct-encoded / sub-delims / ":" / "@" (';' refused apart).
PCHAR = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@")


@given(st.lists(st.one_of(st.sampled_from(["/", "..", ".", "%2F", "%41", "%"]),
                          st.binary(min_size=1, max_size=3).map(lambda b: b.decode("latin-1"))),
                max_size=8).map(lambda parts: "/" + "".join(parts)))
def test_only_pchar_slash_and_escapes_are_accepted_raw(raw: str) -> None:
    try:
        canonical_path(raw.encode("latin-1"))
    except BadRequest:
        return
    bare = re.sub(r"%[0-9A-Fa-f]{2}", "", raw)  # escapes are checked by the decoder itself
    assert set(bare.encode("latin-1")) <= PCHAR | {ord("/")}


@given(targets)
def test_canonicalization_is_idempotent(raw: str) -> None:
    try:
        once = canonical_path(raw.encode())
    except BadRequest:
        return
    assert canonical_path(once.encode()) == once


@given(targets)
def test_the_authorized_path_is_the_one_the_app_routes_to(raw: str) -> None:
    try:
        canonical = canonical_path(raw.encode())
    except BadRequest:
        return
    # What we authorized (decoded) is where the app lands, whether it sees raw or canonical.
    assert unquote(canonical) == framework_view(canonical) == framework_view(raw)


def spelled(decoded: str) -> str:
    """The one spelling of a decoded path: pchar and '/' as they are ('%' and ';' encoded)."""
    return "".join(chr(b) if b in PCHAR | {ord("/")} and b != ord(";") else f"%{b:02X}"
                   for b in decoded.encode())


@given(targets)
def test_one_path_the_app_routes_has_one_spelling_for_the_policy(raw: str) -> None:
    """Targets the app routes alike are one path to the policy: a deny rule on /files/a@b must
    hold for /files/a%40b too (Starlette, werkzeug and Django decode both to the same path)."""
    try:
        canonical = canonical_path(raw.encode())
    except BadRequest:
        return
    assert canonical == spelled(framework_view(raw))


# Spring's HiddenHttpMethodFilter, Laravel, Symfony and Express's method-override run the method
# named by a `_method` query parameter (PHP also reads `.method`, ` method` and `[method` as
# `_method`; leading spaces it drops): the policy would decide POST while the app runs DELETE.
OVERRIDES = [b"_method=DELETE", b"a=1&_method=DELETE", b"_METHOD=PUT", b"%5Fmethod=DELETE",
             b"%5fmethod=DELETE", b"_m%65thod=DELETE", b".method=DELETE",
             b"%20_method=DELETE", b"[method=DELETE", b"a=1;_method=DELETE", b"_method",
             b"_method[]=DELETE"]


@pytest.mark.parametrize("query", OVERRIDES, ids=[q.decode() for q in OVERRIDES])
def test_a_method_override_in_the_query_is_refused(query: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        refuse_method_override(query)
    assert caught.value.code == "method_override"


@pytest.mark.parametrize("query", [b"", b"method=x", b"a_method=DELETE", b"x=_method",
                                   b"q=%5Fmethod", b"_methods=1", b"+method=x"])
def test_other_queries_are_not_method_overrides(query: bytes) -> None:
    refuse_method_override(query)
