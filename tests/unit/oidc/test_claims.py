"""The claims a session keeps from the ID token and userinfo: gatekeeper/oidc/claims.py."""

from __future__ import annotations

import pytest

from gatekeeper.oidc.claims import ClaimsFilter

ID_TOKEN = {
    "iss": "https://op.example", "sub": "alice", "aud": "gk", "azp": "gk", "sid": "s1",
    "email": "alice@example.test", "email_verified": True, "name": "Alice", "preferred_username": "al",
    "exp": 1, "iat": 1, "nonce": "n", "at_hash": "h", "auth_time": 1, "acr": "1",
    "roles": ["admin"], "realm_access": {"roles": ["ops"]}, "https://example.com/roles": ["lit"],
    "department": "eng", "picture": "https://img",
}


def test_the_session_keeps_standard_role_and_header_claims_and_drops_the_rest() -> None:
    claims = ClaimsFilter(["roles", "realm_access.roles", "https://example.com/roles", "department"])
    kept = claims.session_claims(ID_TOKEN, None)
    assert kept == {name: ID_TOKEN[name] for name in (
        "iss", "sub", "aud", "azp", "sid", "email", "email_verified", "name", "preferred_username",
        "roles", "realm_access", "https://example.com/roles", "department")}


def test_only_the_standard_claims_are_kept_when_no_path_is_configured() -> None:
    kept = ClaimsFilter([]).session_claims(ID_TOKEN, None)
    assert set(kept) == {"iss", "sub", "aud", "azp", "sid", "email", "email_verified", "name",
                         "preferred_username"}


def test_a_dotted_path_keeps_its_top_level_object_whole() -> None:
    kept = ClaimsFilter(["resource_access.gk.roles"]).session_claims(
        {"sub": "a", "resource_access": {"gk": {"roles": ["x"]}, "other": {"roles": ["y"]}}}, None)
    assert kept["resource_access"] == {"gk": {"roles": ["x"]}, "other": {"roles": ["y"]}}


def test_userinfo_fills_claims_the_id_token_lacks() -> None:
    claims = ClaimsFilter(["groups", "roles"])
    kept = claims.session_claims({"iss": "i", "sub": "alice", "aud": "gk", "name": "From token"},
                                 {"sub": "alice", "name": "From userinfo", "email": "a@x",
                                  "groups": ["g"], "roles": ["r"], "phone_number": "1"})
    assert kept == {"iss": "i", "sub": "alice", "aud": "gk", "name": "From token", "email": "a@x",
                    "groups": ["g"], "roles": ["r"]}


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "azp", "sid"])
def test_userinfo_never_supplies_who_issued_the_login_or_to_whom(claim: str) -> None:
    kept = ClaimsFilter([]).session_claims({"email": "a@x"}, {claim: "from-userinfo", "name": "N"})
    assert claim not in kept
    assert kept == {"email": "a@x", "name": "N"}
