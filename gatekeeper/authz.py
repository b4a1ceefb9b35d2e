"""Authorization: a small typed interface; the Casbin engine plugs in behind it.

Until policies are configured, the rule is the one every peer starts from: ``public_paths`` are
open to anonymous callers, everything else needs an authenticated principal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gatekeeper.paths import matches_prefix_pattern
from gatekeeper.principal import Principal


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str  # machine code: which rule decided


class Authorizer(Protocol):
    def authorize(self, principal: Principal, method: str, path: str) -> Verdict: ...


class PublicPaths:
    def __init__(self, patterns: Sequence[str]) -> None:
        self._exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._prefixes = tuple(p for p in patterns if p.endswith("*"))

    def __contains__(self, path: str) -> bool:
        return path in self._exact or any(matches_prefix_pattern(path, p) for p in self._prefixes)


class AuthenticatedOnly:
    """Allow public paths to anyone and everything else to any authenticated principal."""

    def __init__(self, public_paths: PublicPaths) -> None:
        self._public = public_paths

    def authorize(self, principal: Principal, method: str, path: str) -> Verdict:
        if principal.via != "anonymous":
            return Verdict(True, "authenticated")
        if path in self._public:
            return Verdict(True, "public_path")
        return Verdict(False, "no_credentials")
