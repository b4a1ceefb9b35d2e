"""The one Redis client of a gatekeeper process (redis-py asyncio), for every topology.

    redis://h:6379/0     one server                     unix:///path   a local socket
    rediss://h:6380/0    one server over TLS; its certificate is verified against
                         redis.tls_ca_file (default: the system's CAs), never skipped
    redis+sentinel://h1:26379,h2:26379/mymaster      the master Sentinel names, followed on failover
    rediss+sentinel://…  the same, with TLS to the master
    cluster: true        Redis Cluster, the url naming any node

Every call has a short timeout and no retries of its own: a Redis that is down or frozen must
cost a request ``redis.timeout_seconds``, not a hang, and callers decide what degrades.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gatekeeper.errors import ConfigError
from gatekeeper.settings import RedisSettings
from gatekeeper.tracing import NO_TRACING, Tracing

RedisClient = Redis | RedisCluster
# What a failing Redis raises: catch these, never bare Exception.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def connect(config: RedisSettings, tracing: Tracing = NO_TRACING) -> RedisClient:
    """``config``: the redis section with its url resolved (``Settings.redis_connection()``);
    with ``tracing`` recording, each command is a span."""
    client = _connect(config)
    if tracing is not NO_TRACING:
        _trace_commands(client, tracing, urlsplit(config.url or "").hostname or "redis")
    return client


def _trace_commands(client: RedisClient, tracing: Tracing, target: str) -> None:
    """Every command through ``execute_command`` (one server, a cluster or a Sentinel's master
    alike) inside a span named by the command alone (never its keys or values)."""
    execute = client.execute_command

    async def traced(*args: Any, **options: Any) -> Any:
        name = str(args[0]).split(" ", 1)[0].upper() if args else "REDIS"
        with tracing.call(f"redis {name}", target):
            return await execute(*args, **options)

    client.execute_command = traced  # type: ignore[method-assign]


def _connect(config: RedisSettings) -> RedisClient:
    url = config.url
    if url is None:
        raise ConfigError(["redis.url: not set (nor session.redis_url)"])
    password = config.password.get_secret_value() if config.password is not None else None
    if config.password_file is not None:
        password = config.password_file.read_text().strip()
    options: dict[str, Any] = {
        "socket_timeout": config.timeout_seconds,
        "socket_connect_timeout": config.timeout_seconds,
        "health_check_interval": 15,
        "client_name": "gatekeeper",
    }
    if config.username is not None:
        options["username"] = config.username
    if password is not None:
        options["password"] = password
    scheme = urlsplit(url).scheme
    if scheme.startswith("rediss") and config.tls_ca_file is not None:
        # Only the certificate's issuer changes: verification itself (chain and host name)
        # stays required, whatever the CA.
        options["ssl_ca_certs"] = str(config.tls_ca_file)
    if scheme.endswith("+sentinel"):
        return _sentinel_master(url, options)
    if config.cluster:
        # Not redis-py's default of three retries after a node's timeout (with a topology
        # reload between): that makes a frozen node cost a request ~12 x timeout_seconds.
        # A failure still marks the topology for reloading, so the next request follows a
        # failover. MOVED and ASK redirections are not retries and are still followed.
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 0), **options)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)


def _sentinel_master(url: str, options: dict[str, Any]) -> Redis:
    parts = urlsplit(url)
    hosts = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":") if not item.endswith("]") and ":" in item else (item, "", "")
        hosts.append((host.strip("[]"), int(port or 26379)))
    master = unquote(parts.path.strip("/").split("/")[0])
    sentinel_options: dict[str, Any] = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")}
    # redis-py's default for a Sentinel client is ten retries with backoff: seconds per request
    # while a Sentinel is away. One try each; the next Sentinel in the list is the retry.
    sentinel_options["retry"] = Retry(NoBackoff(), 0)
    if parts.username or parts.password:
        sentinel_options["username"] = unquote(parts.username or "") or None
        sentinel_options["password"] = unquote(parts.password or "") or None
    # redis-py types Sentinel's constructor from 8.2 on; before, it is an untyped call.
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_options, **options)  # type: ignore[no-untyped-call, unused-ignore]
    ssl = parts.scheme.startswith("rediss")
    client: Redis = sentinel.master_for(master, redis_class=_SentinelMaster, ssl=ssl,
                                        retry=Retry(NoBackoff(), 0))
    return client


class _SentinelMaster(Redis):
    """The master's client; closing it also closes the connections to the Sentinels, which
    redis-py's ``master_for`` client leaves open."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            sentinel: Sentinel = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
            for client in sentinel.sentinels:
                await client.aclose()
