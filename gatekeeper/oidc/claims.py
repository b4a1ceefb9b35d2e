"""Which claims a session keeps: what the pipeline needs, not the whole ID token.

Every kept byte is a cookie byte on every request, so a session keeps the standard identity
claims, the claims ``auth.roles_claims`` and ``headers`` name (their top-level key), and those
that a refresh must compare (iss, sub, aud, azp) — nothing else.

At a refresh the claims are taken afresh, never merged into the old ones: a refreshed ID token
without a role claim (Entra ID drops ``roles`` once no app role is assigned) means no roles,
and what userinfo said at login is asked again (``Session.userinfo_claims`` remembers which
claims came from there, so a refresh without a new ID token can drop them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gatekeeper.tokens.claims import claim_roots

_STANDARD = ("iss", "sub", "aud", "azp", "sid", "email", "email_verified", "name",
             "preferred_username")
_FROM_ID_TOKEN_ONLY = frozenset({"iss", "sub", "aud", "azp", "sid"})


class ClaimsFilter:
    def __init__(self, claim_paths: Iterable[str]) -> None:
        keep = dict.fromkeys(_STANDARD)
        for path in claim_paths:
            keep.update(dict.fromkeys(claim_roots(path)))  # what claim_at may read for it
        self._keep = tuple(keep)

    def session_claims(
        self, id_token: Mapping[str, Any], userinfo: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """Userinfo adds claims the ID token lacks (often roles or groups); the ID token wins
        for the claims that say who issued it and to whom."""
        return self.kept(id_token, userinfo)[0]

    def kept(
        self, id_token: Mapping[str, Any], userinfo: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        """The session's claims and the names of those userinfo supplied (None: no userinfo)."""
        merged: dict[str, Any] = {}
        from_userinfo: list[str] = []
        for name in self._keep:
            if name in id_token:
                merged[name] = id_token[name]
            elif userinfo is not None and name in userinfo and name not in _FROM_ID_TOKEN_ONLY:
                merged[name] = userinfo[name]
                from_userinfo.append(name)
        return merged, None if userinfo is None else tuple(from_userinfo)


def id_token_part(
    claims: Mapping[str, Any], from_userinfo: tuple[str, ...] | None, *, userinfo_asked: bool
) -> dict[str, Any]:
    """What of a session's claims came from its last ID token. ``from_userinfo`` None means
    not recorded (a session written before it was): when userinfo is asked again, only the
    claims that can come from nowhere else are sure to be the ID token's (fail closed)."""
    if from_userinfo is None:
        if not userinfo_asked:
            return dict(claims)
        return {k: v for k, v in claims.items() if k in _FROM_ID_TOKEN_ONLY}
    return {k: v for k, v in claims.items() if k not in from_userinfo}
