"""Matcher functions: Casbin's path matchers with their patterns compiled once, plus methodMatch.

pycasbin's keyMatch2/regexMatch rebuild a regular expression on every call and lean on ``re``'s
512-entry cache; with thousands of distinct patterns that cache thrashes. Same semantics here,
with a bounded cache of compiled patterns per policy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
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


@functools.lru_cache(maxsize=_PATTERN_CACHE)
def _key_match2_plan(pattern: str) -> _Segments | re.Pattern[str]:
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
    return re.compile("^" + translated + "$")


def key_match2(key1: str, key2: str) -> bool:
    plan = _key_match2_plan(key2)
    if isinstance(plan, _Segments):
        if "\n" in key1:  # casbin's '.' stops at a newline and '$' also matches before one
            return bool(casbin_ops.key_match2(key1, key2))
        return plan.match(key1)
    return plan.match(key1) is not None


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
        "keyMatch3": casbin_ops.key_match3_func,
        "keyMatch4": casbin_ops.key_match4_func,
        "keyMatch5": casbin_ops.key_match5_func,
        "keyGet": casbin_ops.key_get,
        "keyGet2": casbin_ops.key_get2,
        "regexMatch": regex_match,
        "globMatch": casbin_ops.glob_match_func,
        "ipMatch": casbin_ops.ip_match_func,
        "methodMatch": method_match,
    }
