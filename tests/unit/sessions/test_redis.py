"""The Redis session store against a real redis-server: what the shared contract in
test_sessions.py cannot show with one store — two replicas refreshing one session, back-channel
logout by sub and sid, replay protection, a frozen Redis, and what Redis alone can read.

Each replica is a ``RedisSessionStore`` with a client of its own; each test has a key prefix of
its own, so tests share one server without seeing each other's keys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gatekeeper.clients.redis import RedisClient, connect
from gatekeeper.cookies import CookieJar
from gatekeeper.errors import SessionInvalid, SessionStoreUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.request import RequestView
from gatekeeper.sessions import redis as redis_store
from gatekeeper.sessions.crypto import SessionCipher
from gatekeeper.sessions.model import Session
from gatekeeper.sessions.redis import RedisSessionStore
from gatekeeper.settings import RedisSettings, SessionSettings, Settings
from tests.support.fakes import run
from tests.support.redis import RedisServer, run_redis

SECRET = "redis-store-secret-" + secrets.token_hex(16)
OTHER_SECRET = "another-store-secret-" + secrets.token_hex(16)
NAME = "_gatekeeper"
T = TypeVar("T")
_PREFIXES = itertools.count()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with run_redis() as running:
        yield running


@pytest.fixture
def prefix() -> str:
    return f"t{next(_PREFIXES)}-{secrets.token_hex(3)}:"


class Replicas:
    """Stores made during one scenario; their clients are closed inside its event loop."""

    def __init__(self, server: RedisServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self.clients: list[RedisClient] = []
        self.stores: list[RedisSessionStore] = []

    def store(self, *, secret: str = SECRET, timeout: float = 0.5, cache_seconds: float = 1.0,
              monotonic: Callable[[], float] = time.monotonic, username: str | None = None,
              password: str | None = None, metrics: Metrics | None = None) -> RedisSessionStore:
        """A replica's store; not subscribed to session changes (read-through) until ``live``."""
        sessions = SessionSettings.model_validate({"secret": [secret], "cookie_domain": None,
                                                   "redis_cache_seconds": cache_seconds})
        config = RedisSettings.model_validate({
            "url": self.server.url, "key_prefix": self.prefix, "timeout_seconds": timeout,
            "username": username, "password": password})
        client = connect(Settings(session=sessions, redis=config).redis_connection())
        self.clients.append(client)
        store = RedisSessionStore(client, sessions, config, monotonic=monotonic, metrics=metrics)
        self.stores.append(store)
        return store

    async def live(self, *stores: RedisSessionStore) -> None:
        """Start each store's subscription; return once every one keeps copies."""
        for store in stores:
            store.start()
        deadline = time.monotonic() + 10
        while not all(store.caching for store in stores):
            assert time.monotonic() < deadline, "the stores never subscribed"
            await asyncio.sleep(0.01)

    def run(self, scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
        async def closing() -> T:
            try:
                return await scenario()
            finally:
                while self.stores:
                    await self.stores.pop().aclose()
                while self.clients:
                    await self.clients.pop().aclose()

        return run(closing())


@pytest.fixture
def replicas(server: RedisServer, prefix: str) -> Replicas:
    return Replicas(server, prefix)


def view(cookie: str | None) -> RequestView:
    headers = [] if cookie is None else [(b"cookie", f"{NAME}={cookie}".encode())]
    return RequestView({"type": "http", "method": "GET", "path": "/", "headers": headers}, "/")


def login(*, subject: str = "alice", provider: str = "keycloak", sid: str | None = None) -> Session:
    claims: dict[str, Any] = {"sub": subject, "email": f"{subject}@example.com", "roles": ["dev"]}
    if sid is not None:
        claims["sid"] = sid
    return Session.new(subject=subject, provider=provider, claims=claims,
                       access_token="at-" + secrets.token_urlsafe(40),
                       refresh_token="rt-" + secrets.token_urlsafe(40),
                       access_expires_at=int(time.time()) + 300, now=time.time(),
                       id_token="it-" + secrets.token_urlsafe(40))


async def save(store: RedisSessionStore, session: Session) -> str:
    """Save a new session as a login does; return the browser's cookie value (the ticket)."""
    jar = CookieJar()
    await store.save(view(None), jar, session)
    cookie = jar.get(NAME)
    assert cookie is not None and cookie.max_age
    return cookie.value


async def load(store: RedisSessionStore, cookie: str, jar: CookieJar | None = None) -> Session | None:
    """Load as a request with ``cookie`` would; ``jar`` gets what the store queued for the browser."""
    return await store.load(view(cookie), CookieJar() if jar is None else jar)


def deletes_cookie(jar: CookieJar) -> bool:
    cookie = jar.get(NAME)
    return cookie is not None and cookie.max_age == 0


def refreshed(session: Session) -> Session:
    return dataclasses.replace(session, access_token="at-new-" + secrets.token_urlsafe(40),
                               refresh_token="rt-new-" + secrets.token_urlsafe(40),
                               access_expires_at=int(time.time()) + 300)


class CountingRefresh:
    """The provider's side of a refresh: counts calls, takes ``seconds`` (or until ``gate`` is
    set), may fail."""

    def __init__(self, seconds: float = 0.2, fail: bool = False,
                 gate: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail = fail
        self.gate = gate

    async def __call__(self, session: Session) -> Session:
        self.calls += 1
        await (self.gate.wait() if self.gate is not None else asyncio.sleep(self.seconds))
        if self.fail:
            raise RuntimeError("the provider refused the refresh token")
        return refreshed(session)


# ------------------------------------------------------------------ refresh across replicas


def test_twenty_callers_on_two_replicas_refresh_once_and_all_get_the_result(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        session = login()
        cookie = await save(a, session)
        refresh = CountingRefresh(seconds=0.3)
        callers: list[Awaitable[Session]] = [
            store.refresh_exclusively(view(cookie), session, refresh) for _ in range(10) for store in (a, b)]
        results = await asyncio.gather(*callers)
        assert refresh.calls == 1
        assert results[0].access_token != session.access_token
        assert all(result == results[0] for result in results)
        # Both replicas now load the refreshed session for the cookie the browser already has.
        for store in (a, b):
            assert await load(store, cookie) == results[0]
        # A request that still carries the old session, after the refresh finished: the stored one.
        late = await b.refresh_exclusively(view(cookie), session, refresh)
        assert late == results[0] and refresh.calls == 1

    replicas.run(scenario)


def test_a_failed_refresh_releases_the_lock_and_no_caller_hangs(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Losers wait up to 5 s, well under the lock's own 15 s lapse: a lock left behind by the
    # failed refresh would make them give up (SessionStoreUnavailable) instead of taking it.
    monkeypatch.setattr(redis_store, "WAIT_SECONDS", 5.0)
    assert redis_store.LOCK_MILLISECONDS / 1000 > 2 * redis_store.WAIT_SECONDS

    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        session = login()
        cookie = await save(a, session)
        failing = CountingRefresh(seconds=0.05, fail=True)
        callers = [store.refresh_exclusively(view(cookie), session, failing)
                   for _ in range(5) for store in (a, b)]
        results = await asyncio.gather(*callers, return_exceptions=True)
        # Each failure released the lock at once: every caller took it in turn, tried the
        # refresh itself and got the provider's error; none was left waiting.
        assert all(isinstance(r, RuntimeError) for r in results), results
        assert failing.calls == len(callers)
        assert replicas.server.client().exists(f"{replicas.prefix}lock:{session.id}") == 0
        # The session is untouched and the next attempt refreshes (the lock was released).
        assert await load(b, cookie) == session
        working = CountingRefresh(seconds=0.0)
        fresh = await b.refresh_exclusively(view(cookie), session, working)
        assert working.calls == 1 and fresh.access_token != session.access_token

    replicas.run(scenario)


def test_a_slow_winner_makes_the_losers_give_up_at_the_bound(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_store, "WAIT_SECONDS", 0.3)

    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        session = login()
        cookie = await save(a, session)
        finish = asyncio.Event()
        slow = CountingRefresh(gate=finish)  # the provider answers only once the loser gave up
        winner = asyncio.create_task(a.refresh_exclusively(view(cookie), session, slow))
        lock = f"{replicas.prefix}lock:{session.id}"
        while not slow.calls:  # the winner holds the lock and is refreshing
            await asyncio.sleep(0.01)
        # (The bound, 30 x WAIT_SECONDS, only turns a loser that waits for the winner into a
        # failure: the winner finishes only after the loser has given up.)
        with pytest.raises(SessionStoreUnavailable):
            await asyncio.wait_for(b.refresh_exclusively(view(cookie), session, slow), timeout=10)
        assert not winner.done() and replicas.server.client().exists(lock) == 1
        finish.set()
        assert (await winner).access_token != session.access_token and slow.calls == 1
        assert replicas.server.client().exists(lock) == 0

    replicas.run(scenario)


def test_a_lock_left_by_a_dead_replica_expires_and_the_refresh_goes_ahead(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store()
        session = login()
        cookie = await save(store, session)
        # A replica took the lock and died: the lock lapses on its own (here after 0.3 s).
        replicas.server.client().set(f"{replicas.prefix}lock:{session.id}", b"dead", px=300)
        refresh = CountingRefresh(seconds=0.0)
        fresh = await store.refresh_exclusively(view(cookie), session, refresh)
        assert refresh.calls == 1 and fresh.access_token != session.access_token

    replicas.run(scenario)


def test_a_session_ended_before_its_refresh_is_not_refreshed_back_to_life(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        session = login(sid="op-sid")
        cookie = await save(a, session)  # a request on A loaded this session; its token is due
        assert await b.end_sessions("keycloak", sid="op-sid") == 1  # the provider's logout, via B
        refresh = CountingRefresh(seconds=0.0)
        try:
            await a.refresh_exclusively(view(cookie), session, refresh)
        except SessionInvalid as exc:
            assert exc.code == "session_ended"
        assert refresh.calls == 0, "a refresh token of an ended session was used"
        with pytest.raises(SessionInvalid):
            await load(b, cookie)

    replicas.run(scenario)


def test_a_logout_while_the_refresh_is_at_the_provider_stays_a_logout(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        session = login(sid="op-sid")
        cookie = await save(a, session)

        async def refresh_meanwhile_logged_out(current: Session) -> Session:
            assert await b.end_sessions("keycloak", sid="op-sid") == 1
            return refreshed(current)

        with contextlib.suppress(SessionInvalid):
            await a.refresh_exclusively(view(cookie), session, refresh_meanwhile_logged_out)
        with pytest.raises(SessionInvalid):
            await load(b, cookie)

    replicas.run(scenario)


# ------------------------------------------------------------------ back-channel logout


def test_end_sessions_by_sid_and_by_sub_end_only_the_matching_sessions(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        sessions = {
            "alice s1": login(subject="alice", sid="s1"),
            "alice s2": login(subject="alice", sid="s2"),
            "alice no sid": login(subject="alice"),
            "bob s3": login(subject="bob", sid="s3"),
            "alice s1 elsewhere": login(subject="alice", provider="okta", sid="s1"),
        }
        cookies = {name: await save(a, session) for name, session in sessions.items()}

        async def alive() -> set[str]:
            names = set()
            for name, cookie in cookies.items():
                jar = CookieJar()
                try:
                    if await load(b, cookie, jar) is not None:
                        names.add(name)
                except SessionInvalid as exc:
                    assert exc.code == "session_ended" and deletes_cookie(jar)
            return names

        assert await alive() == set(sessions)
        assert await b.end_sessions("keycloak", sid="s1") == 1
        assert await alive() == set(sessions) - {"alice s1"}
        assert await b.end_sessions("keycloak", sid="unknown") == 0
        assert await b.end_sessions("keycloak", subject="carol") == 0
        await b.end_sessions("keycloak", subject="alice")  # its count: test_end_sessions_counts_...
        assert await alive() == {"bob s3", "alice s1 elsewhere"}
        assert await b.end_sessions("okta", subject="alice") == 1  # b: its read cache goes too
        assert await alive() == {"bob s3"}

    replicas.run(scenario)


def test_end_sessions_counts_only_the_sessions_it_ended(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store()
        for sid in ("s1", "s2"):
            await save(store, login(subject="alice", sid=sid))
        assert await store.end_sessions("keycloak", sid="s1") == 1
        assert await store.end_sessions("keycloak", subject="alice") == 1

    replicas.run(scenario)


def test_seen_once_is_true_once_per_name_across_replicas_until_it_lapses(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store()
        assert await a.seen_once("logout:kc:jti-1", 1) is True
        assert await a.seen_once("logout:kc:jti-1", 1) is False
        assert await b.seen_once("logout:kc:jti-1", 1) is False
        assert await b.seen_once("logout:kc:jti-2", 1) is True
        assert await a.seen_once("logout:okta:jti-1", 600) is True
        await asyncio.sleep(1.2)
        assert await b.seen_once("logout:kc:jti-1", 1) is True
        assert await a.seen_once("logout:okta:jti-1", 600) is False

    replicas.run(scenario)


# ------------------------------------------------------------------ a Redis that hangs


def test_a_frozen_redis_answers_unavailable_in_time_and_keeps_the_cookie(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store(timeout=0.2)
        first, second = login(subject="alice"), login(subject="bob")
        cookies = [await save(store, first), await save(store, second)]
        replicas.server.freeze()
        try:
            calls: list[Callable[[CookieJar], Awaitable[object]]] = [
                lambda jar: store.load(view(cookies[0]), jar),
                lambda jar: store.save(view(None), jar, login()),
                lambda jar: store.save(view(cookies[0]), jar, refreshed(first)),
                lambda jar: store.verify_connection()]
            for call in calls:
                jar = CookieJar()
                # Each call gives up on its own while Redis stays frozen: the socket timeout
                # ended it (a call that waits for Redis would only end at the bound, 50 x the
                # timeout, and fail; one that recovered by reconnecting would not time out).
                with pytest.raises(SessionStoreUnavailable) as raised:
                    await asyncio.wait_for(call(jar), timeout=10)
                assert isinstance(raised.value.__cause__, redis.TimeoutError), raised.value
                assert len(jar) == 0, "no cookie is set or deleted while Redis is away"
            jar = CookieJar()
            await store.clear(view(cookies[1]), jar)  # signing out still works for the browser
            assert deletes_cookie(jar)
        finally:
            replicas.server.thaw()
        # Back: each request gets its own answer, no reply left over from the timed-out calls.
        # The sign-out's delete did not reach Redis: that copy lapses with its TTL.
        assert await load(store, cookies[1]) == second
        assert await load(store, cookies[0]) == first
        await store.verify_connection()

    replicas.run(scenario)


# ------------------------------------------------------------------ tickets and what Redis holds


def test_a_ticket_sealed_with_another_secret_is_invalid_and_deleted(replicas: Replicas) -> None:
    async def scenario() -> None:
        cookie = await save(replicas.store(secret=OTHER_SECRET), login())
        jar = CookieJar()
        with pytest.raises(SessionInvalid):
            await load(replicas.store(), cookie, jar)
        assert deletes_cookie(jar)

    replicas.run(scenario)


def test_a_ticket_whose_session_is_gone_from_redis_is_session_ended(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store()
        session = login()
        cookie = await save(store, session)
        assert replicas.server.client().delete(f"{replicas.prefix}session:{session.id}") == 1
        jar = CookieJar()
        with pytest.raises(SessionInvalid) as caught:
            await load(store, cookie, jar)
        assert caught.value.code == "session_ended"
        assert deletes_cookie(jar)

    replicas.run(scenario)


def test_redis_holds_only_ciphertext_that_the_cookie_key_alone_opens(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store()
        session = login(sid="provider-sid-1")
        cookie = await save(store, session)
        assert len(cookie) < 300 and "eyJ" not in cookie
        for secret in (session.access_token, session.refresh_token, session.id_token):
            assert secret is not None and secret not in cookie
        client = replicas.server.client()
        stored = client.get(f"{replicas.prefix}session:{session.id}")
        assert isinstance(stored, bytes)
        for visible in (session.access_token, session.refresh_token, session.id_token, session.subject,
                        "alice@example.com", "provider-sid-1"):
            assert visible is not None and visible.encode() not in stored
        everything = b"".join(k + (client.dump(k) or b"") for k in client.keys(f"{replicas.prefix}*")
                              if isinstance(k, bytes))  # always: no decode_responses
        assert session.access_token.encode() not in everything and b"alice" not in everything
        # The key is in the browser's ticket: with it the value opens, with any other it does not.
        settings = SessionSettings.model_validate({"secret": [SECRET]})
        ticket = SessionCipher.from_settings(settings, purpose="ticket").open(cookie, name=NAME).decode()
        session_id, _, key_text = ticket.partition(".")
        key = base64.urlsafe_b64decode(key_text + "=" * (-len(key_text) % 4))
        nonce, sealed = stored[:12], stored[12:]
        assert Session.from_json(AESGCM(key).decrypt(nonce, sealed, session_id.encode())) == session
        with pytest.raises(InvalidTag):
            AESGCM(secrets.token_bytes(32)).decrypt(nonce, sealed, session_id.encode())

    replicas.run(scenario)


def test_redis_errors_are_translated(replicas: Replicas) -> None:
    """The store's one foreign error type: a dead Redis is SessionStoreUnavailable, not redis's."""
    async def scenario() -> None:
        store = replicas.store(timeout=0.2)
        cookie = await save(store, login())
        replicas.server.stop()
        try:
            with pytest.raises(SessionStoreUnavailable) as caught:
                await load(store, cookie)
            assert isinstance(caught.value.__cause__, redis.RedisError | OSError | TimeoutError)
        finally:
            replicas.server.start()
        assert await load(store, cookie) is not None  # stop() saved a snapshot

    replicas.run(scenario)


# -- the cache: copies dropped on every replica through pub/sub ----------------------------------


class Ticks:
    """A monotonic clock the test moves (entry ages; the subscription's liveness is real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reads(server: RedisServer) -> int:
    client = server.client()
    try:
        stats: dict[str, Any] = client.info("commandstats")
        return int(stats.get("cmdstat_get", {}).get("calls", 0))
    finally:
        client.close()


def arrivals(store: RedisSessionStore) -> asyncio.Queue[object]:
    """Every invalidation message ``store`` handles from now on, once it has handled it."""
    queue: asyncio.Queue[object] = asyncio.Queue()
    cache = store._cache
    handle = cache.on_message

    def recorded(data: object) -> None:
        handle(data)
        queue.put_nowait(data)

    cache.on_message = recorded  # type: ignore[method-assign]
    return queue


async def next_change(queue: asyncio.Queue[object]) -> object:
    """The next message that names a session (not another replica's subscription probe)."""
    while True:
        data = await asyncio.wait_for(queue.get(), 10)
        if data != b"probe":
            return data


def test_a_session_read_is_reused_and_another_replica_s_logout_ends_it_there_on_arrival(
        replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(cache_seconds=30), replicas.store(cache_seconds=30)
        await replicas.live(a, b)
        on_b = arrivals(b)
        session = login()
        cookie = await save(a, session)
        await next_change(on_b)  # the login's own announcement: a read overlapping it is not kept
        before = reads(replicas.server)
        for _ in range(20):
            assert await load(b, cookie) is not None
        assert reads(replicas.server) == before + 1  # twenty requests, one Redis read
        await a.clear(view(cookie), CookieJar())  # signed out on the other replica
        # What b heard names the session only by a hash: never its id, key or tokens.
        heard = await next_change(on_b)
        assert isinstance(heard, bytes) and len(heard) == 32
        assert session.id.encode() not in heard and session.access_token.encode() not in heard
        jar = CookieJar()
        with pytest.raises(SessionInvalid) as ended:
            await load(b, cookie, jar)  # the copy went with the message: no wait for an age
        assert ended.value.code == "session_ended" and deletes_cookie(jar)

    replicas.run(scenario)


def test_a_copy_is_used_for_redis_cache_seconds_at_most(replicas: Replicas) -> None:
    ticks = Ticks()

    async def scenario() -> None:
        store = replicas.store(cache_seconds=30, monotonic=ticks)
        await replicas.live(store)
        own = arrivals(store)
        cookie = await save(store, login())
        await next_change(own)  # its own announcement comes back too
        before = reads(replicas.server)
        assert await load(store, cookie) is not None
        ticks.now += 29.9
        assert await load(store, cookie) is not None
        assert reads(replicas.server) == before + 1
        ticks.now += 0.1
        assert await load(store, cookie) is not None
        assert reads(replicas.server) == before + 2  # aged out: read again

    replicas.run(scenario)


def test_a_refresh_on_another_replica_replaces_the_copy_on_arrival(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(cache_seconds=30), replicas.store(cache_seconds=30)
        await replicas.live(a, b)
        on_b = arrivals(b)
        session = login()
        cookie = await save(a, session)
        await next_change(on_b)
        assert await load(b, cookie) == session
        fresh = refreshed(session)
        await a.save(view(cookie), CookieJar(), fresh)
        await next_change(on_b)
        assert await load(b, cookie) == fresh

    replicas.run(scenario)


def test_a_store_not_subscribed_reads_redis_on_every_request(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(cache_seconds=30), replicas.store(cache_seconds=30)
        await replicas.live(a)  # b never subscribes: it cannot hear of a's changes
        cookie = await save(a, login())
        before = reads(replicas.server)
        for _ in range(5):
            assert await load(b, cookie) is not None
        assert reads(replicas.server) == before + 5
        assert not b.caching
        await a.clear(view(cookie), CookieJar())
        with pytest.raises(SessionInvalid, match="ended"):
            await load(b, cookie)

    replicas.run(scenario)


def test_a_local_logout_or_back_channel_logout_ends_the_cached_session_at_once(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store(cache_seconds=5)
        await replicas.live(store)
        for end in ("clear", "end_sessions"):
            cookie = await save(store, login(sid="s1"))
            assert await load(store, cookie) is not None  # now cached
            if end == "clear":
                await store.clear(view(cookie), CookieJar())
            else:
                assert await store.end_sessions("keycloak", sid="s1") == 1
            with pytest.raises(SessionInvalid, match="ended"):
                await load(store, cookie)

    replicas.run(scenario)


def test_a_read_that_overlaps_a_local_logout_is_not_cached(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store(cache_seconds=5)
        await replicas.live(store)
        cookie = await save(store, login())
        client = store._client
        answered, release = asyncio.Event(), asyncio.Event()
        real_get = client.get

        async def slow_get(key: str) -> Any:
            value = await real_get(key)  # Redis answers before the logout...
            answered.set()
            await release.wait()  # ...and the answer is handled after it
            return value

        client.get = slow_get  # type: ignore[method-assign,assignment]
        reading = asyncio.create_task(load(store, cookie))
        await answered.wait()
        client.get = real_get  # type: ignore[method-assign]
        await store.clear(view(cookie), CookieJar())
        release.set()
        assert await reading is not None  # it raced the logout, and may see the old session
        with pytest.raises(SessionInvalid, match="ended"):
            await load(store, cookie)  # but nothing after the logout does

    replicas.run(scenario)


def test_the_cache_needs_the_whole_ticket_not_only_the_session_id(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store(cache_seconds=5)
        await replicas.live(store)
        session = login()
        cookie = await save(store, session)
        assert await load(store, cookie) is not None  # cached under its id
        wrong_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        forged = SessionCipher([SECRET], purpose="ticket").seal(f"{session.id}.{wrong_key}".encode(),
                                                               name=NAME)
        with pytest.raises(SessionInvalid, match="does not open"):
            await load(store, forged)

    replicas.run(scenario)


def test_redis_cache_seconds_0_reads_redis_on_every_request(replicas: Replicas) -> None:
    async def scenario() -> None:
        a, b = replicas.store(), replicas.store(cache_seconds=0)
        await replicas.live(a)
        b.start()  # nothing to subscribe to: it keeps no copies
        cookie = await save(a, login())
        before = reads(replicas.server)
        for _ in range(5):
            assert await load(b, cookie) is not None
        assert reads(replicas.server) == before + 5
        await a.clear(view(cookie), CookieJar())
        with pytest.raises(SessionInvalid, match="ended"):
            await load(b, cookie)

    replicas.run(scenario)


def test_a_read_that_starts_while_a_local_logout_is_in_flight_is_not_kept(replicas: Replicas) -> None:
    async def scenario() -> None:
        store = replicas.store(cache_seconds=5)
        await replicas.live(store)
        cookie = await save(store, login())
        client = store._client
        called, release = asyncio.Event(), asyncio.Event()
        real_delete = client.delete

        async def slow_delete(*keys: str) -> Any:
            called.set()
            await release.wait()  # the DEL reaches Redis only after the read below
            return await real_delete(*keys)

        client.delete = slow_delete  # type: ignore[method-assign,assignment]
        logging_out = asyncio.create_task(store.clear(view(cookie), CookieJar()))
        await called.wait()
        assert await load(store, cookie) is not None  # read before the DEL: the old session
        release.set()
        await logging_out
        client.delete = real_delete  # type: ignore[method-assign]
        with pytest.raises(SessionInvalid, match="ended"):
            await load(store, cookie)  # the copy that read cached went with the logout

    replicas.run(scenario)


# -- without a subscription: read-through, never a stale copy ------------------------------------

_USERS = itertools.count()


def acl_user(server: RedisServer, channels: list[str], commands: list[str]) -> tuple[str, str]:
    """A new ACL user: every key and command but ``commands`` (``-publish``), only ``channels``;
    its name and password."""
    name, password = f"user{next(_USERS)}-{secrets.token_hex(3)}", secrets.token_hex(8)
    client = server.client()
    try:
        client.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                           reset_channels=True, channels=channels, categories=["+@all"],
                           commands=commands)
    finally:
        client.close()
    return name, password


def failures(metrics: Metrics, operation: str) -> float:
    return metrics.registry.get_sample_value("gatekeeper_session_invalidation_failures_total",
                                             {"operation": operation}) or 0.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def test_a_lost_subscription_empties_the_cache_and_a_logout_meanwhile_is_never_missed(
        replicas: Replicas) -> None:
    async def scenario() -> None:
        name, password = acl_user(replicas.server, ["*"], [])
        metrics = Metrics()
        a = replicas.store(cache_seconds=30)
        b = replicas.store(cache_seconds=30, username=name, password=password, metrics=metrics)
        await replicas.live(a, b)
        on_b = arrivals(b)
        cookie = await save(a, login())
        await next_change(on_b)
        before = reads(replicas.server)
        assert await load(b, cookie) is not None
        assert await load(b, cookie) is not None
        assert reads(replicas.server) == before + 1  # b keeps a copy
        # Its channel rights go: Redis drops b's subscription, and b cannot subscribe again.
        admin = replicas.server.client()
        try:
            admin.acl_setuser(name, enabled=True, reset_channels=True)
        finally:
            admin.close()
        await until(lambda: not b.caching and failures(metrics, "subscribe") >= 1,
                    "b still believes it hears every change")
        await a.clear(view(cookie), CookieJar())  # b cannot hear of this
        with pytest.raises(SessionInvalid, match="ended"):
            await load(b, cookie)  # read-through: its copy from before is not used
        assert metrics.registry.get_sample_value("gatekeeper_session_cache_subscribed") == 0

    replicas.run(scenario)


ACL_WITHOUT_PUBSUB = [
    pytest.param([], [], True, id="no channel rights at all (Redis 7's default)"),
    pytest.param(["*"], ["-publish"], True, id="may subscribe but not publish"),
    pytest.param(["*"], ["-subscribe"], False, id="may publish but not subscribe"),
]


@pytest.mark.parametrize(("channels", "commands", "publish_refused"), ACL_WITHOUT_PUBSUB)
def test_an_acl_user_without_pub_sub_rights_reads_through_and_never_fails(
        replicas: Replicas, channels: list[str], commands: list[str], publish_refused: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        name, password = acl_user(replicas.server, channels, commands)
        metrics = Metrics()
        other = replicas.store(cache_seconds=30)
        store = replicas.store(cache_seconds=30, username=name, password=password, metrics=metrics)
        await replicas.live(other)
        store.start()
        await until(lambda: failures(metrics, "subscribe") >= 1, "no subscription attempt failed")
        assert not store.caching
        session = login()
        cookie = await save(store, session)  # a write: never failed by a refused PUBLISH
        before = reads(replicas.server)
        for _ in range(3):
            assert await load(store, cookie) == session
        assert reads(replicas.server) == before + 3  # read-through
        await other.clear(view(cookie), CookieJar())  # a sign-out elsewhere: honoured here at once
        with pytest.raises(SessionInvalid, match="ended"):
            await load(store, cookie)
        second = await save(store, login())
        await store.clear(view(second), CookieJar())  # and a sign-out here works
        assert (failures(metrics, "publish") >= 2) == publish_refused

    with caplog.at_level("WARNING", logger="gatekeeper.sessions"):
        replicas.run(scenario)
    messages = {r.getMessage() for r in caplog.records}
    assert "session cache off (read-through): no subscription to invalidations" in messages
    assert (any(m.startswith("session change not published") for m in messages)) == publish_refused
