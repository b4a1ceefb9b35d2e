"""Matcher functions: Casbin's path matchers with their patterns compiled once, plus methodMatch.

pycasbin's keyMatch2/regexMatch rebuild a regular expression on every call and lean on ``re``'s
512-entry cache; with thousands of distinct patterns that cache thrashes. Same semantics here,
with a bounded cache of compiled patterns per policy.

Nor does a path decide how long a match takes: ``re`` backtracks, and a pattern holding k
``/*`` (each a ``.*``) against a path that almost fits costs time of degree k in the path's
length (CWE-1333; four of them on a 6 KB path: ~14 s). Patterns translated into literal text,
``.*`` and ``[^/]+`` only are matched by ``_Wildcards`` instead, in time linear in the path for
each piece of the pattern; anything else keeps casbin's regular expression.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from casbin.util import builtin_operators as casbin_ops

_KEY_MATCH2 = re.compile(r"(.*?):[^\/]+(.*?)")


# Bounded caches of compiled patterns, sized for policies of ~100,000 distinct path patterns
# (a smaller cache thrashes there and a decision pays for re-planning its rules).
_PATTERN_CACHE = 1 << 18


@functools.lru_cache(maxsize=_PATTERN_CACHE)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# Patterns made only of plain characters, whole-segment ":params" and a trailing "/*" mean the
# same thing segment by segment as casbin's regular expression does, and compiling a regular
# expression costs ~0.3 ms — the whole load time of a large policy. Those are matched by
# segments; anything else (regex characters such as '.') keeps casbin's own translation.
_PLAIN = re.compile(r"[A-Za-z0-9_\-~/:]*")


@dataclass(frozen=True, slots=True)
class _Segments:
    parts: tuple[str | None, ...]  # None = a ":param" segment (one or more characters)
    any_suffix: bool  # the pattern ended in "/*"
    prefix: str  # the literal text before the first parameter: most paths fail right here

    def match(self, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        given = path.split("/")
        count = len(self.parts)
        if self.any_suffix:
            if len(given) <= count:
                return False
        elif len(given) != count:
            return False
        for want, got in zip(self.parts, given, strict=False):
            if want is None:
                if not got:
                    return False
            elif want != got:
                return False
        return True


# In a piece: None is a [^/]+ segment, a str literal text, a Pattern text holding a '.' (matched
# by a fixed-length expression: linear, nothing to backtrack over).
_Part = str | re.Pattern[str] | None
_SEGMENT_REGEXES = ("[^\\/]+", "[^/]+")  # ':name' / '{name}' as casbin's translations write it
_REGEX_META = frozenset(".^$*+?{}[]\\|()")


@dataclass(frozen=True, slots=True)
class _Wildcards:
    """A translated pattern of literal text, ``.*`` and ``[^/]+`` (each followed by ``/`` or the
    end), anchored both ends, matched without backtracking. Split at each ``.*``, every piece
    matches at a given start in one way only (``[^/]+`` runs to the next ``/``), and a later
    start never ends it earlier: so placing each middle piece at its earliest start is never
    worse, the ``.*`` after it taking up any gap. Exact for a value without a newline (which
    ``.`` does not match and before which ``$`` also matches): callers check that."""

    pieces: tuple[tuple[_Part, ...], ...]

    @staticmethod
    def parse(translated: str) -> _Wildcards | None:
        pieces: list[list[str | None]] = [[]]
        i = 0
        while i < len(translated):
            if translated.startswith(".*", i):
                pieces.append([])
                i += 2
                continue
            segment = next((r for r in _SEGMENT_REGEXES if translated.startswith(r, i)), None)
            if segment is not None:
                i += len(segment)
                if i < len(translated) and translated[i] != "/":
                    return None  # not ended by '/': it would not run to the next one
                pieces[-1].append(None)
                continue
            char = translated[i]
            if char in _REGEX_META and char != ".":  # a lone '.' is any one character
                return None
            last = pieces[-1]
            if last and isinstance(last[-1], str):
                last[-1] += char
            else:
                last.append(char)
            i += 1
        return _Wildcards(tuple(tuple(_text(part) for part in piece) for piece in pieces))

    def match(self, value: str) -> bool:
        first, *middle = self.pieces
        end = _piece_end(first, value, 0)
        if not middle:
            return end == len(value)
        *middle, last = middle
        for piece in middle:
            end = _earliest_end(piece, value, end)
        if end < 0:
            return False
        if not last:
            return True
        return any(_piece_end(last, value, start) == len(value)
                   for start in _starts(last, value, end))


def _text(part: str | None) -> _Part:
    if part is None or "." not in part:
        return part
    return re.compile(".".join(re.escape(literal) for literal in part.split(".")))


def _piece_end(piece: tuple[_Part, ...], value: str, start: int) -> int:
    """Where ``piece`` ends when it starts at ``start``; -1 if it does not match there."""
    if start < 0:
        return -1
    at = start
    for part in piece:
        if part is None:
            slash = value.find("/", at)
            end = len(value) if slash < 0 else slash
            if end == at:
                return -1
            at = end
        elif isinstance(part, str):
            if not value.startswith(part, at):
                return -1
            at += len(part)
        else:
            found = part.match(value, at)
            if found is None:
                return -1
            at = found.end()
    return at


def _starts(piece: tuple[_Part, ...], value: str, start: int) -> Iterator[int]:
    """The starts from ``start`` on where ``piece`` may match (its leading text found)."""
    head = piece[0] if piece else None
    if not isinstance(head, str):
        yield from range(start, len(value) + 1)
        return
    at = value.find(head, start)
    while at >= 0:
        yield at
        at = value.find(head, at + 1)


def _earliest_end(piece: tuple[_Part, ...], value: str, start: int) -> int:
    if start < 0:
        return -1
    for at in _starts(piece, value, start):
        end = _piece_end(piece, value, at)
        if end >= 0:
            return end
    return -1


@functools.lru_cache(maxsize=_PATTERN_CACHE)
def _key_match2_plan(pattern: str) -> _Segments | _Wildcards | re.Pattern[str]:
    body, any_suffix = (pattern[:-2], True) if pattern.endswith("/*") else (pattern, False)
    if _PLAIN.fullmatch(body):
        parts = body.split("/")
        if all(":" not in p or (p.startswith(":") and len(p) > 1 and p.count(":") == 1)
               for p in parts):
            segments = tuple(None if p.startswith(":") else p for p in parts)
            literal = body.split(":", 1)[0] if ":" in body else body + ("/" if any_suffix else "")
            return _Segments(segments, any_suffix, literal)
    # As casbin's key_match2: '/*' is any suffix, ':name' one segment; anchored both ends.
    translated = pattern.replace("/*", "/.*")
    translated = _KEY_MATCH2.sub(r"\g<1>[^\/]+\g<2>", translated, 0)
    if translated == "*":
        translated = "(.*)"
    return _Wildcards.parse(translated) or re.compile("^" + translated + "$")


def key_match2(key1: str, key2: str) -> bool:
    plan = _key_match2_plan(key2)
    if isinstance(plan, re.Pattern):
        return plan.match(key1) is not None
    if "\n" in key1:  # casbin's '.' stops at a newline and '$' also matches before one
        return bool(casbin_ops.key_match2(key1, key2))  # never a path: paths hold no controls
    return plan.match(key1)


@functools.lru_cache(maxsize=_PATTERN_CACHE)
def _key_match35_plan(pattern: str, five: bool) -> _Wildcards | re.Pattern[str]:
    # As casbin's key_match3 / key_match5: '/*' any suffix, '{name}' one segment.
    translated = pattern.replace("/*", "/.*")
    if five:
        translated = casbin_ops.KEY_MATCH5_PATTERN.sub("[^/]+", translated, 0)
    else:
        translated = casbin_ops.KEY_MATCH3_PATTERN.sub(r"\g<1>[^\/]+\g<2>", translated, 0)
    return _Wildcards.parse(translated) or re.compile("^" + translated + "$")


def _key_match35(key1: str, key2: str, five: bool) -> bool:
    plan = _key_match35_plan(key2, five)
    if isinstance(plan, re.Pattern) or "\n" in key1:
        return plan.match(key1) is not None if isinstance(plan, re.Pattern) else bool(
            (casbin_ops.key_match5 if five else casbin_ops.key_match3)(key1, key2))
    return plan.match(key1)


def key_match3(key1: str, key2: str) -> bool:
    return _key_match35(key1, key2, five=False)


def key_match5(key1: str, key2: str) -> bool:
    query = key1.find("?")  # casbin's key_match5 compares the path without its query
    return _key_match35(key1 if query < 0 else key1[:query], key2, five=True)


def regex_match(key1: str, key2: str) -> bool:
    return _regex(key2).match(key1) is not None


@functools.lru_cache(maxsize=4096)
def _methods(spec: str) -> frozenset[str]:
    return frozenset(m.strip().upper() for m in spec.split("|") if m.strip())


def method_match(method: str, spec: str) -> bool:
    """``*`` or an exact, upper-case list ``GET|HEAD``: no prefix tricks, no case tricks."""
    if spec.strip() == "*":
        return True
    return method.upper() in _methods(spec)


def matcher_functions() -> dict[str, Callable[..., Any]]:
    """Every function a model's matcher may call (unknown names are refused at load)."""
    return {
        "keyMatch": casbin_ops.key_match_func,
        "keyMatch2": key_match2,
        "keyMatch3": key_match3,
        "keyMatch4": casbin_ops.key_match4_func,
        "keyMatch5": key_match5,
        "keyGet": casbin_ops.key_get,
        "keyGet2": casbin_ops.key_get2,
        "regexMatch": regex_match,
        "globMatch": casbin_ops.glob_match_func,
        "ipMatch": casbin_ops.ip_match_func,
        "methodMatch": method_match,
    }
