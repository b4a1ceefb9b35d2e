"""Every Redis topology the docs name, against real redis-server processes on 127.0.0.1:

    rediss://            TLS, the server's certificate verified against redis.tls_ca_file;
                         an unknown CA or another host name is refused, never skipped
    username / password  an ACL user, the default user's requirepass, password_file; an ACL
                         user limited to the key prefix
    redis+sentinel://    the master a Sentinel names; Sentinel and master passwords; a Sentinel
                         that is down; rediss+sentinel:// (TLS to the master); a failover (the
                         master killed, its replica promoted, the same client following)
    cluster: true        3 masters: sessions, back-channel logout, the refresh lock, replay
                         protection, the revocation list (pub/sub), the rate-limit script, and
                         what a frozen node costs a request

Each topology is a module-scoped fixture; each test runs its own event loop and closes its
clients inside it, and uses a key prefix of its own. Waits on the real thing poll up to a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import ipaddress
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot

from gatekeeper.clients.redis import connect
from gatekeeper.errors import (
    RevocationStoreUnavailable,
    SessionInvalid,
    SessionStoreUnavailable,
    TokenRevoked,
)
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.ratelimit import RedisWindowCounter
from gatekeeper.revocation import RevocationList
from gatekeeper.revocation_entry import Revocation
from gatekeeper.sessions import CookieJar, Session
from gatekeeper.sessions.redis import RedisSessionStore
from gatekeeper.settings import RevocationSettings, Settings
from tests.support.fakes import run
from tests.support.paths import ROOT
from tests.support.redis import TcpRedis, run_cluster, run_redis_tcp, run_sentinel
from tests.support.sessions import Browser, login

SECRET = "t" * 16 + secrets.token_hex(16)
ACL_PASSWORD = "gk-" + secrets.token_hex(8)
DEFAULT_PASSWORD = "default-" + secrets.token_hex(8)


def settings(url: str, **redis_keys: Any) -> Settings:
    redis_keys.setdefault("key_prefix", f"t{secrets.token_hex(4)}:")
    return Settings.model_validate({
        "session": {"store": "redis", "secret": [SECRET]},
        "redis": {"url": url, "timeout_seconds": 2.0, **redis_keys},
    })


@contextlib.asynccontextmanager
async def session_store(config: Settings) -> AsyncIterator[RedisSessionStore]:
    """One replica's session store over its own client, closed in this event loop."""
    client = connect(config.redis_connection())
    try:
        yield RedisSessionStore(client, config.session, config.redis)
    finally:
        await client.aclose()


async def saved(store: RedisSessionStore, session: Session) -> Browser:
    browser, jar = Browser(), CookieJar()
    await store.save(browser.request(), jar, session)
    browser.accept(jar)
    return browser


async def loaded(store: RedisSessionStore, browser: Browser) -> Session | None:
    return await store.load(browser.request(), CookieJar())


async def round_trip(config: Settings) -> None:
    async with session_store(config) as store:
        await store.verify_connection()
        session = login(time.time())
        browser = await saved(store, session)
        assert await loaded(store, browser) == session


async def refused(config: Settings) -> BaseException:
    """The store cannot reach Redis: verify_connection and save both say so (503), no fallback."""
    async with session_store(config) as store:
        with pytest.raises(SessionStoreUnavailable) as raised:
            await store.verify_connection()
        with pytest.raises(SessionStoreUnavailable):
            await saved(store, login(time.time()))
    assert raised.value.__cause__ is not None
    return raised.value.__cause__


def wait_until(condition: Callable[[], bool], within: float, what: str) -> float:
    started = time.monotonic()
    while True:
        with contextlib.suppress(redis.RedisError):
            if condition():
                return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within}s")
        time.sleep(0.05)


def _tries(node: redis.Redis) -> tuple[int, int]:
    """How many SET commands the node has run, and connections it has taken (INFO)."""
    stats = node.info("commandstats").get("cmdstat_set", {})
    sets = int(stats.get("calls", 0)) if isinstance(stats, dict) else 0
    return sets, int(node.info("stats")["total_connections_received"])


def _refuses(revocations: RevocationList, principal: Principal) -> bool:
    try:
        revocations.check(principal)
    except TokenRevoked:
        return True
    return False


async def _eventually(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.02)


# -- TLS ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA gatekeeper is told to trust
    other_ca: Path  # a CA that signed nothing used here
    cert: Path  # 127.0.0.1, signed by ca
    key: Path
    wrong_host_cert: Path  # redis.example only, signed by ca
    wrong_host_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


Signer = tuple[x509.Name, ec.EllipticCurvePrivateKey]


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: Signer, *, ca: bool,
           san: x509.GeneralName | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer[0])
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a server certificate for 127.0.0.1, one for another host, another CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("gatekeeper test CA", ca_key, (_name("gatekeeper test CA"), ca_key), ca=True)
    other_cert = _issue("another CA", other_key, (_name("another CA"), other_key), ca=True)
    issuer = (ca_cert.subject, ca_key)
    server_key, wrong_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = _issue("127.0.0.1", server_key, issuer, ca=False,
                    san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    wrong = _issue("redis.example", wrong_key, issuer, ca=False, san=x509.DNSName("redis.example"))
    cert, key = _write(directory, "server", server, server_key)
    wrong_cert, wrong_key_path = _write(directory, "wrong-host", wrong, wrong_key)
    return Pki(ca=_write(directory, "ca", ca_cert)[0], other_ca=_write(directory, "other-ca", other_cert)[0],
               cert=cert, key=key, wrong_host_cert=wrong_cert, wrong_host_key=wrong_key_path)


def tls_args(pki: Pki, *, cert: Path | None = None, key: Path | None = None) -> list[str]:
    return ["--tls-cert-file", str(cert or pki.cert), "--tls-key-file", str(key or pki.key),
            "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no"]


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[TcpRedis]:
    with run_redis_tcp(*tls_args(pki), tls=True) as server:
        yield server


def test_rediss_round_trips_a_session_verified_against_the_configured_ca(
        tls_server: TcpRedis, pki: Pki) -> None:
    run(round_trip(settings(f"rediss://{tls_server.address}/0", tls_ca_file=str(pki.ca))))


@pytest.mark.parametrize("ca", ["system", "other"], ids=[
    "without tls_ca_file the system CAs do not know the server: refused",
    "with another CA: refused",
])
def test_rediss_refuses_a_server_its_ca_did_not_sign(tls_server: TcpRedis, pki: Pki, ca: str) -> None:
    extra = {} if ca == "system" else {"tls_ca_file": str(pki.other_ca)}
    cause = run(refused(settings(f"rediss://{tls_server.address}/0", **extra)))
    assert "CERTIFICATE_VERIFY_FAILED" in str(cause), cause


def test_rediss_refuses_a_certificate_for_another_host_name(pki: Pki) -> None:
    args = tls_args(pki, cert=pki.wrong_host_cert, key=pki.wrong_host_key)
    with run_redis_tcp(*args, tls=True) as server:
        cause = run(refused(settings(f"rediss://{server.address}/0", tls_ca_file=str(pki.ca))))
    assert "CERTIFICATE_VERIFY_FAILED" in str(cause) and "127.0.0.1" in str(cause), cause


def test_plain_redis_to_a_tls_port_fails_instead_of_hanging(tls_server: TcpRedis) -> None:
    # The TLS port drops the plain-text request: a connection error at once, not a read that
    # waits for an answer until the socket timeout (2 s here).
    cause = run(refused(settings(f"redis://{tls_server.address}/0")))
    assert isinstance(cause, redis.ConnectionError) and not isinstance(cause, redis.TimeoutError), cause


@pytest.mark.parametrize(("keys", "problem"), [
    ({"url": "rediss://127.0.0.1:6380/0", "tls_ca_file": "ca.pem"}, "must be an absolute path"),
    ({"url": "rediss://127.0.0.1:6380/0", "tls_ca_file": "/nonexistent/ca.pem"}, "is not a readable file"),
    ({"url": "redis://127.0.0.1:6379/0", "tls_ca_file": "CA"}, "needs a TLS url"),
    ({"tls_ca_file": "CA"}, "needs a TLS url"),
], ids=[
    "a relative tls_ca_file is refused",
    "a missing tls_ca_file is refused",
    "a tls_ca_file with a plain redis:// url is refused",
    "a tls_ca_file with the default plain session.redis_url is refused",
])
def test_tls_ca_file_is_validated_at_start(pki: Pki, keys: dict[str, str], problem: str) -> None:
    keys = {k: str(pki.ca) if v == "CA" else v for k, v in keys.items()}
    with pytest.raises(ValidationError, match=problem):
        Settings.model_validate({"redis": keys})


# -- ACL users and passwords ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def acl_server() -> Iterator[TcpRedis]:
    with run_redis_tcp("--requirepass", DEFAULT_PASSWORD,
                       "--user", "gk", "on", f">{ACL_PASSWORD}", "~*", "&*", "+@all") as server:
        yield server


@pytest.fixture(scope="module")
def password_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("secrets")
    files = {"right": ACL_PASSWORD + "\n", "wrong": "not-the-password\n"}
    for name, text in files.items():
        (directory / name).write_text(text)
    return {name: directory / name for name in files}


def acl_settings(server: TcpRedis, password_files: dict[str, Path],
                 credentials: dict[str, str]) -> Settings:
    """Settings for ``server`` with ``credentials``; a password_file names one of the fixture's."""
    if "password_file" in credentials:
        credentials = {**credentials, "password_file": str(password_files[credentials["password_file"]])}
    return settings(f"redis://{server.address}/0", **credentials)


@pytest.mark.parametrize("credentials", [
    {"username": "gk", "password": ACL_PASSWORD},
    {"username": "gk", "password_file": "right"},
    {"password": DEFAULT_PASSWORD},
], ids=[
    "an ACL user with its password",
    "an ACL user with a password_file (its trailing newline ignored)",
    "the default user with requirepass",
])
def test_credentials_that_redis_accepts_round_trip_a_session(
        acl_server: TcpRedis, password_files: dict[str, Path], credentials: dict[str, str]) -> None:
    run(round_trip(acl_settings(acl_server, password_files, credentials)))


@pytest.mark.parametrize("credentials", [
    {"username": "gk", "password": "not-the-password"},
    {"username": "gk", "password_file": "wrong"},
    {"username": "gk", "password": DEFAULT_PASSWORD},
    {"password": ACL_PASSWORD},
    {},
], ids=[
    "a wrong password is refused",
    "a wrong password in password_file is refused",
    "another user's password is refused",
    "an ACL user's password for the default user is refused",
    "no password at all is refused",
])
def test_credentials_that_redis_refuses_make_the_store_unavailable(
        acl_server: TcpRedis, password_files: dict[str, Path], credentials: dict[str, str]) -> None:
    cause = run(refused(acl_settings(acl_server, password_files, credentials)))
    assert isinstance(cause, redis.AuthenticationError), repr(cause)


def test_an_acl_user_limited_to_the_key_prefix_and_its_channels_serves_every_feature() -> None:
    rules = "~gatekeeper:* &gatekeeper:* +@all"  # what docs/scaling.md advises
    assert rules.split()[0] + " " + rules.split()[1] in (ROOT / "docs" / "scaling.md").read_text()
    with run_redis_tcp("--user", "gk", "on", f">{ACL_PASSWORD}", *rules.split()) as server:
        config = settings(f"redis://{server.address}/0", username="gk", password=ACL_PASSWORD,
                          key_prefix=f"gatekeeper:{secrets.token_hex(4)}:")
        run(_every_feature(config))


def test_without_the_channel_rule_revocations_are_refused_not_pretended() -> None:
    """Redis 7 denies pub/sub channels by default: POST /revoke must say 503, never 200."""
    with run_redis_tcp("--user", "gk", "on", f">{ACL_PASSWORD}", "~gatekeeper:*", "+@all") as server:
        config = settings(f"redis://{server.address}/0", username="gk", password=ACL_PASSWORD,
                          key_prefix=f"gatekeeper:{secrets.token_hex(4)}:")
        with pytest.raises(RevocationStoreUnavailable):
            run(_every_feature(config))


async def _every_feature(config: Settings) -> None:
    """Sessions, the rate-limit script, and revocations (stored, published, subscribed)."""
    await round_trip(config)
    client = connect(config.redis_connection())
    revocations = RevocationList(client, RevocationSettings(resync_seconds=3600, max_stale_seconds=7200),
                                 config.redis.key_prefix, Metrics())
    try:
        counter = RedisWindowCounter(client, config.redis.timeout_seconds)
        assert (await counter.hit(f"{config.redis.key_prefix}rl:0:caller:60", 5, 60_000)).allowed
        await revocations.start()
        await revocations.revoke(Revocation("sub", "mallory", time.time() + 60))
        await _eventually(lambda: revocations.subscribed, 3, "subscribed to revocations")
        # The session cache's channel (<key_prefix>sessions) is covered by the same rule.
        async with session_store(config) as store:
            store.start()
            try:
                await _eventually(lambda: store.caching, 5, "subscribed to session changes")
            finally:
                await store.aclose()
    finally:
        await revocations.aclose()
        await client.aclose()


# -- Sentinel -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sentinel() -> Iterator[tuple[TcpRedis, TcpRedis]]:
    """(master, sentinel)."""
    with run_redis_tcp() as master, run_sentinel(master) as watching:
        yield master, watching


def test_sentinel_url_round_trips_a_session_through_the_master_it_names(
        sentinel: tuple[TcpRedis, TcpRedis]) -> None:
    master, watching = sentinel
    config = settings(f"redis+sentinel://{watching.address}/mymaster")
    run(round_trip(config))
    assert master.client().keys(f"{config.redis.key_prefix}session:*"), "not written to the master"


def test_a_sentinel_that_is_down_costs_no_retries(sentinel: tuple[TcpRedis, TcpRedis],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-py's Sentinel clients retry ten times with backoff by default: seconds per request.
    # Without: one try at the dead one (it times out: a refused connection is never retried),
    # then the next in the list. The tries are counted where redis-py opens its connections.
    _, watching = sentinel
    tries: list[int] = []
    open_connection = asyncio.open_connection

    async def counted(host: str, port: int, **kwargs: Any) -> Any:
        if port == dead:
            tries.append(port)
        return await open_connection(host, port, **kwargs)

    monkeypatch.setattr(asyncio, "open_connection", counted)
    with socket.socket() as hung:  # a Sentinel that takes connections and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        dead = hung.getsockname()[1]
        config = settings(f"redis+sentinel://127.0.0.1:{dead},{watching.address}/mymaster",
                          timeout_seconds=0.3)
        run(round_trip(config))
    # One lookup: redis-py then puts the Sentinel that answered first in its list. A retry
    # would have connected to the dead one again after each timeout.
    assert len(tries) == 1, tries


def test_sentinel_with_a_password_of_its_own_and_the_masters() -> None:
    sentinel_password, master_password = "s-" + secrets.token_hex(8), "m-" + secrets.token_hex(8)
    extra = [f"requirepass {sentinel_password}", f"sentinel auth-pass mymaster {master_password}"]
    with (run_redis_tcp("--requirepass", master_password) as master,
          run_sentinel(master, extra=extra, password=sentinel_password) as watching):
        url = f"redis+sentinel://:{sentinel_password}@{watching.address}/mymaster"
        run(round_trip(settings(url, password=master_password)))
        cause = run(refused(settings(f"redis+sentinel://{watching.address}/mymaster",
                                     password=master_password)))
        assert "No master found" in str(cause), cause
        cause = run(refused(settings(url, password="not-the-password")))
        assert isinstance(cause, redis.AuthenticationError), repr(cause)


def test_rediss_sentinel_url_uses_tls_to_the_master_verified_against_the_ca(pki: Pki) -> None:
    # The Sentinel itself listens in plain TCP and reaches the master over TLS (tls-replication).
    sentinel_tls = ["tls-replication yes", f"tls-cert-file {pki.cert}", f"tls-key-file {pki.key}",
                    f"tls-ca-cert-file {pki.ca}"]
    with (run_redis_tcp(*tls_args(pki), tls=True) as master,
          run_sentinel(master, extra=sentinel_tls) as watching):
        url = f"rediss+sentinel://{watching.address}/mymaster"
        run(round_trip(settings(url, tls_ca_file=str(pki.ca))))
        cause = run(refused(settings(url, tls_ca_file=str(pki.other_ca))))
        assert "CERTIFICATE_VERIFY_FAILED" in str(cause), cause


@pytest.mark.parametrize(("hosts", "expected"), [
    ("s1:26380,s2", [("s1", 26380), ("s2", 26379)]),
    ("[::1]:26380,[::1]", [("::1", 26380), ("::1", 26379)]),
    (":pw@s1,s2:1", [("s1", 26379), ("s2", 1)]),
], ids=[
    "a host without a port means 26379",
    "IPv6 sentinels in brackets, with and without a port",
    "the sentinels' password before the hosts is not a host",
])
def test_sentinel_hosts_are_read_from_the_url(hosts: str, expected: list[tuple[str, int]]) -> None:
    async def scenario() -> list[tuple[str, int]]:
        client = connect(settings(f"redis+sentinel://{hosts}/mymaster").redis_connection())  # connects lazily
        try:
            assert isinstance(client, Redis)  # a Sentinel URL makes a plain client on a sentinel pool
            pool = client.connection_pool
            assert isinstance(pool, SentinelConnectionPool)
            sentinels = pool.sentinel_manager.sentinels
            return [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
                    for s in sentinels]
        finally:
            await client.aclose()

    assert run(scenario()) == expected


def _replication(server: TcpRedis) -> dict[str, Any]:
    info: dict[str, Any] = server.client().info("replication")
    return info


def test_after_a_sentinel_failover_the_same_client_follows_the_promoted_replica() -> None:
    # No diskless-sync delay: the replica's first full sync starts at once, not after 5 s.
    with (run_redis_tcp("--repl-diskless-sync-delay", "0") as master,
          run_redis_tcp("--replicaof", "127.0.0.1", str(master.port)) as replica):
        wait_until(lambda: _replication(replica)["master_link_status"] == "up", 10, "replica in sync")
        with run_sentinel(master) as watching:
            wait_until(lambda: len(watching.client().sentinel_slaves("mymaster")) == 1, 10,
                       "the sentinel knows the replica")
            run(_failover(master, replica, watching))


async def _failover(master: TcpRedis, replica: TcpRedis, watching: TcpRedis) -> None:
    config = settings(f"redis+sentinel://{watching.address}/mymaster")
    async with session_store(config) as store:
        before = login(time.time())
        browser = await saved(store, before)
        offset = _replication(master)["master_repl_offset"]
        await asyncio.to_thread(wait_until, lambda: _replication(replica)["slave_repl_offset"] >= offset,
                                10, "the session replicated")

        master.process.send_signal(signal.SIGKILL)
        master.process.proc.wait(5)
        with pytest.raises(SessionStoreUnavailable):  # a 503 while Sentinel decides, not a hang
            await loaded(store, browser)
        # ... answered before the failover (Sentinel still names the dead master): the request
        # did not wait for Sentinel's decision (down-after 1 s, then the promotion).
        state = watching.client().sentinel_master("mymaster")
        assert isinstance(state, dict) and int(state["port"]) == master.port, state

        def promoted() -> bool:
            # What redis-py asks (SENTINEL MASTERS): the new address, and no longer down. (GET-
            # MASTER-ADDR-BY-NAME names the replica a moment earlier, while still "o_down".)
            state = watching.client().sentinel_master("mymaster")
            assert isinstance(state, dict)
            return int(state["port"]) == replica.port and not (state["is_sdown"] or state["is_odown"])

        await asyncio.to_thread(wait_until, promoted, 20, "the replica promoted")
        assert await loaded(store, browser) == before, "the session survived on the promoted replica"
        after = login(time.time())
        browser = await saved(store, after)  # a write: it reaches the new master
        assert await loaded(store, browser) == after
        assert replica.client().exists(f"{config.redis.key_prefix}session:{after.id}") == 1


# -- Cluster --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> Iterator[list[TcpRedis]]:
    with run_cluster(3) as nodes:
        yield nodes


def cluster_settings(nodes: list[TcpRedis]) -> Settings:
    return settings(f"redis://{nodes[-1].address}", cluster=True)


def _nodes_holding(nodes: list[TcpRedis], prefix: str) -> dict[int, list[bytes]]:
    held = {node.port: [k for k in node.client().keys(f"{prefix}*") if isinstance(k, bytes)]
            for node in nodes}
    return {port: keys for port, keys in held.items() if keys}


def test_cluster_round_trips_sessions_whose_keys_live_on_different_nodes(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)
    prefix = config.redis.key_prefix

    async def scenario() -> None:
        async with session_store(config) as store:
            for subject in ("alice", "bob", "carol", "dave"):
                session = login(time.time(), subject=subject)
                browser = await saved(store, session)
                assert await loaded(store, browser) == session
                # One write touches the session key and its sub index: two slots, one pipeline.
                assert key_slot(f"{prefix}session:{session.id}".encode()) != key_slot(
                    store._index_key("sub", session.provider, subject).encode())

    run(scenario())
    assert len(_nodes_holding(cluster, prefix)) >= 2, "all keys on one node: no cross-slot write tested"


def test_cluster_end_sessions_ends_every_session_of_a_subject(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)

    async def scenario() -> None:
        async with session_store(config) as store:
            now = time.time()
            browsers = [await saved(store, login(now)) for _ in range(3)]
            other = login(now, subject="bob")
            bob = await saved(store, other)
            assert await store.end_sessions("keycloak", subject="alice") == 3
            for browser in browsers:
                with pytest.raises(SessionInvalid):
                    await loaded(store, browser)
            assert await loaded(store, bob) == other

    run(scenario())


def test_cluster_refresh_exclusively_refreshes_once_across_two_replicas(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)
    calls: list[Session] = []

    async def refresh(session: Session) -> Session:
        calls.append(session)
        await asyncio.sleep(0.2)
        return dataclasses.replace(session, access_token="at." + secrets.token_urlsafe(32))

    async def scenario() -> None:
        async with session_store(config) as a, session_store(config) as b:
            session = login(time.time())
            browser = await saved(a, session)
            results = await asyncio.gather(*(store.refresh_exclusively(browser.request(), session, refresh)
                                             for _ in range(4) for store in (a, b)))
            assert len(calls) == 1
            assert all(result == results[0] for result in results)
            assert results[0].access_token != session.access_token
            assert await loaded(b, browser) == results[0]

    run(scenario())
    assert not any(node.client().keys(f"{config.redis.key_prefix}lock:*") for node in cluster), \
        "the lock was not released"


def test_cluster_seen_once_answers_true_only_the_first_time(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)

    async def scenario() -> None:
        async with session_store(config) as store:
            names = [secrets.token_hex(8) for _ in range(6)]
            assert [await store.seen_once(name, 60) for name in names] == [True] * 6
            assert [await store.seen_once(name, 60) for name in names] == [False] * 6

    run(scenario())
    assert len(_nodes_holding(cluster, config.redis.key_prefix)) >= 2


def test_cluster_carries_revocations_from_one_replica_to_another(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)
    # A resync period far beyond the test: what arrives, arrives by pub/sub.
    revocation = RevocationSettings(resync_seconds=3600, max_stale_seconds=7200)
    alice = Principal(subject="alice", roles=(), claims={"sub": "alice", "jti": "j1"}, via="bearer")

    async def scenario() -> None:
        clients = [connect(config.redis_connection()), connect(config.redis_connection())]
        lists = [RevocationList(c, revocation, config.redis.key_prefix, Metrics()) for c in clients]
        try:
            for revocations in lists:
                await revocations.start()
            await _eventually(lambda: all(r.subscribed for r in lists), 5, "both subscribed")
            lists[1].check(alice)
            await lists[0].revoke(Revocation("jti", "j1", time.time() + 60))
            await _eventually(lambda: _refuses(lists[1], alice), 3, "the revocation reached replica 2")
            # And a replica that starts later reads the whole list.
            late_client = connect(config.redis_connection())
            clients.append(late_client)
            late = RevocationList(late_client, revocation, config.redis.key_prefix, Metrics())
            lists.append(late)
            await late.start()
            assert _refuses(late, alice)
        finally:
            for revocations in lists:
                await revocations.aclose()
            for client in clients:
                await client.aclose()

    run(scenario())


def test_cluster_carries_session_changes_from_one_replica_to_another(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)

    async def scenario() -> None:
        async with session_store(config) as a, session_store(config) as b:
            try:
                a.start()
                b.start()
                await _eventually(lambda: a.caching and b.caching, 5, "both subscribed")
                session = login(time.time())
                browser = await saved(a, session)
                for _ in range(100):  # a read that overlapped the login's announcement is not kept
                    assert await loaded(b, browser) == session
                    if not _ended(b, browser):
                        break
                    await asyncio.sleep(0.02)
                assert not _ended(b, browser)  # b keeps a copy
                await a.clear(browser.request(), CookieJar())
                await _eventually(lambda: _ended(b, browser), 3, "the sign-out reached replica 2")
            finally:
                await a.aclose()
                await b.aclose()

    run(scenario())


def _ended(store: RedisSessionStore, browser: Browser) -> bool:
    """Whether ``store`` no longer serves the session from its copy (no Redis call: the copy
    is looked up as a request would)."""
    ticket = store._ticket(browser.request())
    assert ticket is not None
    return store._cache.get(ticket.id, ticket.key) is None


def test_cluster_runs_the_rate_limit_script_per_caller(cluster: list[TcpRedis]) -> None:
    config = cluster_settings(cluster)
    prefix = config.redis.key_prefix
    keys = [f"{prefix}rl:0:{secrets.token_hex(16)}:60" for _ in range(6)]

    async def scenario() -> None:
        client = connect(config.redis_connection())
        try:
            counter = RedisWindowCounter(client, config.redis.timeout_seconds)
            for key in keys:
                first, second, third = [await counter.hit(key, 2, 60_000) for _ in range(3)]
                assert (first.allowed, first.remaining) == (True, 1)
                assert (second.allowed, second.remaining) == (True, 0)
                assert not third.allowed and 0 < third.retry_after_ms <= 120_000
        finally:
            await client.aclose()

    run(scenario())
    assert len(_nodes_holding(cluster, prefix)) >= 2


def test_cluster_a_frozen_node_costs_a_request_one_timeout_not_retries(cluster: list[TcpRedis]) -> None:
    # Last in the file: it freezes a node of the shared cluster (for well under cluster-node-
    # timeout, so the cluster itself never notices). The session store bounds its calls by the
    # socket timeout alone, so what this measures is the client's own retrying.
    config = settings(f"redis://{cluster[0].address}", cluster=True, timeout_seconds=0.3)
    prefix = config.redis.key_prefix

    async def scenario() -> None:
        async with session_store(config) as store:
            client = store._client
            assert isinstance(client, RedisCluster)
            await store.verify_connection()
            names = (secrets.token_hex(8) for _ in range(1000))
            node = client.get_node_from_key(f"{prefix}seen:x")
            assert node is not None
            # The store's connection to that node is open (a first request went there): a try
            # sends the SET on it, and a retry would open a new one after the timeout.
            assert await store.seen_once("x", 60)
            name = next(n for n in names if client.get_node_from_key(f"{prefix}seen:{n}") == node)
            frozen = next(n for n in cluster if n.port == node.port)
            watch = frozen.client()
            before = _tries(watch)
            frozen.process.send_signal(signal.SIGSTOP)
            try:
                with pytest.raises(SessionStoreUnavailable):
                    await store.seen_once(name, 60)
            finally:
                frozen.process.send_signal(signal.SIGCONT)
            # redis-py's default (3 retries, a topology reload between) took ~12 x the timeout.
            # What the node holds for it, once thawed: the timed-out SET (it ran then) and each
            # new connection a retry opened (they waited in the node's backlog).
            await asyncio.to_thread(wait_until, lambda: _tries(watch)[0] > before[0], 10,
                                    "the timed-out SET ran once thawed")
            sets, connections = (now - then for now, then in zip(_tries(watch), before, strict=True))
            watch.close()
            assert (sets, connections) == (1, 0), "one try, no retries"
            assert await store.seen_once(secrets.token_hex(8), 60), "answers again once thawed"

    run(scenario())
