"""Sessions: one behavioural contract run against every SessionStore, then the cookie layout, the
cipher, the session model, cookie stripping and the session settings.

The contract drives a store the way the pipeline will: a fake browser keeps whatever Set-Cookie
the store asked for and sends it back; time comes from a fake clock. A new store joins the
contract as one more entry in ``STORES`` (a function from the pytest request to a factory).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
import secrets
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from gatekeeper.clients.redis import connect
from gatekeeper.errors import ConfigError, Unauthenticated
from gatekeeper.sessions import (
    CookieJar,
    CookieSessionStore,
    Session,
    SessionCipher,
    SessionInvalid,
    SessionStore,
    SessionTooLarge,
    SetCookie,
    strip_session_cookies,
)
from gatekeeper.sessions.cookie import CHUNK_BYTES, CLEAR_BOUND
from gatekeeper.sessions.crypto import NONCE_BYTES, VERSION
from gatekeeper.sessions.redis import RedisSessionStore
from gatekeeper.settings import RedisSettings, SessionSettings, Settings
from gatekeeper.settings.file import load_settings
from tests.support.fakes import FakeClock
from tests.support.redis import RedisServer, run_redis
from tests.support.sessions import Browser, login, view

SECRET_A = "a" * 16 + secrets.token_hex(16)
SECRET_B = "b" * 16 + secrets.token_hex(16)
T0 = 1_700_000_000.0
NAME = "_gatekeeper"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
T = TypeVar("T")


# Redis clients made during a scenario; closed inside its event loop when it ends.
_OPEN_CLIENTS: list[Any] = []


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def scenario() -> T:
        try:
            return await coro
        finally:
            while _OPEN_CLIENTS:
                await _OPEN_CLIENTS.pop().aclose()

    return asyncio.run(scenario())


def settings(**overrides: Any) -> SessionSettings:
    values: dict[str, Any] = {"secret": [SECRET_A], "cookie_domain": None}
    values.update(overrides)
    return SessionSettings.model_validate(values)


# ------------------------------------------------------------------ the stores under contract

StoreFactory = Callable[[SessionSettings, FakeClock], SessionStore]


def _cookie_store(request: pytest.FixtureRequest) -> StoreFactory:
    return lambda config, clock: CookieSessionStore(config, clock=clock)


def _redis_store(request: pytest.FixtureRequest) -> StoreFactory:
    server: RedisServer = request.getfixturevalue("redis_server")

    def make(config: SessionSettings, clock: FakeClock) -> SessionStore:
        redis_settings = RedisSettings(url=server.url)
        client = connect(Settings(session=config, redis=redis_settings).redis_connection())
        _OPEN_CLIENTS.append(client)
        return RedisSessionStore(client, config, redis_settings, clock=clock)

    return make


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


# Every store runs the same behavioural suite (a real redis-server for the Redis store).
STORES: dict[str, Callable[[pytest.FixtureRequest], StoreFactory]] = {
    "cookie store": _cookie_store,
    "redis store": _redis_store,
}


@pytest.fixture(params=list(STORES))
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    return STORES[request.param](request)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def saved(store: SessionStore, browser: Browser, session: Session) -> CookieJar:
    jar = CookieJar()
    await store.save(browser.request(), jar, session)
    browser.accept(jar)
    return jar


async def loaded(store: SessionStore, browser: Browser) -> tuple[Session | None, CookieJar]:
    jar = CookieJar()
    try:
        return await store.load(browser.request(), jar), jar
    finally:
        browser.accept(jar)  # cookies set before a SessionInvalid still reach the browser


# ------------------------------------------------------------------ contract: every store


def test_a_saved_session_loads_back_unchanged(make_store: StoreFactory, clock: FakeClock) -> None:
    async def scenario() -> None:
        store, browser, session = make_store(settings(), clock), Browser(theme="dark"), login()
        await saved(store, browser, session)
        back, jar = await loaded(store, browser)
        assert back == session
        assert len(jar) == 0, "a fresh session is not rewritten"
        assert browser.cookies["theme"] == "dark"

    run(scenario())


def test_a_request_without_a_session_loads_none_and_sets_nothing(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        store = make_store(settings(), clock)
        for browser in (Browser(), Browser(theme="dark", _gatekeeper_x="app", _gatekeeper_1="orphan")):
            back, jar = await loaded(store, browser)
            assert back is None and len(jar) == 0

    run(scenario())


def test_every_login_gets_a_new_random_session_id(make_store: StoreFactory, clock: FakeClock) -> None:
    ids = {login().id for _ in range(500)}
    assert len(ids) == 500
    assert all(len(base64.urlsafe_b64decode(i + "==")) * 8 >= 128 for i in ids)

    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser()
        first = login(subject="mallory")  # e.g. planted in the victim's browser before login
        await saved(store, browser, first)
        second = login(subject="alice")
        await saved(store, browser, second)
        back, _ = await loaded(store, browser)
        assert back is not None and back.id == second.id != first.id

    run(scenario())


def test_saving_over_a_session_leaves_only_the_new_cookies(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser(theme="dark")
        await saved(store, browser, login(padding=9000))
        jar = await saved(store, browser, login())
        assert set(browser.cookies) == {"theme"} | {c.name for c in jar if c.max_age}
        back, _ = await loaded(store, browser)
        assert back is not None

    run(scenario())


def test_tampering_with_any_character_of_any_cookie_is_refused(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser()
        await saved(store, browser, login(padding=3000))
        original = dict(browser.cookies)
        tried = 0
        for name, value in original.items():
            variants = [value[:i] + _other(value[i]) + value[i + 1 :] for i in range(len(value))]
            variants += [value[:cut] for cut in (0, 1, 2, len(value) // 2, len(value) - 1)]
            variants += [value + "A", value + "=", value[::-1]]
            for variant in variants:
                tampered = Browser(**{**original, name: variant})
                try:
                    back, _ = await loaded(store, tampered)
                except SessionInvalid:
                    continue
                assert back is None, f"{name}: a tampered cookie loaded"
            tried += len(variants)
        assert tried > sum(len(v) for v in original.values())  # every position of every cookie

    run(scenario())


def _other(char: str) -> str:
    return B64[(B64.index(char) + 1) % 64] if char in B64 else "A"


def test_a_session_sealed_with_another_secret_is_refused_and_cleared(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        browser = Browser(theme="dark")
        await saved(make_store(settings(secret=[SECRET_A]), clock), browser, login())
        other = make_store(settings(secret=[SECRET_B]), clock)
        with pytest.raises(SessionInvalid) as caught:
            await loaded(other, browser)
        assert caught.value.status == 401 and isinstance(caught.value, Unauthenticated)
        assert set(browser.cookies) == {"theme"}, "the dead cookies were expired"

    run(scenario())


def test_rotation_the_first_secret_seals_and_every_secret_opens(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        old_only = make_store(settings(secret=[SECRET_A]), clock)
        rotated = make_store(settings(secret=[SECRET_B, SECRET_A]), clock)
        new_only = make_store(settings(secret=[SECRET_B]), clock)
        before, after = Browser(), Browser()
        session = login()
        await saved(old_only, before, session)
        assert (await loaded(rotated, before))[0] == session  # old sessions survive the rotation
        await saved(rotated, after, session)
        assert (await loaded(new_only, after))[0] == session  # new ones use the new secret
        with pytest.raises(SessionInvalid):
            await loaded(old_only, after)

    run(scenario())


def test_a_large_session_is_stored_and_reassembled(make_store: StoreFactory, clock: FakeClock) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser(theme="dark")
        session = login(padding=12000)
        jar = await saved(store, browser, session)
        assert all(len(c.header_value()) <= 4096 for c in jar)
        assert (await loaded(store, browser))[0] == session

    run(scenario())


def test_the_absolute_lifetime_ends_a_session_however_active(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        config = settings(lifetime_seconds=3600, idle_seconds=900)
        store, browser = make_store(config, clock), Browser()
        await saved(store, browser, login(clock.now))
        while clock.now + 600 < T0 + 3600:
            clock.now += 600
            assert (await loaded(store, browser))[0] is not None
        clock.now = T0 + 3599
        assert (await loaded(store, browser))[0] is not None
        clock.now = T0 + 3600
        with pytest.raises(SessionInvalid) as caught:
            await loaded(store, browser)
        assert caught.value.code == "session_expired"
        assert (await loaded(store, browser))[0] is None, "the browser dropped it"

    run(scenario())


def test_the_idle_lifetime_ends_an_unused_session(make_store: StoreFactory, clock: FakeClock) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(idle_seconds=900), clock), Browser()
        await saved(store, browser, login(clock.now))
        clock.now += 899
        assert (await loaded(store, browser))[0] is not None  # used: last seen moves to now
        clock.now += 899
        assert (await loaded(store, browser))[0] is not None
        clock.now += 900
        with pytest.raises(SessionInvalid) as caught:
            await loaded(store, browser)
        assert caught.value.code == "session_idle"

    run(scenario())


def test_last_seen_is_rewritten_at_most_once_a_minute(make_store: StoreFactory, clock: FakeClock) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser()
        session = login(clock.now)
        await saved(store, browser, session)
        clock.now += 59
        back, jar = await loaded(store, browser)
        assert back == session and len(jar) == 0
        clock.now += 1
        back, jar = await loaded(store, browser)
        assert back == dataclasses.replace(session, last_seen_at=int(T0) + 60)
        assert (await loaded(store, browser))[0] == back  # stored: a cookie here, Redis elsewhere

    run(scenario())


def test_clear_expires_every_cookie_of_the_session(make_store: StoreFactory, clock: FakeClock) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser(theme="dark", _gatekeeper_x="app")
        await saved(store, browser, login(padding=9000))
        ours = set(browser.cookies) - {"theme", "_gatekeeper_x"}
        jar = CookieJar()
        await store.clear(browser.request(), jar)
        assert ours <= {c.name for c in jar if c.max_age == 0}
        assert all(c.max_age == 0 for c in jar)
        browser.accept(jar)
        assert browser.cookies == {"theme": "dark", "_gatekeeper_x": "app"}
        assert (await loaded(store, browser))[0] is None

    run(scenario())


@pytest.mark.parametrize(("overrides", "attributes"), [
    ({}, "Path=/; Max-Age=28800; Secure; HttpOnly; SameSite=Lax"),
    ({"cookie_secure": False, "cookie_domain": "example.com"},
     "Path=/; Domain=example.com; Max-Age=28800; HttpOnly; SameSite=Lax"),
], ids=["secure host-only by default", "insecure with a domain when configured"])
def test_cookie_attributes_are_exact(
    make_store: StoreFactory, clock: FakeClock, overrides: dict[str, Any], attributes: str
) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(**overrides), clock), Browser()
        jar = await saved(store, browser, login(clock.now, padding=9000))
        assert len(jar) >= 1
        for cookie in jar:
            name, _, rest = cookie.header_value().decode().partition("=")
            assert name == NAME or re.fullmatch(rf"{NAME}_\d+", name)
            assert re.fullmatch(rf"[^;\s]+; {re.escape(attributes)}", rest), rest
        clear = CookieJar()
        await store.clear(browser.request(), clear)
        expired = attributes.replace("Max-Age=28800", "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        for cookie in clear:
            assert cookie.header_value().decode() == f"{cookie.name}=; {expired}"

    run(scenario())


def test_the_apps_request_keeps_its_cookies_and_loses_ours(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    async def scenario() -> None:
        store, browser = make_store(settings(), clock), Browser(theme="dark", _gatekeeper_x="app")
        await saved(store, browser, login(padding=9000))
        headers = [(b"host", b"app"), *browser.request().headers, (b"accept", b"*/*")]
        assert strip_session_cookies(headers, NAME) == [
            (b"host", b"app"), (b"cookie", b"theme=dark; _gatekeeper_x=app"), (b"accept", b"*/*")]

    run(scenario())


def test_verify_connection_succeeds(make_store: StoreFactory, clock: FakeClock) -> None:
    run(make_store(settings(), clock).verify_connection())


# ------------------------------------------------------------------ the cookie store's layout


def cookie_store(clock: FakeClock | None = None, **overrides: Any) -> CookieSessionStore:
    return CookieSessionStore(settings(**overrides), clock=clock or FakeClock())


def test_requests_still_carrying_the_old_cookie_get_the_same_new_cookie() -> None:
    """A browser's parallel requests sent before it saw the touched cookie: sealed once."""
    async def scenario() -> None:
        clock = FakeClock()
        store, browser = cookie_store(clock), Browser()
        await saved(store, browser, login(clock.now))
        clock.now += 61
        old = dict(browser.cookies)
        answers = [await loaded(store, Browser(**old)) for _ in range(2)]
        sessions = [session for session, _ in answers]
        cookies = [[(c.name, c.value) for c in jar] for _, jar in answers]
        assert sessions[0] == sessions[1] and sessions[0] is not None
        assert sessions[0].last_seen_at == int(T0) + 61
        assert cookies[0] == cookies[1] and cookies[0]
        # The touch window after that: a later request with the old cookie is touched anew.
        clock.now += 61
        later, _ = await loaded(store, Browser(**old))
        assert later is not None and later.last_seen_at == int(T0) + 122

    run(scenario())


def test_large_sessions_are_split_into_numbered_chunks_under_the_size_limit() -> None:
    browser = Browser()
    jar = run(saved(cookie_store(), browser, login(padding=9000)))
    names = [c.name for c in jar]
    assert names == [NAME, *(f"{NAME}_{i}" for i in range(1, len(names)))] and len(names) >= 3
    assert browser.cookies[NAME].startswith(f"{len(names)}.")
    assert all(len(f"{c.name}={c.value}") <= CHUNK_BYTES for c in jar)


def three_chunks() -> Browser:
    browser = Browser()
    run(saved(cookie_store(), browser, login(padding=6000)))
    assert sorted(browser.cookies) == [NAME, f"{NAME}_1", f"{NAME}_2"]
    return browser


@pytest.mark.parametrize("count", ["9", "999", "99999999"])
def test_a_chunk_count_over_the_bound_is_refused_before_any_chunk_is_read(count: str) -> None:
    browser = Browser(**{NAME: f"{count}.AAAA"})  # no chunk cookies at all: a read would say "missing"
    with pytest.raises(SessionInvalid) as caught:
        run(loaded(cookie_store(), browser))
    assert "missing" not in caught.value.description


def test_a_real_session_with_more_chunks_than_allowed_is_refused() -> None:
    browser = three_chunks()
    with pytest.raises(SessionInvalid, match="at most 2"):
        run(loaded(cookie_store(max_chunks=2), browser))


@pytest.mark.parametrize("missing", [f"{NAME}_1", f"{NAME}_2"], ids=["middle chunk", "last chunk"])
def test_a_missing_chunk_is_refused(missing: str) -> None:
    browser = three_chunks()
    del browser.cookies[missing]
    with pytest.raises(SessionInvalid, match="missing"):
        run(loaded(cookie_store(), browser))


def test_reordered_or_mixed_chunks_are_refused() -> None:
    first, second = three_chunks(), three_chunks()
    swapped = dict(first.cookies)
    swapped[f"{NAME}_1"], swapped[f"{NAME}_2"] = swapped[f"{NAME}_2"], swapped[f"{NAME}_1"]
    mixed = {**first.cookies, f"{NAME}_1": second.cookies[f"{NAME}_1"]}
    noncanonical = {**first.cookies, NAME: "0" + first.cookies[NAME]}
    for cookies in (swapped, mixed, noncanonical):
        with pytest.raises(SessionInvalid):
            run(loaded(cookie_store(), Browser(**cookies)))


def test_a_session_too_large_for_max_chunks_is_refused_at_save() -> None:
    with pytest.raises(SessionTooLarge) as caught:
        run(saved(cookie_store(max_chunks=2), Browser(), login(padding=9000)))
    assert caught.value.status == 500 and "max_chunks" in caught.value.description


def test_the_first_of_two_session_cookies_with_one_name_is_used() -> None:
    browser = three_chunks()
    header = browser.request().headers[0][1] + b"; _gatekeeper=1.planted"
    assert run(cookie_store().load(view([(b"cookie", header)]), CookieJar())) is not None


def test_clearing_is_bounded_whatever_the_browser_sent() -> None:
    header = "; ".join(f"{NAME}_{i}=x" for i in range(1, 500)).encode()
    jar = CookieJar()
    run(cookie_store().clear(view([(b"cookie", header)]), jar))
    assert len(jar) == CLEAR_BOUND


# ------------------------------------------------------------------ strip_session_cookies

STRIP = [
    ([b"a=1; _gatekeeper=2.x; b=2", b"_gatekeeper_1=y"], [b"a=1; b=2"]),
    ([b"_gatekeeper=1.x"], []),
    ([b"_gatekeeper=1.x; a=1"], [b"a=1"]),
    ([b"a=1;_gatekeeper=1.x;b=2"], [b"a=1;b=2"]),
    ([b"a=1 ;  _gatekeeper =1.x ;\tb = 2"], [b"a=1 ;\tb = 2"]),
    ([b"\t_gatekeeper_7\t=y;c=\"q\""], [b"c=\"q\""]),
    ([b"_gatekeeper_x=1; _gatekeeperx=2; _Gatekeeper=3; x_gatekeeper=4; _gatekeeper_=5"],
     [b"_gatekeeper_x=1; _gatekeeperx=2; _Gatekeeper=3; x_gatekeeper=4; _gatekeeper_=5"]),
    ([b"_gatekeeper_\xb2=1; _gatekeeper_12=2; _gatekeeper_01=3"], [b"_gatekeeper_\xb2=1"]),
    ([b"a=1;", b"b=2"], [b"a=1;", b"b=2"]),
    ([b"a=1; _gatekeeper=1.x;"], [b"a=1;"]),
]


@pytest.mark.parametrize(("cookies", "expected"), STRIP, ids=[
    "several Cookie headers", "a header with only ours is dropped", "ours first",
    "no spaces", "odd spacing and tabs", "a chunk with tabs", "look-alike names are the app's",
    "only ASCII digits make a chunk", "nothing of ours: unchanged", "a trailing semicolon stays",
])
def test_strip_session_cookies(cookies: list[bytes], expected: list[bytes]) -> None:
    headers = [(b"host", b"h"), *((b"cookie", c) for c in cookies), (b"x-other", b"_gatekeeper=1")]
    assert strip_session_cookies(headers, NAME) == [
        (b"host", b"h"), *((b"cookie", c) for c in expected), (b"x-other", b"_gatekeeper=1")]


_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~",
                 min_size=1, max_size=12)
_OCTETS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                         exclude_characters=';,"\\'), max_size=20)


@given(app=st.lists(st.tuples(_TOKEN, _OCTETS), max_size=8),
       ours=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 9), _OCTETS), max_size=4),
       sep=st.sampled_from(["; ", ";", " ; ", ";\t"]))
def test_stripping_keeps_every_app_cookie_byte_for_byte(
    app: list[tuple[str, str]], ours: list[tuple[int, int, str]], sep: str
) -> None:
    app = [(n, v) for n, v in app if n != NAME and not re.fullmatch(rf"{NAME}_[0-9]+", n)]
    pairs = [f"{n}={v}" for n, v in app]
    mixed = list(pairs)
    for position, chunk, value in ours:
        name = NAME if chunk == 0 else f"{NAME}_{chunk}"
        mixed.insert(min(position, len(mixed)), f"{name}={value}")
    header = sep.join(mixed).encode()
    out = strip_session_cookies([(b"cookie", header)], NAME)
    if not ours:
        assert out == [(b"cookie", header)]
    else:
        assert out == ([(b"cookie", sep.join(pairs).encode())] if pairs else [])


# ------------------------------------------------------------------ the cipher


def test_every_seal_uses_a_new_nonce() -> None:
    cipher = SessionCipher([SECRET_A])
    tokens = [cipher.seal(b"same plaintext", name=NAME) for _ in range(5000)]
    nonces = {_raw(t)[1 : 1 + NONCE_BYTES] for t in tokens}
    assert len(set(tokens)) == len(nonces) == 5000
    assert all(cipher.open(t, name=NAME) == b"same plaintext" for t in tokens[:50])


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_associated_data_binds_the_cookie_name_and_the_purpose() -> None:
    cipher = SessionCipher([SECRET_A])
    token = cipher.seal(b"x", name=NAME)
    assert cipher.open(token, name=NAME) == b"x"
    with pytest.raises(SessionInvalid, match="failed authentication"):
        cipher.open(token, name=NAME + "_csrf")
    with pytest.raises(SessionInvalid, match="failed authentication"):
        SessionCipher([SECRET_A], purpose="login-state").open(token, name=NAME)


def test_the_version_byte_is_checked() -> None:
    cipher = SessionCipher([SECRET_A])
    raw = _raw(cipher.seal(b"x", name=NAME))
    assert raw[0] == VERSION
    with pytest.raises(SessionInvalid, match="version"):
        cipher.open(_encode(bytes([VERSION + 1]) + raw[1:]), name=NAME)


@pytest.mark.parametrize("token", [
    "", "A", "AAAA", "!!!!", "AAAA=", "AA AA", "AA\nAA", "A" * 38, "+/+/" * 20, "Ω" * 40,
], ids=["empty", "one char", "too short", "not base64", "padding", "space", "newline",
        "one byte short of a tag", "standard alphabet", "non-ASCII"])
def test_malformed_sealed_values_are_refused(token: str) -> None:
    with pytest.raises(SessionInvalid):
        SessionCipher([SECRET_A]).open(token, name=NAME)


def test_a_non_canonical_last_character_is_refused() -> None:
    cipher = SessionCipher([SECRET_A])
    token = next(t for t in (cipher.seal(b"xy", name=NAME) for _ in range(100)) if len(t) % 4 != 0)
    twin = token[:-1] + B64[B64.index(token[-1]) ^ 1]  # same bytes for a lenient decoder
    assert _raw(twin) == _raw(token)
    with pytest.raises(SessionInvalid, match="canonical"):
        cipher.open(twin, name=NAME)


@given(st.text(max_size=200))
def test_arbitrary_input_only_ever_raises_session_invalid(token: str) -> None:
    with pytest.raises(SessionInvalid):
        SessionCipher([SECRET_A]).open(token, name=NAME)


def test_the_cipher_refuses_short_secrets_and_a_missing_secret() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionCipher(["short"])
    with pytest.raises(ValueError):
        SessionCipher([])
    with pytest.raises(ConfigError, match=r"session\.secret"):
        CookieSessionStore(SessionSettings(), clock=FakeClock())


def test_sealed_bytes_reveal_nothing_of_the_session() -> None:
    session = login()
    token = SessionCipher([SECRET_A]).seal(session.to_json(), name=NAME)
    raw = _raw(token)
    for secret in (session.access_token, session.subject, "admin"):
        assert secret.encode() not in raw and secret not in token


# ------------------------------------------------------------------ the session model


def test_sessions_round_trip_through_compact_json() -> None:
    session = login()
    data = session.to_json()
    assert b": " not in data and b", " not in data
    assert Session.from_json(data) == session
    bare = dataclasses.replace(session, refresh_token=None, access_expires_at=None, id_token=None)
    assert Session.from_json(bare.to_json()) == bare and b'"rt"' not in bare.to_json()


def test_repr_never_shows_tokens_claims_or_the_id() -> None:
    session = login()
    text = repr(session) + repr(SetCookie(NAME, "sealed-value", 10, True)) + repr(SessionSettings(
        secret=[SecretStr(SECRET_A)]))
    for hidden in (session.access_token, session.refresh_token, session.id_token, session.id,
                   "alice@example.com", "sealed-value", SECRET_A):
        assert hidden is not None and hidden not in text
    assert "alice" in text and "keycloak" in text


@pytest.mark.parametrize("data", [
    b"not json", b"[]", b'{"v":2}', b"\xff",
    b'{"v":1,"id":"short","sub":"a","p":"p","c":{},"at":"t","ct":1,"ls":1}',
    b'{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","sub":"a","p":"p","c":[],"at":"t","ct":1,"ls":1}',
    b'{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","sub":"a","p":"p","c":{},"at":"t","ct":true,"ls":1}',
    b'{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","sub":1,"p":"p","c":{},"at":"t","ct":1,"ls":1}',
    b'{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","sub":"a","p":"p","c":{},"at":"t","ct":1}',
    b'{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","sub":"a","p":"p","c":{},"at":"t","ct":1,"ls":1,"rt":5}',
], ids=["not JSON", "not an object", "unknown format", "not UTF-8", "short id", "claims not an object",
        "boolean time", "numeric subject", "missing last seen", "numeric refresh token"])
def test_unexpected_session_data_is_session_invalid(data: bytes) -> None:
    with pytest.raises(SessionInvalid):
        Session.from_json(data)


# ------------------------------------------------------------------ settings


def test_one_secret_string_becomes_a_one_item_list() -> None:
    config = SessionSettings.model_validate({"secret": SECRET_A})
    assert [s.get_secret_value() for s in config.secret] == [SECRET_A]
    assert SessionSettings().secret == [] and SessionSettings(secret=None).secret == []


def test_secrets_load_from_yaml_and_env(tmp_path: Path) -> None:
    path = tmp_path / "gk.yaml"
    path.write_text("session:\n  secret:\n    - ${NEW}\n    - ${OLD}\n  cookie_domain: example.com\n")
    config = load_settings(path, environ={"NEW": SECRET_B, "OLD": SECRET_A}).session
    assert [s.get_secret_value() for s in config.secret] == [SECRET_B, SECRET_A]
    env = {"GATEKEEPER_SESSION__SECRET": f'["{SECRET_A}"]', "GATEKEEPER_SESSION__MAX_CHUNKS": "4"}
    config = load_settings(None, environ=env).session
    assert config.secret[0].get_secret_value() == SECRET_A and config.max_chunks == 4


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("secret: too-short-secret", "session.secret: item 0 is shorter than 32 bytes"),
    (f"secret: [{SECRET_A}, short]", "session.secret: item 1 is shorter than 32 bytes"),
    (f"secret: [{SECRET_A}, {SECRET_A}, {SECRET_A}, {SECRET_A}, {SECRET_A}]", "session.secret:"),
    ("idle_seconds: 7200\n  lifetime_seconds: 3600", "session: idle_seconds must not exceed"),
    ("max_chunks: 0", "session.max_chunks:"),
    ("max_chunks: 17", "session.max_chunks:"),
    ("cookie_name: 'bad name;'", "session.cookie_name:"),
    ("cookie_domain: https://example.com", "session.cookie_domain:"),
    ("cookie_domain: example.com:443", "session.cookie_domain:"),
    ("cookie_name: __Host-gk\n  cookie_secure: false", "session: a __Host- or __Secure-"),
    ("cookie_name: __Host-gk\n  cookie_domain: example.com", "session: a __Host- cookie_name"),
], ids=["a short secret", "a short second secret", "more than four secrets",
        "idle longer than the lifetime", "no chunks", "too many chunks", "a bad cookie name",
        "a URL as the domain", "a port in the domain", "__Host- without Secure",
        "__Host- with a domain"])
def test_bad_session_settings_name_their_key(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "gk.yaml"
    path.write_text(f"session:\n  {yaml_text}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
    assert all("too-short-secret" not in p and SECRET_A not in p for p in caught.value.problems)


def test_good_cookie_settings_are_accepted() -> None:
    config = settings(cookie_name="__Host-gk", cookie_domain=None)
    assert config.cookie_name == "__Host-gk"
    assert settings(cookie_domain=".example.com").cookie_domain == ".example.com"
