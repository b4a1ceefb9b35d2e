"""Which claims a session keeps: what the pipeline needs, not the whole ID token.

Every kept byte is a cookie byte on every request, so a session keeps the standard identity
claims, the claims ``auth.roles_claims`` and ``headers`` name (their top-level key), and those
that a refresh must compare (iss, sub, aud, azp) — nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_STANDARD = ("iss", "sub", "aud", "azp", "sid", "email", "email_verified", "name",
             "preferred_username")
_FROM_ID_TOKEN_ONLY = frozenset({"iss", "sub", "aud", "azp", "sid"})


class ClaimsFilter:
    def __init__(self, claim_paths: Iterable[str]) -> None:
        keep = dict.fromkeys(_STANDARD)
        for path in claim_paths:
            if path == "roles":
                keep["roles"] = None
            keep[path] = None  # a literal dotted key ("https://example.com/roles") as is
            keep[path.split(".", 1)[0]] = None
        self._keep = tuple(keep)

    def session_claims(
        self, id_token: Mapping[str, Any], userinfo: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Userinfo adds claims the ID token lacks (often roles or groups); the ID token wins
        for the claims that say who issued it and to whom."""
        merged: dict[str, Any] = {}
        for name in self._keep:
            if name in id_token:
                merged[name] = id_token[name]
            elif userinfo is not None and name in userinfo and name not in _FROM_ID_TOKEN_ONLY:
                merged[name] = userinfo[name]
        return merged
