"""The login-state cookie: state, nonce and PKCE sealed per login, bounded, used once.
gatekeeper/login/state.py."""

from __future__ import annotations

import dataclasses
import json
import secrets
from dataclasses import asdict
from typing import Any

import pytest

from gatekeeper.errors import LoginFailed
from gatekeeper.exchange import Exchange
from gatekeeper.login.state import MAX_PENDING_LOGINS, LoginCookies, PendingLogin
from gatekeeper.sessions.crypto import SessionCipher

T0 = 1_700_000_000.0
SECRET = "unit-session-secret-" + secrets.token_hex(16)


def request(method: str = "GET", headers: dict[str, str] | None = None,
            cookies: list[str] | None = None) -> Exchange:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    raw += [(b"cookie", value.encode("latin-1")) for value in cookies or []]
    return Exchange({"type": "http", "method": method, "path": "/", "headers": raw}, "/", "test-req", 0.0)


def login_cookies(secret: str = SECRET, *, secure: bool = True) -> LoginCookies:
    return LoginCookies(SessionCipher([secret], purpose="login"), session_cookie="_gatekeeper",
                        secure=secure, timeout_seconds=600)


def pending(**changes: Any) -> PendingLogin:
    login = PendingLogin.begin(provider="corp", return_to="/app?x=1", now=T0, timeout_seconds=600)
    return dataclasses.replace(login, **changes)


def presented(*cookies: tuple[str, str]) -> Exchange:
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


@pytest.mark.parametrize("count", [MAX_PENDING_LOGINS + 1, 40])
def test_logins_begun_within_one_second_keep_the_newest_too(count: int) -> None:
    """expires_at is whole seconds: within one second the order is the start time, never the
    random state (a fast browser's abandoned logins all began in the same second)."""
    jar = login_cookies()
    sent = []
    for i in range(count):
        login = PendingLogin.begin(provider="corp", return_to="/", now=T0 + i / 1000,
                                   timeout_seconds=600)
        cookie = jar.cookie(login)
        sent.append((cookie.name, cookie.value))
    _, deleted = begun(jar, sent, T0 + 0.5)
    names = [name for name, _ in sent]
    assert not deleted & set(names[-MAX_PENDING_LOGINS:])
    assert deleted <= set(names[:-MAX_PENDING_LOGINS])
    assert len(deleted) == min(count - MAX_PENDING_LOGINS, 32)  # 32 per answer at most


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
