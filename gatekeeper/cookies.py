"""Cookies: the one reading of a request's Cookie headers, and those gatekeeper sets.

Reading. Every Cookie header gatekeeper reads — the session cookie and its chunks, the
login-state cookies, ``auth.token_sources: cookie:NAME`` — and the removal of its own cookies
before the request goes to the app go through one parser (``read_segment``), so what
gatekeeper reads as its cookie is exactly what it strips, and no copy it did not read reaches
the app as the cookie it did read. Apps split Cookie headers differently, so the parser reads
every cookie any of them could see: split at every ``;``, names trimmed as Starlette's and
Django's parsers trim them (``str.strip()`` of the latin-1 text: ``\xa0NAME`` is NAME to them),
and the words after white space inside a segment too (``SimpleCookie`` and aiohttp read
``a=1 NAME=x`` as two cookies). Linear in the header's bytes (``SimpleCookie`` itself is
quadratic on quoted backslashes, CVE-2024-7592, and drops the rest of a header at the first
character it dislikes).

Setting. Anything may add to a request's jar (the session store, the login routes); the gate
adds the jar's ``Set-Cookie`` headers to whatever the answer turns out to be: proxied, redirect
or error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_OWS = b" \t"
# What an app's cookie parser trims from a name: every byte Python's str.strip() drops from
# latin-1 text — HTTP's OWS, the ASCII controls \n\v\f\r\x1c-\x1f, NEL (\x85) and NBSP (\xa0).
_NAME_TRIM = bytes(b for b in range(256) if chr(b).isspace())
_SPACE = re.compile(b"[" + re.escape(_NAME_TRIM) + b"]+")


@dataclass(frozen=True, slots=True)
class SetCookie:
    """One ``Set-Cookie`` (RFC 6265 §4.1); ``max_age=0`` deletes the cookie."""

    name: str
    value: str = field(repr=False)  # a sealed session or a ticket: never logged
    max_age: int | None
    secure: bool
    domain: str | None = None
    path: str = "/"
    http_only: bool = True
    same_site: Literal["Lax", "Strict", "None"] = "Lax"

    def header_value(self) -> bytes:
        parts = [f"{self.name}={self.value}", f"Path={self.path}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
            if self.max_age <= 0:
                parts.append(f"Expires={_EPOCH}")  # clients that predate Max-Age
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts).encode("latin-1")


class CookieJar:
    """The cookies one response must set: at most one per name, the last one set wins (a session
    refreshed and then cleared in the same request is cleared)."""

    __slots__ = ("_cookies",)

    def __init__(self) -> None:
        self._cookies: dict[str, SetCookie] = {}

    def set(self, cookie: SetCookie) -> None:
        self._cookies.pop(cookie.name, None)
        self._cookies[cookie.name] = cookie

    def get(self, name: str) -> SetCookie | None:
        return self._cookies.get(name)

    def __iter__(self) -> Iterator[SetCookie]:
        return iter(list(self._cookies.values()))

    def __len__(self) -> int:
        return len(self._cookies)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"set-cookie", cookie.header_value()) for cookie in self._cookies.values()]


# Directives that let a shared cache store an answer, or that a shared cache obeys instead of
# "private"; and headers by which a CDN is told to cache regardless of Cache-Control (RFC 9213
# CDN-Cache-Control and its vendor-named variants, Surrogate-Control).
_SHARED_DIRECTIVES = frozenset({b"public", b"s-maxage", b"private"})


def _is_cdn_header(name: bytes) -> bool:
    lowered = name.lower()
    return lowered == b"surrogate-control" or lowered.endswith(b"cdn-cache-control")


def private_answer(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` of an answer that now carries our Set-Cookie, made unstorable by a shared
    cache (RFC 9111 §5.2.2.7 private; RFC 6265 §8 on cookies and caches): a CDN or a corporate
    proxy that kept it would hand one user's session to the next. ``no-store`` already says so
    and is kept as is; otherwise ``public`` and ``s-maxage`` go (and a field-qualified ``private``,
    which lets the rest be stored) and ``private`` is added, the app's other directives kept."""
    directives: list[bytes] = []
    rest: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"cache-control":
            directives.extend(d.strip() for d in value.split(b",") if d.strip())
        elif not _is_cdn_header(lowered):
            rest.append((name, value))
    names = [d.split(b"=", 1)[0].strip().lower() for d in directives]
    if b"no-store" in names:
        kept = directives
    else:
        kept = [d for d, n in zip(directives, names, strict=True) if n not in _SHARED_DIRECTIVES]
        kept.insert(0, b"private")
    return [*rest, (b"cache-control", b", ".join(kept))]


def cookie_pairs(values: Iterable[bytes]) -> Iterator[tuple[bytes, bytes | None]]:
    """(name, value) of every cookie any app could read in the request's Cookie headers, in
    order, repeats included; the value is None for a name found after white space, whose value
    apps read differently (``read_segment``). Values are trimmed of spaces and tabs only and
    never unquoted (a quoted or padded spelling of a credential is another text: refused where
    it is checked, not normalised)."""
    for value in values:
        for segment in value.split(b";"):
            name, value_, hidden = read_segment(segment)
            yield name, value_
            for other in hidden:
                yield other, None


def read_segment(segment: bytes) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    """One ``;``-separated segment: its name (before the first ``=``, all of it when there is
    none, as PHP reads it) trimmed as the loosest app trims it, its value, and the other names
    its words start with when white space separates words — because ``SimpleCookie`` and
    aiohttp split cookies at white space too: ``x tok=A`` is the cookie ``x tok`` to Starlette,
    ``x`` and ``tok`` to aiohttp, and ``a=1 tok = A`` is ``tok`` = ``A`` to them (so only that
    the name is there is known, not which value an app reads)."""
    name, _, value = segment.partition(b"=")
    name = name.strip(_NAME_TRIM)
    words = segment.strip(_NAME_TRIM)
    # One memchr per kind of white space (an int operand: no buffer set-up), likeliest first;
    # a regular expression would step through a 4 KB session cookie byte by byte (~20x slower).
    if not (32 in words or 9 in words or not words.isascii() or 10 in words or 13 in words
            or 11 in words or 12 in words or 28 in words or 29 in words or 30 in words
            or 31 in words):
        return name, value.strip(_OWS), ()
    starts = [word.partition(b"=")[0] for word in _SPACE.split(words)]
    # The first word's name is the segment's own, unless white space cut it ("x tok=A").
    hidden = tuple(other for index, other in enumerate(starts) if other and (index or other != name))
    return name, value.strip(_OWS), hidden


def request_cookies(values: Iterable[bytes]) -> dict[str, str]:
    """Cookie name → value of a request's Cookie headers; the first of a repeated name wins (the
    most specific path comes first, RFC 6265 §5.4). A name first found after white space reads
    as empty: a cookie gatekeeper cannot read for sure, so never a valid one."""
    cookies: dict[str, str] = {}
    for name, value in cookie_pairs(values):
        if name:
            cookies.setdefault(name.decode("latin-1"), "" if value is None else value.decode("latin-1"))
    return cookies


def strip_cookies(
    headers: Iterable[tuple[bytes, bytes]], owned: Callable[[bytes], bool]
) -> list[tuple[bytes, bytes]]:
    """The request headers without every segment holding a cookie whose name is ``owned`` (in
    every Cookie header, every copy, hidden after white space too), the other segments byte for
    byte; a Cookie header left empty is dropped."""
    out: list[tuple[bytes, bytes]] = []
    for key, value in headers:
        if key.lower() != b"cookie":
            out.append((key, value))
            continue
        segments = value.split(b";")
        kept = [segment for segment in segments if not _holds(segment, owned)]
        if len(kept) == len(segments):
            out.append((key, value))
            continue
        remaining = b";".join(kept).strip(_OWS)  # a field value has no outer whitespace
        if remaining.strip(_OWS + b";"):
            out.append((key, remaining))
    return out


def _holds(segment: bytes, owned: Callable[[bytes], bool]) -> bool:
    name, _, hidden = read_segment(segment)
    return owned(name) or any(owned(other) for other in hidden)
