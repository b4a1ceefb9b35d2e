"""How real apps read a request's Cookie headers: the parsers of Starlette, Django, aiohttp and
the standard library's ``SimpleCookie``, run on what the app received.

They disagree (white space, quotes, repeats, which Cookie line), so a check that nothing of
gatekeeper's reaches the app asks every one of them, on each Cookie line alone (an ASGI app
reading the first line) and on all lines joined (a WSGI server joining them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http.cookies import CookieError, SimpleCookie

from aiohttp._cookie_helpers import parse_cookie_header  # what aiohttp's request.cookies runs
from django.http.cookie import parse_cookie as django_parse_cookie
from starlette.requests import cookie_parser as starlette_cookie_parser


def _simple_cookie(text: str) -> list[tuple[str, str]]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(text)
    except CookieError:
        return []
    return [(name, morsel.value) for name, morsel in jar.items()]


APP_READERS: dict[str, Callable[[str], list[tuple[str, str]]]] = {
    "starlette": lambda text: list(starlette_cookie_parser(text).items()),
    "django": lambda text: list(django_parse_cookie(text).items()),
    "aiohttp": lambda text: [(name, morsel.value) for name, morsel in parse_cookie_header(text)],
    "SimpleCookie": _simple_cookie,
}


def app_cookies(cookie_lines: Sequence[bytes]) -> set[tuple[str, str, str]]:
    """(reader, name, value) of every cookie some app reads from these Cookie header values."""
    texts = [line.decode("latin-1") for line in cookie_lines]
    if len(texts) > 1:
        texts.append("; ".join(texts))
    return {(reader, name, value) for reader, parse in APP_READERS.items()
            for text in texts for name, value in parse(text)}
