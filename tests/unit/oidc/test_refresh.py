"""Single-flight session refresh, and the claims a refresh replaces: gatekeeper/oidc/refresh.py."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from gatekeeper.errors import LoginFailed, ProviderUnavailable, SessionInvalid
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.idtoken import IdTokenRules
from gatekeeper.oidc.provider import TokenSet
from gatekeeper.oidc.refresh import REMEMBER_SECONDS, SessionRefresher
from gatekeeper.sessions.model import Session
from tests.support.fakes import FakeClock, run

T0 = 1_700_000_000.0


# -- session refresh -----------------------------------------------------------------------------

class FakeProvider:
    """What SessionRefresher uses of a Provider; counts refresh calls, each a little slow."""

    def __init__(self, provider_id: str = "corp") -> None:
        self.id = provider_id
        self.keys = object()
        self.rules = IdTokenRules(issuer="https://op.example", client_id="gk", algorithms=("RS256",),
                                  leeway_seconds=0)
        self.calls: list[str] = []
        self.error: Exception | None = None
        self.rotate = True
        self.expires_in = 300
        self.settings = SimpleNamespace(userinfo=False)
        self.userinfo_answer: dict[str, Any] | Exception | None = None
        self.userinfo_calls: list[str] = []
        self.userinfo_delay = 0.0

    async def userinfo(self, access_token: str) -> dict[str, Any] | None:
        self.userinfo_calls.append(access_token)
        await asyncio.sleep(self.userinfo_delay)
        if isinstance(self.userinfo_answer, Exception):
            raise self.userinfo_answer
        return self.userinfo_answer

    async def refresh(self, refresh_token: str) -> TokenSet:
        self.calls.append(refresh_token)
        await asyncio.sleep(0.01)  # long enough for every concurrent caller to join
        if self.error is not None:
            raise self.error
        n = len(self.calls)
        return TokenSet(access_token=f"access-{n}", refresh_token=f"refresh-{n}" if self.rotate else None,
                        id_token=None, access_expires_at=int(T0) + self.expires_in)


def session(*, refresh_token: str | None = "refresh-0", expires_in: float = 30) -> Session:
    return Session.new(subject="alice", provider="corp", claims={"sub": "alice", "roles": ["user"]},
                       access_token="access-0", refresh_token=refresh_token,
                       access_expires_at=int(T0 + expires_in), now=T0 - 3600)


def refresher(provider: FakeProvider, clock: FakeClock, margin: int = 60) -> SessionRefresher:
    return SessionRefresher({provider.id: provider}, ClaimsFilter([]), Metrics(),  # type: ignore[dict-item]
                            margin_seconds=margin, clock=clock)


def test_a_session_not_due_is_returned_as_is() -> None:
    provider = FakeProvider()
    old = session(expires_in=3600)
    assert run(refresher(provider, FakeClock()).current(old)) is old
    assert provider.calls == []


def test_fifty_concurrent_requests_refresh_once() -> None:
    provider = FakeProvider()
    old = session(expires_in=30)  # inside the 60 s margin

    async def main() -> list[Session]:
        sessions = refresher(provider, FakeClock())
        return await asyncio.gather(*(sessions.current(old) for _ in range(50)))

    results = run(main())
    assert provider.calls == ["refresh-0"]
    assert all(result is results[0] for result in results)
    fresh = results[0]
    assert fresh.id == old.id and fresh.subject == old.subject and fresh.claims == old.claims
    assert (fresh.access_token, fresh.refresh_token) == ("access-1", "refresh-1")
    assert fresh.access_expires_at == int(T0) + 300


def test_a_late_request_with_the_old_cookie_gets_the_refreshed_session() -> None:
    provider = FakeProvider()
    clock = FakeClock()
    sessions = refresher(provider, clock)
    old = session(expires_in=30)

    async def main() -> tuple[Session, Session]:
        fresh = await sessions.current(old)
        clock.now += REMEMBER_SECONDS - 1
        return fresh, await sessions.current(old)

    fresh, late = run(main())
    assert late is fresh
    assert provider.calls == ["refresh-0"]  # the rotated-out token was not sent again


def test_the_refreshed_session_is_not_refreshed_again_while_fresh() -> None:
    provider = FakeProvider()
    sessions = refresher(provider, FakeClock())

    async def main() -> Session:
        fresh = await sessions.current(session(expires_in=30))
        return await sessions.current(fresh)

    run(main())
    assert provider.calls == ["refresh-0"]


def test_a_caller_cancelled_mid_refresh_does_not_cancel_it_for_the_others() -> None:
    provider = FakeProvider()
    old = session(expires_in=30)

    async def main() -> list[Session]:
        sessions = refresher(provider, FakeClock())
        first = asyncio.create_task(sessions.current(old))
        others = [asyncio.create_task(sessions.current(old)) for _ in range(5)]
        await asyncio.sleep(0)
        first.cancel()
        return await asyncio.gather(*others)

    results = run(main())
    assert provider.calls == ["refresh-0"]
    assert {r.access_token for r in results} == {"access-1"}


def test_a_provider_that_does_not_rotate_keeps_the_refresh_token() -> None:
    provider = FakeProvider()
    provider.rotate = False
    fresh = run(refresher(provider, FakeClock()).current(session(expires_in=30)))
    assert fresh.refresh_token == "refresh-0" and fresh.access_token == "access-1"


def test_without_a_refresh_token_a_still_valid_session_is_used_while_it_lasts() -> None:
    provider = FakeProvider()
    old = session(refresh_token=None, expires_in=30)
    assert run(refresher(provider, FakeClock()).current(old)) is old
    assert provider.calls == []


@pytest.mark.parametrize("expired_for", [0, 1, 3600], ids=["expiring now", "expired a second ago",
                                                          "expired an hour ago"])
def test_without_a_refresh_token_an_expired_session_is_invalid(expired_for: int) -> None:
    provider = FakeProvider()
    with pytest.raises(SessionInvalid) as caught:
        run(refresher(provider, FakeClock()).current(session(refresh_token=None, expires_in=-expired_for)))
    assert caught.value.code == "session_token_expired"
    assert provider.calls == []


def test_an_unreachable_provider_keeps_a_still_valid_session_and_retries_next_time() -> None:
    provider = FakeProvider()
    provider.error = ProviderUnavailable("down", code="token_endpoint_unavailable")
    sessions = refresher(provider, FakeClock())
    old = session(expires_in=30)

    async def main() -> tuple[Session, Session]:
        first = await sessions.current(old)
        return first, await sessions.current(old)

    first, second = run(main())
    assert first is old and second is old
    assert provider.calls == ["refresh-0", "refresh-0"]  # nothing remembered from a failure


def test_an_unreachable_provider_after_expiry_ends_the_session() -> None:
    provider = FakeProvider()
    provider.error = ProviderUnavailable("down", code="token_endpoint_unavailable")
    with pytest.raises(SessionInvalid) as caught:
        run(refresher(provider, FakeClock()).current(session(expires_in=-1)))
    assert caught.value.code == "refresh_failed"


@pytest.mark.parametrize("expires_in", [30, -1], ids=["token still valid", "token expired"])
def test_a_refused_refresh_ends_the_session_with_the_providers_code(expires_in: int) -> None:
    provider = FakeProvider()
    provider.error = LoginFailed("the provider refused the refresh token (invalid_grant)",
                                 code="token_invalid_grant")
    with pytest.raises(SessionInvalid) as caught:
        run(refresher(provider, FakeClock()).current(session(expires_in=expires_in)))
    assert caught.value.code == "token_invalid_grant"


def test_a_refused_refresh_is_reported_once_to_every_concurrent_caller() -> None:
    provider = FakeProvider()
    provider.error = LoginFailed("refused", code="token_invalid_grant")
    old = session(expires_in=30)

    async def main() -> list[BaseException | Session]:
        sessions = refresher(provider, FakeClock())
        return await asyncio.gather(*(sessions.current(old) for _ in range(20)), return_exceptions=True)

    results = run(main())
    assert provider.calls == ["refresh-0"]
    assert all(isinstance(r, SessionInvalid) and r.code == "token_invalid_grant" for r in results)


def test_a_session_of_a_provider_no_longer_configured_is_invalid() -> None:
    provider = FakeProvider("other")
    with pytest.raises(SessionInvalid) as caught:
        run(refresher(provider, FakeClock()).current(session(expires_in=-1)))
    assert caught.value.code == "unknown_provider"


# -- claims at refresh: replaced, never merged (issue 11 §1.5) -------------------------------------
# The refreshed-ID-token rows run end to end in tests/e2e/test_oidc_role_refresh.py; these are
# the refreshes whose token answer carries no ID token.

ROLE_PATHS = ["roles", "groups"]


def userinfo_session(*, claims: dict[str, Any], from_userinfo: tuple[str, ...] | None) -> Session:
    return dataclasses.replace(session(expires_in=30), claims=claims, userinfo_claims=from_userinfo)


def role_refresher(provider: FakeProvider, userinfo_budget: float = 5.0) -> SessionRefresher:
    return SessionRefresher({provider.id: provider}, ClaimsFilter(ROLE_PATHS), Metrics(),  # type: ignore[dict-item]
                            margin_seconds=60, clock=FakeClock(), userinfo_budget_seconds=userinfo_budget)


ID_CLAIMS = {"iss": "https://op.example", "sub": "alice", "aud": "gk", "email": "a@x"}


@pytest.mark.parametrize(("now_says", "roles", "groups"), [
    pytest.param({"sub": "alice", "roles": ["user"]}, ["user"], None, id="a role withdrawn"),
    pytest.param({"sub": "alice"}, None, None, id="no roles claim any more"),
    pytest.param({"sub": "alice", "roles": ["admin", "user"], "groups": ["g"]}, ["admin", "user"],
                 ["g"], id="a role and a group added"),
])
def test_without_a_new_id_token_userinfo_roles_are_asked_again_and_replaced(
    now_says: dict[str, Any], roles: list[str] | None, groups: list[str] | None
) -> None:
    provider = FakeProvider()
    provider.settings.userinfo = True
    provider.userinfo_answer = now_says
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["admin", "user"]}, from_userinfo=("roles",))

    fresh = run(role_refresher(provider).current(old))

    assert provider.userinfo_calls == ["access-1"]  # with the new access token
    assert fresh.claims.get("roles") == roles and fresh.claims.get("groups") == groups
    assert fresh.claims["email"] == "a@x"  # the last ID token's claims stand
    assert fresh.userinfo_claims == tuple(k for k in ("roles", "groups") if k in now_says)
    assert Session.from_json(fresh.to_json()).userinfo_claims == fresh.userinfo_claims


def test_a_session_that_did_not_record_its_userinfo_claims_keeps_only_sure_id_token_claims() -> None:
    provider = FakeProvider()
    provider.settings.userinfo = True
    provider.userinfo_answer = {"sub": "alice", "email": "a@x"}
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["admin"]}, from_userinfo=None)
    fresh = run(role_refresher(provider).current(old))
    assert "roles" not in fresh.claims
    assert {k: fresh.claims[k] for k in ("iss", "sub", "aud", "email")} == ID_CLAIMS


def test_without_userinfo_the_last_id_tokens_roles_stand_when_no_new_id_token_comes() -> None:
    provider = FakeProvider()  # userinfo off: every claim came from the ID token
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["admin"]}, from_userinfo=None)
    fresh = run(role_refresher(provider).current(old))
    assert fresh.claims["roles"] == ["admin"] and provider.userinfo_calls == []


def test_an_unreachable_userinfo_at_refresh_leaves_its_roles_out_and_keeps_the_new_tokens() -> None:
    provider = FakeProvider()
    provider.settings.userinfo = True
    provider.userinfo_answer = ProviderUnavailable("down", code="userinfo_unavailable")
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["admin"]}, from_userinfo=("roles",))
    fresh = run(role_refresher(provider).current(old))
    assert "roles" not in fresh.claims and fresh.claims["email"] == "a@x"
    assert (fresh.access_token, fresh.refresh_token) == ("access-1", "refresh-1")


def test_a_userinfo_slower_than_what_the_refresh_lock_leaves_is_given_up_not_waited_for() -> None:
    provider = FakeProvider()
    provider.settings.userinfo = True
    provider.userinfo_answer = {"sub": "alice", "roles": ["admin"]}
    provider.userinfo_delay = 30.0  # far past the budget: the refresh must not wait for it
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["admin"]}, from_userinfo=("roles",))
    fresh = run(role_refresher(provider, userinfo_budget=0.2).current(old))
    assert "roles" not in fresh.claims  # left out, never kept from before
    assert (fresh.access_token, fresh.refresh_token) == ("access-1", "refresh-1")


def test_userinfo_about_another_user_at_refresh_ends_the_session() -> None:
    provider = FakeProvider()
    provider.settings.userinfo = True
    provider.userinfo_answer = {"sub": "mallory", "roles": ["admin"]}
    old = userinfo_session(claims={**ID_CLAIMS, "roles": ["user"]}, from_userinfo=("roles",))
    with pytest.raises(SessionInvalid) as caught:
        run(role_refresher(provider).current(old))
    assert caught.value.code == "userinfo_sub_mismatch"
