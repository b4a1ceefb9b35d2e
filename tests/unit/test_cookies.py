"""The one Cookie parser (gatekeeper/cookies.py): what gatekeeper reads as its own cookie is
exactly what it strips before the request goes to the app, and no app parser (Starlette,
Django, aiohttp, SimpleCookie: tests/support/cookies.py) finds a cookie of gatekeeper's in what
is left — not even a copy gatekeeper never read. The token cookie (``cookie:NAME``) is read by
the same parser: a second copy any app could read is a 400.

End to end (a real gatekeeper, a logged-in session, the app's own record): tests/e2e/test_cookies.py.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.authn.bearer import find_token
from gatekeeper.cookies import request_cookies
from gatekeeper.errors import BadRequest
from gatekeeper.request import RequestView
from gatekeeper.sessions.cookie import owns, strip_session_cookies
from tests.support.cookies import app_cookies

NAME = "_gatekeeper"
_JWS_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def ours(name: str) -> bool:
    return owns(name.encode("latin-1"), NAME.encode())


def read_as_ours(lines: list[bytes]) -> set[str]:
    """The names of gatekeeper's cookies it reads in these Cookie lines."""
    return {name for name in request_cookies(lines) if ours(name)}


def check_read_is_stripped(lines: list[bytes]) -> None:
    """The invariants, for one request's Cookie lines."""
    headers = [(b"host", b"app"), *((b"cookie", line) for line in lines)]
    forwarded = [value for key, value in strip_session_cookies(headers, NAME) if key == b"cookie"]
    # Nothing gatekeeper reads as its own is left for the app, under any app's reading.
    leaked = {(reader, name) for reader, name, _ in app_cookies(forwarded) if ours(name)}
    assert not leaked, (lines, forwarded)
    assert not read_as_ours(forwarded)
    # Every cookie of gatekeeper's an app could read in the request, gatekeeper read too.
    seen_by_apps = {name for _, name, _ in app_cookies(lines) if ours(name)}
    assert seen_by_apps <= read_as_ours(lines), (lines, seen_by_apps)


LAYOUTS = [
    pytest.param([b'theme="x; _gatekeeper=FAKE"; _gatekeeper=1.REAL'], id="a quoted value hiding ours"),
    pytest.param([b'theme="x _gatekeeper=FAKE"; _gatekeeper=1.REAL'],
                 id="a quoted value hiding ours after a space"),
    pytest.param([b"$Version=1; _gatekeeper=1.REAL; $Path=/"], id="RFC 2965 $Version and $Path"),
    pytest.param([b"_gatekeeper=1.REAL; _gatekeeper=FAKE"], id="our name twice"),
    pytest.param([b"_gatekeeper=1.REAL; app=a=b=="], id="an app value holding '='"),
    pytest.param([b"app=1 flag; _gatekeeper=1.REAL"], id="a bare word, on which SimpleCookie gives up"),
    pytest.param([b"app=1", b"_gatekeeper=1.REAL", b"_gatekeeper_1=FAKE"], id="three Cookie lines"),
    pytest.param([b"_gatekeeper=1.REAL; \xa0_gatekeeper=FAKE"], id="a no-break space before our name"),
    pytest.param([b"_gatekeeper=1.REAL; _gatekeeper\x85=FAKE"], id="a NEL after our name"),
    pytest.param([b"_gatekeeper=1.REAL;\x0b_gatekeeper_1=FAKE"], id="a vertical tab before a chunk"),
    pytest.param([b"_gatekeeper=1.REAL; app=1 _gatekeeper=FAKE"],
                 id="ours after white space in an app cookie"),
    pytest.param([b"_gatekeeper=1.REAL; x _gatekeeper_1=FAKE"], id="ours after a bare word"),
    pytest.param([b"app=1\t_gatekeeper_login_abc=FAKE"], id="a login-state cookie after a tab"),
]


@pytest.mark.parametrize("lines", LAYOUTS)
def test_what_gatekeeper_reads_as_its_own_it_strips(lines: list[bytes]) -> None:
    check_read_is_stripped(lines)


def test_the_first_of_our_cookies_is_read_and_the_apps_cookies_pass() -> None:
    lines = [b"app=1; \xa0_gatekeeper=1.REAL; _gatekeeper=FAKE", b"theme=dark"]
    assert request_cookies(lines)[NAME] == "1.REAL"
    assert strip_session_cookies([(b"cookie", line) for line in lines], NAME) == [
        (b"cookie", b"app=1"), (b"cookie", b"theme=dark")]


_NAMES = st.sampled_from(["_gatekeeper", "_gatekeeper_1", "_gatekeeper_login_s", "app", "x",
                          "_Gatekeeper", "_gatekeeper_x", "$Path"])
_SPACES = st.text(alphabet=" \t\x0b\x1f\x85\xa0", max_size=2)
_VALUES = st.text(alphabet='ab1.=" \t\xa0;', max_size=8)


@st.composite
def _cookie_lines(draw: st.DrawFn) -> list[bytes]:
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        pieces = [draw(_SPACES) + draw(_NAMES) + draw(_SPACES) + draw(st.sampled_from(["=", ""]))
                  + draw(_VALUES) for _ in range(draw(st.integers(1, 4)))]
        lines.append(draw(st.sampled_from(["; ", ";", " "])).join(pieces).encode("latin-1"))
    return lines


@given(_cookie_lines())
def test_no_cookie_layout_leaves_one_of_ours_for_an_app(lines: list[bytes]) -> None:
    check_read_is_stripped(lines)


# -- the token cookie ----------------------------------------------------------------------------


def _request(lines: list[bytes]) -> RequestView:
    headers = [(b"cookie", line) for line in lines]
    return RequestView({"type": "http", "method": "GET", "path": "/", "headers": headers}, "/")


@pytest.mark.parametrize("lines", [
    pytest.param([b"tok=GOOD; tok=FORGED"], id="twice"),
    pytest.param([b"tok=GOOD; \xa0tok=FORGED"], id="a no-break space before the second"),
    pytest.param([b"tok=GOOD; theme=dark tok=FORGED"], id="the second after white space in another"),
    pytest.param([b"tok=GOOD; x tok=FORGED"], id="the second after a bare word"),
    pytest.param([b"tok=GOOD", b"Tok=FORGED"], id="a second line, another case"),
    pytest.param([b"theme=dark tok = FORGED"], id="only after white space, spaced around '='"),
])
def test_a_token_cookie_any_app_reads_twice_is_a_bad_request(lines: list[bytes]) -> None:
    readings = {value for _, name, value in app_cookies(lines) if name.lower() == "tok"}
    assert "FORGED" in readings  # some app reads the copy gatekeeper would not verify
    with pytest.raises(BadRequest) as refused:
        find_token(_request(lines), ["cookie:tok"])
    assert refused.value.code == "duplicate_token_cookie"


@given(_cookie_lines())
def test_a_token_cookie_that_could_verify_is_the_one_every_app_reads(lines: list[bytes]) -> None:
    """With ``cookie:_gatekeeper`` as a token source (any name will do): a 400, or no token, or
    one that is not a compact JWS (refused before any key work, tests/test_jws.py), or one that
    every app reading that name reads as the same text."""
    try:
        token = find_token(_request(lines), [f"cookie:{NAME}"])
    except BadRequest:
        return
    readings = {value for _, name, value in app_cookies(lines) if name == NAME}
    if token is None:
        assert readings <= {""}, lines  # an empty cookie is no token to anyone
    elif _JWS_SHAPE.fullmatch(token):
        assert readings <= {token}, (lines, token, readings)
