"""gatekeeper/tokens/claims.py: claims → roles and identity header values (unit level)."""

from __future__ import annotations

import pytest

from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.tokens.claims import claim_at, claim_roots, is_list_member, roles_from_claims


def test_roles_are_the_ordered_union_of_the_configured_claims() -> None:
    claims = {"roles": ["user"], "groups": ["ops", "user"], "realm_access": {"roles": ["admin"]}}
    assert roles_from_claims(claims, ["roles", "groups", "realm_access.roles"]) == ("user", "ops", "admin")


@pytest.mark.parametrize(("value", "expected"), [
    ("admin", ("admin",)),
    (["a,b", "c"], ("c",)),
    ([1, None, "", "ok"], ("ok",)),
    ({"not": "a list"}, ()),
], ids=["a string is one role", "a role holding a comma is not granted (it would read as two)",
        "non-strings and empty roles are skipped", "a mapping gives no roles"])
def test_role_values(value: object, expected: tuple[str, ...]) -> None:
    assert roles_from_claims({"roles": value}, ["roles"]) == expected


def test_a_literal_dotted_key_wins_over_a_path() -> None:
    claims = {"a.b": "literal", "a": {"b": "nested"}}
    assert claim_at(claims, "a.b") == "literal"
    assert claim_at({"a": {"b": "nested"}}, "a.b") == "nested"
    assert claim_at({"a": "x"}, "a.b") is None


@pytest.mark.parametrize(("path", "roots"), [
    ("roles", ("roles",)),
    ("realm_access.roles", ("realm_access.roles", "realm_access")),
    ("https://example.com/roles", ("https://example.com/roles", "https://example")),
], ids=["a plain name is its own root", "a dotted path may read the literal key or its first step",
        "a namespaced claim keeps the literal name first"])
def test_claim_roots(path: str, roots: tuple[str, ...]) -> None:
    assert claim_roots(path) == roots


@pytest.mark.parametrize("claims", [
    {"realm_access": {"roles": ["admin"]}, "other": 1},
    {"realm_access.roles": ["literal"], "realm_access": {"roles": ["nested"]}},
    {"https://example.com/roles": ["ns"], "https://example": {"com/roles": ["x"]}},
    {"roles": "one", "groups": ["g1", "g2"], "unrelated": ["z"]},
], ids=["a nested path", "a literal dotted key beside the nested one",
        "a namespaced claim", "plain claims among others"])
def test_a_session_keeps_what_the_role_paths_read(claims: dict[str, object]) -> None:
    paths = ["roles", "groups", "realm_access.roles", "https://example.com/roles"]
    kept = ClaimsFilter(paths).session_claims(claims, None)
    assert roles_from_claims(kept, paths) == roles_from_claims(claims, paths)
    assert roles_from_claims(kept, paths)  # the case reads some role: the check is not vacuous


@pytest.mark.parametrize(("text", "member"), [
    ("admin", True), (" admin", False), ("admin\u00a0", False), ("a,b", False), ('"admin"', False),
    ("", False),
], ids=["a plain name", "leading space", "trailing no-break space (str.strip drops it)",
        "a comma reads as two", "a quoted member reads unquoted", "empty"])
def test_is_list_member(text: str, member: bool) -> None:
    assert is_list_member(text) is member
