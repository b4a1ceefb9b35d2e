"""Claims → roles and identity header values (unit level)."""

from __future__ import annotations

import pytest

from gatekeeper.authn.bearer import claim_at, roles_from_claims


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
