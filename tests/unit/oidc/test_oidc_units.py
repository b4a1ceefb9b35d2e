"""Browser-login building blocks, unit level: navigation detection, the claims a session keeps,
the login-state cookie, single-flight session refresh and the refreshed ID token check."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from dataclasses import asdict
from types import SimpleNamespace
from typing import Any

import pytest

from gatekeeper.errors import LoginFailed, ProviderUnavailable, SessionInvalid
from gatekeeper.login.navigation import accept_quality, is_navigation
from gatekeeper.login.state import MAX_PENDING_LOGINS, LoginCookies, PendingLogin
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.claims import ClaimsFilter
from gatekeeper.oidc.idtoken import IdTokenRules, check_refreshed
from gatekeeper.oidc.provider import TokenSet, parse_discovery
from gatekeeper.oidc.refresh import REMEMBER_SECONDS, SessionRefresher
from gatekeeper.request import RequestView
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.model import Session
from tests.support.fakes import FakeClock, run

T0 = 1_700_000_000.0
SECRET = "unit-session-secret-" + secrets.token_hex(16)


def request(method: str = "GET", headers: dict[str, str] | None = None,
            cookies: list[str] | None = None) -> RequestView:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw += [(b"cookie", value.encode("latin-1")) for value in cookies or []]
    return RequestView({"type": "http", "method": method, "path": "/", "headers": raw}, "/")


# -- navigation ---------------------------------------------------------------------------------

CHROME = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,"
          "*/*;q=0.8,application/signed-exchange;v=b3;q=0.7")
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
FIREFOX_OLD = "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"
SAFARI = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
IE11 = "text/html, application/xhtml+xml, image/jxr, */*"
NAVIGATE = {"sec-fetch-mode": "navigate", "sec-fetch-dest": "document"}

NAVIGATIONS = [
    ("Chrome navigation", "GET", {"accept": CHROME, **NAVIGATE}),
    ("Chrome navigation without Sec-Fetch headers", "GET", {"accept": CHROME}),
    ("Firefox navigation", "GET", {"accept": FIREFOX, **NAVIGATE}),
    ("older Firefox navigation", "GET", {"accept": FIREFOX_OLD}),
    ("Safari navigation", "GET", {"accept": SAFARI, "sec-fetch-mode": "navigate"}),
    ("Internet Explorer 11 navigation", "GET", {"accept": IE11}),
    ("a HEAD navigation", "HEAD", {"accept": CHROME}),
    ("a lower-case method is upper-cased first", "get", {"accept": FIREFOX}),
    ("html listed before json at the same quality", "GET", {"accept": "text/html, application/json"}),
    ("html preferred by q-value even when json comes first", "GET",
     {"accept": "application/json;q=0.5, text/html"}),
    ("html beats json that only */* admits", "GET", {"accept": "text/html;q=0.9, */*;q=0.8"}),
    ("a q parameter with spaces and upper-case Q", "GET", {"accept": "application/json ; Q=0.2, text/html"}),
]
NOT_NAVIGATIONS = [
    ("fetch() default */*", "GET", {"accept": "*/*"}),
    ("no Accept header", "GET", {}),
    ("Accept: application/json", "GET", {"accept": "application/json"}),
    ("axios default", "GET", {"accept": "application/json, text/plain, */*"}),
    ("jQuery getJSON", "GET", {"accept": "application/json, text/javascript, */*; q=0.01"}),
    ("XMLHttpRequest flagged by X-Requested-With", "GET",
     {"accept": FIREFOX, "x-requested-with": "XMLHttpRequest"}),
    ("fetch() in cors mode with a browser Accept", "GET", {"accept": CHROME, "sec-fetch-mode": "cors"}),
    ("fetch() in same-origin mode", "GET", {"accept": CHROME, "sec-fetch-mode": "same-origin"}),
    ("no-cors subresource", "GET", {"accept": CHROME, "sec-fetch-mode": "no-cors"}),
    ("an image request", "GET",
     {"accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"}),
    ("a form POST from a browser", "POST", {"accept": CHROME, **NAVIGATE}),
    ("a PUT", "PUT", {"accept": FIREFOX}),
    ("html refused with q=0", "GET", {"accept": "text/html;q=0, */*"}),
    ("html refused with q=0.0 next to json", "GET", {"accept": "text/html;q=0.0, application/json"}),
    ("json listed first at the same quality", "GET", {"accept": "application/json, text/html"}),
    ("json preferred by q-value", "GET", {"accept": "text/html;q=0.5, application/json"}),
    ("only xhtml (no text/html)", "GET", {"accept": "application/xhtml+xml"}),
    ("a malformed q counts as 0", "GET", {"accept": "text/html;q=abc, application/json;q=0.1"}),
]


@pytest.mark.parametrize(("method", "headers"), [(m, h) for _, m, h in NAVIGATIONS],
                         ids=[name for name, _, _ in NAVIGATIONS])
def test_a_browser_navigation_is_recognised(method: str, headers: dict[str, str]) -> None:
    assert is_navigation(request(method, headers)) is True


@pytest.mark.parametrize(("method", "headers"), [(m, h) for _, m, h in NOT_NAVIGATIONS],
                         ids=[name for name, _, _ in NOT_NAVIGATIONS])
def test_scripts_and_non_get_requests_are_not_navigations(method: str, headers: dict[str, str]) -> None:
    assert is_navigation(request(method, headers)) is False


def test_an_upper_case_html_media_type_is_still_html() -> None:
    assert accept_quality(b"TEXT/HTML", b"text/html") == 1.0  # the parser itself folds case
    assert is_navigation(request("GET", {"accept": "TEXT/HTML,*/*;q=0.8"})) is True


@pytest.mark.parametrize(("accept", "media_type", "quality"), [
    (b"text/html", b"text/html", 1.0),
    (b"text/html;q=0.3", b"text/html", 0.3),
    (b"text/*;q=0.4, */*;q=0.1", b"text/html", 0.4),
    (b"*/*;q=0.2", b"application/json", 0.2),
    (b"text/html;q=0.7, text/*;q=0.9", b"text/html", 0.7),
    (b"text/html;level=1;q=0.6", b"text/html", 0.6),
    (b"image/png", b"text/html", 0.0),
    (b"text/html;q=x", b"text/html", 0.0),
    (b"text/html;q=0, text/html", b"text/html", 0.0),
], ids=["no q is 1", "an explicit q", "type/* when no exact entry", "*/* as the last resort",
        "the exact entry wins over a better type/*", "other parameters are ignored",
        "an unlisted type is 0", "an unparsable q is 0", "the first of a repeated type counts"])
def test_accept_quality(accept: bytes, media_type: bytes, quality: float) -> None:
    assert accept_quality(accept, media_type) == quality


# -- claims ------------------------------------------------------------------------------------

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


# -- login cookies -------------------------------------------------------------------------------

def login_cookies(secret: str = SECRET, *, secure: bool = True) -> LoginCookies:
    return LoginCookies(SessionCipher([secret], purpose="login"), session_cookie="_gatekeeper",
                        secure=secure, timeout_seconds=600)


def pending(**changes: Any) -> PendingLogin:
    login = PendingLogin.begin(provider="corp", return_to="/app?x=1", now=T0, timeout_seconds=600)
    return dataclasses.replace(login, **changes)


def presented(*cookies: tuple[str, str]) -> RequestView:
    return request("GET", cookies=["; ".join(f"{name}={value}" for name, value in cookies)])


def test_a_login_cookie_round_trips() -> None:
    jar = login_cookies()
    login = pending()
    cookie = jar.cookie(login)
    assert cookie.name == f"_gatekeeper_login_{login.state}"
    assert cookie.path == "/" and cookie.max_age == 600 and cookie.secure and cookie.http_only
    assert cookie.same_site == "Lax"
    assert jar.find(presented((cookie.name, cookie.value)), login.state, T0 + 10) == login


def started(jar: LoginCookies, count: int, first: float = T0, **changes: Any) -> list[tuple[str, str]]:
    """``count`` login cookies, started one second apart from ``first``."""
    out = []
    for i in range(count):
        login = PendingLogin.begin(provider="corp", return_to="/", now=first + i, timeout_seconds=600)
        cookie = jar.cookie(dataclasses.replace(login, **changes))
        out.append((cookie.name, cookie.value))
    return out


def begun(jar: LoginCookies, sent: list[tuple[str, str]], now: float) -> tuple[str, set[str]]:
    """A new login's cookie name, and the names its answer deletes."""
    login = PendingLogin.begin(provider="corp", return_to="/", now=now, timeout_seconds=600)
    cookies = jar.begin(presented(*sent) if sent else request("GET"), login, now)
    assert cookies[0].name.endswith(login.state) and cookies[0].max_age == 600
    deleted = {c.name for c in cookies[1:]}
    assert all(c.max_age == 0 and c.path == "/" for c in cookies[1:])
    return cookies[0].name, deleted


@pytest.mark.parametrize("count", [0, 1, MAX_PENDING_LOGINS, MAX_PENDING_LOGINS + 1, 130])
def test_a_new_login_keeps_the_newest_pending_logins_and_deletes_the_oldest(count: int) -> None:
    jar = login_cookies()
    sent = started(jar, count)
    _, deleted = begun(jar, sent, T0 + 200)
    newest = [name for name, _ in sent][-MAX_PENDING_LOGINS:] if count else []
    assert not deleted & set(newest)
    # All the others, up to 32 per answer (one forged request cannot ask for more).
    assert len(deleted) == min(max(count - MAX_PENDING_LOGINS, 0), 32)


def test_pending_logins_that_cannot_be_used_go_first() -> None:
    jar = login_cookies()
    valid = started(jar, 2, first=T0 + 100)
    expired = started(jar, 1, first=T0 - 700)
    foreign = started(login_cookies("another-secret-" + secrets.token_hex(16)), 1)
    tampered = [(valid[0][0].replace("_login_", "_login_x"), valid[0][1])]
    _, deleted = begun(jar, [*valid, *expired, *foreign, *tampered], T0 + 200)
    assert deleted == {name for name, _ in [*expired, *foreign, *tampered]}


def test_pending_logins_are_bounded_in_bytes_too() -> None:
    jar = login_cookies()
    long = started(jar, 3, return_to="/" + "x" * 1500)  # ~2.1 KB each once sealed
    _, deleted = begun(jar, long, T0 + 200)
    assert deleted == {long[0][0], long[1][0]}  # the newest alone fits beside the new one


def test_a_new_login_has_fresh_random_secrets() -> None:
    a, b = pending(), pending()
    assert len({a.state, a.nonce, b.state, b.nonce}) == 4
    assert 43 <= len(a.code_verifier) <= 128 and a.code_verifier != b.code_verifier
    assert a.expires_at == int(T0) + 600


def test_several_logins_in_flight_are_found_by_their_own_state() -> None:
    jar = login_cookies()
    first, second = pending(), pending(return_to="/second")
    cookies = [(c.name, c.value) for c in (jar.cookie(first), jar.cookie(second))]
    assert jar.find(presented(*cookies), second.state, T0) == second
    assert jar.find(presented(*cookies), first.state, T0) == first


@pytest.mark.parametrize(("state", "code"), [
    (None, "login_state_missing"),
    ("", "login_state_missing"),
    ("short", "login_state_missing"),
    ("a" * 65, "login_state_missing"),
    ("x" * 30 + ";y=z", "login_state_missing"),
    ("B" * 32, "login_state_unknown"),
], ids=["no state", "an empty state", "a state too short to be ours", "a state too long to be ours",
        "a state with cookie syntax", "a well-formed state with no cookie"])
def test_a_callback_state_without_its_cookie_is_refused(state: str | None, code: str) -> None:
    jar = login_cookies()
    login = pending()
    cookie = jar.cookie(login)
    with pytest.raises(LoginFailed) as caught:
        jar.find(presented((cookie.name, cookie.value)), state, T0)
    assert caught.value.code == code


def test_a_tampered_login_cookie_is_refused() -> None:
    jar = login_cookies()
    login = pending()
    cookie = jar.cookie(login)
    flipped = cookie.value[:-3] + ("A" if cookie.value[-3] != "A" else "B") + cookie.value[-2:]
    with pytest.raises(LoginFailed) as caught:
        jar.find(presented((cookie.name, flipped)), login.state, T0)
    assert caught.value.code == "login_state_invalid"


def test_a_login_cookie_sealed_with_another_secret_is_refused() -> None:
    login = pending()
    cookie = login_cookies("another-secret-" + secrets.token_hex(16)).cookie(login)
    with pytest.raises(LoginFailed) as caught:
        login_cookies().find(presented((cookie.name, cookie.value)), login.state, T0)
    assert caught.value.code == "login_state_invalid"


def test_a_cookie_sealed_for_one_state_does_not_open_under_another_states_name() -> None:
    jar = login_cookies()
    a, b = pending(), pending()
    sealed_for_a = jar.cookie(a).value
    with pytest.raises(LoginFailed) as caught:
        jar.find(presented((f"_gatekeeper_login_{b.state}", sealed_for_a)), b.state, T0)
    assert caught.value.code == "login_state_invalid"


def test_a_cookie_whose_content_names_another_state_is_refused() -> None:
    # Sealed under B's name (so it opens) but carrying A's state: only the state check stops it.
    a, b = pending(), pending()
    name = f"_gatekeeper_login_{b.state}"
    sealed = SessionCipher([SECRET], purpose="login").seal(json.dumps(asdict(a)).encode(), name=name)
    with pytest.raises(LoginFailed) as caught:
        login_cookies().find(presented((name, sealed)), b.state, T0)
    assert caught.value.code == "login_state_mismatch"


def test_a_session_cookie_value_is_not_a_login_cookie() -> None:
    # Same secret, other purpose: the keys differ, so a session never opens as a login.
    login = pending()
    name = f"_gatekeeper_login_{login.state}"
    sealed = SessionCipher([SECRET], purpose="session").seal(json.dumps(asdict(login)).encode(), name=name)
    with pytest.raises(LoginFailed) as caught:
        login_cookies().find(presented((name, sealed)), login.state, T0)
    assert caught.value.code == "login_state_invalid"


@pytest.mark.parametrize("delay", [600, 601, 100_000], ids=["at the deadline", "a second late", "a day late"])
def test_an_expired_login_is_refused(delay: int) -> None:
    jar = login_cookies()
    login = pending()
    cookie = jar.cookie(login)
    with pytest.raises(LoginFailed) as caught:
        jar.find(presented((cookie.name, cookie.value)), login.state, T0 + delay)
    assert caught.value.code == "login_expired"


def test_a_login_just_before_its_deadline_completes() -> None:
    jar = login_cookies()
    login = pending()
    cookie = jar.cookie(login)
    assert jar.find(presented((cookie.name, cookie.value)), login.state, T0 + 599) == login


def test_the_used_login_cookie_is_expired_on_its_path() -> None:
    state = secrets.token_urlsafe(24)
    cookie = login_cookies(secure=False).expired(state)
    assert cookie is not None
    assert cookie.name == f"_gatekeeper_login_{state}" and cookie.value == "" and cookie.max_age == 0
    assert cookie.path == "/" and not cookie.secure
    assert b"Max-Age=0" in cookie.header_value()


@pytest.mark.parametrize("state", [
    None, "", "x" * 21, "x" * 65,
    "x" * 30 + ";", "x" * 30 + "=", "x" * 30 + " ", "x" * 30 + "\r\nSet-Cookie: a=b",
    "x" * 30 + "\n", "x" * 30 + ",", "x" * 30 + "\t", "x" * 30 + "é", "x" * 30 + "/", "x" * 30 + ".",
    "x" * 15 + "; Domain=evil.example; " + "y" * 10,
], ids=["none", "empty", "too short", "too long", "semicolon", "equals sign", "space", "CRLF injection",
        "LF", "comma", "tab", "non-ASCII", "slash", "dot", "cookie attribute injection"])
def test_no_expiry_cookie_is_made_for_a_state_that_names_no_cookie(state: str | None) -> None:
    assert login_cookies().expired(state) is None


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


# -- refreshed ID token --------------------------------------------------------------------------

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


# --- discovery ----------------------------------------------------------------------------------

DISCOVERY = {"issuer": "https://op.example", "authorization_endpoint": "https://op.example/auth",
             "token_endpoint": "https://op.example/token"}


@pytest.mark.parametrize("field, value", [
    ("issuer", "https://op.example/"),                                  # not the exact issuer
    ("authorization_endpoint", "https://op.example/a\r\nSet-Cookie: x=1"),  # header injection
    ("authorization_endpoint", "https://op.example/ä"),                 # not ASCII: a Location
    ("authorization_endpoint", "javascript:alert(1)"),
    ("token_endpoint", None),
    ("userinfo_endpoint", "ftp://op.example/userinfo"),
])
def test_a_discovery_document_gatekeeper_cannot_use_safely_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        parse_discovery({**DISCOVERY, field: value}, "https://op.example")


def test_discovery_reads_the_optional_endpoints_and_the_rfc9207_flag() -> None:
    endpoints = parse_discovery({**DISCOVERY, "end_session_endpoint": "https://op.example/logout",
                                 "authorization_response_iss_parameter_supported": True},
                                "https://op.example")
    assert endpoints.end_session == "https://op.example/logout" and endpoints.userinfo is None
    assert endpoints.iss_parameter is True
