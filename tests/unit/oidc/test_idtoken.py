"""A refreshed ID token must name the same login: gatekeeper/oidc/idtoken.py."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.errors import LoginFailed
from gatekeeper.oidc.idtoken import check_refreshed

ORIGINAL = {"iss": "https://op.example", "sub": "alice", "aud": "gk", "azp": "gk", "email": "a@x"}


@pytest.mark.parametrize("refreshed", [
    dict(ORIGINAL),
    {**ORIGINAL, "aud": ["gk"]},
    {**ORIGINAL, "email": "new@x", "name": "Alice", "exp": 2},
], ids=["identical", "aud as a one-element list", "other claims may change"])
def test_a_refreshed_id_token_for_the_same_login_passes(refreshed: dict[str, Any]) -> None:
    check_refreshed(ORIGINAL, refreshed)


def test_aud_order_does_not_matter_for_several_audiences() -> None:
    check_refreshed({**ORIGINAL, "aud": ["gk", "api"]}, {**ORIGINAL, "aud": ["api", "gk"]})
    check_refreshed({**ORIGINAL, "aud": ["gk"]}, {**ORIGINAL, "aud": "gk"})


@pytest.mark.parametrize(("change", "code"), [
    ({"iss": "https://other.example"}, "refresh_changed_iss"),
    ({"sub": "mallory"}, "refresh_changed_sub"),
    ({"aud": "other"}, "refresh_changed_aud"),
    ({"aud": ["gk", "other"]}, "refresh_changed_aud"),
    ({"azp": "other"}, "refresh_changed_azp"),
    ({"sub": None}, "refresh_changed_sub"),
], ids=["another issuer", "another subject", "another audience", "an added audience",
        "another authorized party", "the subject is gone"])
def test_a_refreshed_id_token_for_another_login_is_refused(change: dict[str, Any], code: str) -> None:
    refreshed = {k: v for k, v in {**ORIGINAL, **change}.items() if v is not None}
    with pytest.raises(LoginFailed) as caught:
        check_refreshed(ORIGINAL, refreshed)
    assert caught.value.code == code
