"""Reading claims, wherever they came from (a bearer token, an ID token, userinfo, a session).

One reading of a claim path for every consumer — the roles a principal gets, the identity
headers the app gets (mutate.py), the claims a session keeps (oidc/claims.py), ``policy test``
— so what the policy saw, what the app is told and what a session remembers are the same
claim. A path is dotted (``realm_access.roles``), but a claim whose own name holds the dots
(``https://example.com/roles``, Auth0's namespaced claims) is read as that claim first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard


def is_finite_number(value: Any) -> TypeGuard[float]:
    """A JSON number a float holds (RFC 7519 §2 NumericDate, ``expires_in``): not a bool, not a
    string, not Infinity/NaN — and not an integer too large for a float, which Python's JSON
    reader keeps exact and ``math.isfinite`` answers with OverflowError (a 500, CWE-248)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def claim_at(claims: Mapping[str, Any], dotted: str) -> Any:
    """``realm_access.roles`` → claims["realm_access"]["roles"]; a literal dotted key wins."""
    if dotted in claims:
        return claims[dotted]
    node: Any = claims
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def claim_roots(dotted: str) -> tuple[str, ...]:
    """The top-level claims ``claim_at(claims, dotted)`` may read: the literal key and the
    first step of the path. Whoever keeps a subset of claims must keep these to read the same."""
    first = dotted.split(".", 1)[0]
    return (dotted,) if first == dotted else (dotted, first)


def is_list_member(text: str) -> bool:
    """Whether ``text`` reads back as itself from a comma-joined header. An app reads such a
    header as an HTTP list (RFC 9110 §5.6.1): split at commas, white space around a member
    dropped (Python's ``strip()`` drops Unicode white space too), a quoted member unquoted — so
    ``" admin"``, ``admin `` or ``"admin"`` would be ``admin`` to it. Such a member is left out
    (fail closed), never sent as another name than the policy saw."""
    return bool(text) and text == text.strip() and "," not in text and '"' not in text


def roles_from_claims(claims: Mapping[str, Any], paths: Sequence[str]) -> tuple[str, ...]:
    """The roles the claims at ``paths`` grant, in order, each once: a string is one role, a
    list gives its string members."""
    roles: dict[str, None] = {}  # ordered set: first seen first
    for path in paths:
        value = claim_at(claims, path)
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for role in value:
                # Roles travel comma-joined in one header (X-Auth-Request-Groups): a role the
                # app would read as another, or as two, is not granted at all.
                if isinstance(role, str) and is_list_member(role):
                    roles[role] = None
    return tuple(roles)
