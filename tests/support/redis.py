"""A real ``redis-server`` (Debian's package) on a unix socket in a temp dir, for the Redis tests.

    with run_redis() as server:          # server.url == "unix:///tmp/.../redis.sock"
        server.client().ping()
        server.freeze(); server.thaw()   # SIGSTOP / SIGCONT: a Redis that hangs
        server.restart()                 # stop and start again on the same socket, data kept

Persistence: an RDB snapshot is written at shutdown (SIGTERM), so a restarted server still holds
its keys, as a real deployment with persistence does. No TCP port is opened.

The other topologies listen on free ports of 127.0.0.1, each in a temp dir of its own:

    with run_redis_tcp("--requirepass", "pw") as server:       # server.port, server.address
    with run_redis_tcp(*tls_args, tls=True) as server:          # --tls-port only (--port 0)
    with run_sentinel(master) as sentinel:                     # quorum 1, names "mymaster"
    with run_cluster(3) as nodes:                              # 3 masters, every slot covered
"""

from __future__ import annotations

import contextlib
import functools
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.servers import ProcessHandle, free_port, run_process
from tests.support.tools import REDIS_CLI, REDIS_SERVER, require


@dataclass
class RedisServer:
    directory: Path
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)
    process: ProcessHandle | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def start(self) -> None:
        argv = [require(REDIS_SERVER), "--port", "0", "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "",
                "--appendonly", "no", "--loglevel", "warning"]
        self.process = self._stack.enter_context(run_process(argv, timeout=10))
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, FileNotFoundError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.process.output()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: Redis saves its snapshot (``save`` on shutdown) and exits."""
        with contextlib.suppress(redis.RedisError):
            self.client().save()
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL: gone without a word (no snapshot)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.proc.wait(10)
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def run_redis() -> Iterator[RedisServer]:
    require(REDIS_SERVER)
    with tempfile.TemporaryDirectory(prefix="gk-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            if server.process is not None:
                with contextlib.suppress(Exception):
                    server.thaw()
            server._stack.close()


# -- TCP topologies: one server on a port, a Sentinel, a Cluster (127.0.0.1 only) ----------------

_COMMON = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")


@dataclass
class TcpRedis:
    """A redis-server (or Sentinel) on ``127.0.0.1:port``."""

    port: int
    directory: Path
    process: ProcessHandle

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain-TCP sync client (not for a TLS-only server)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **kwargs)


@contextlib.contextmanager
def run_redis_tcp(*args: str, directory: Path | None = None, tls: bool = False) -> Iterator[TcpRedis]:
    """``redis-server`` on a free port (``--tls-port`` with ``tls``, plain ``--port`` 0) and
    ``args`` (e.g. ``--requirepass``); ready once the port accepts connections."""
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gk-redis-")))
        port = free_port()
        ports = ["--port", "0", "--tls-port", str(port)] if tls else ["--port", str(port)]
        argv = [require(REDIS_SERVER), *ports, "--dir", str(directory), *_COMMON, *args]
        process = stack.enter_context(_run(argv, port))
        yield TcpRedis(port, directory, process)


@contextlib.contextmanager
def run_sentinel(master: TcpRedis, name: str = "mymaster", *, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000, extra: Sequence[str] = (),
                 password: str | None = None) -> Iterator[TcpRedis]:
    """One Sentinel (quorum 1) monitoring ``master``; ready once it names the master. ``extra``:
    more config lines (``requirepass``: pass it as ``password`` too, for the readiness check).
    Sentinel rewrites its config file, so the file lives in a temp dir of its own."""
    with tempfile.TemporaryDirectory(prefix="gk-sentinel-") as directory:
        port = free_port()
        config = Path(directory) / "sentinel.conf"
        config.write_text("\n".join([
            f"port {port}", "bind 127.0.0.1", f"dir {directory}", "loglevel warning",
            f"sentinel monitor {name} 127.0.0.1 {master.port} 1",
            f"sentinel down-after-milliseconds {name} {down_after_ms}",
            f"sentinel failover-timeout {name} {failover_timeout_ms}",
            *extra, ""]))
        with _run([require(REDIS_SERVER), str(config), "--sentinel"], port) as process:
            sentinel = TcpRedis(port, Path(directory), process)
            _wait(lambda: sentinel.client(password=password).sentinel_get_master_addr_by_name(name)
                  is not None,
                  f"sentinel on {port} does not name {name}", process)
            yield sentinel


@contextlib.contextmanager
def run_cluster(masters: int = 3) -> Iterator[list[TcpRedis]]:
    """A Redis Cluster of ``masters`` masters and no replicas; ready once every node says
    ``cluster_state:ok``. Each node's bus port is a free port of its own (``cluster-port``)."""
    with contextlib.ExitStack() as stack:
        nodes = []
        for _ in range(masters):
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gk-cluster-")))
            nodes.append(stack.enter_context(run_redis_tcp(
                "--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"),
                "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000",
                directory=directory)))
        created = subprocess.run(
            [require(REDIS_CLI), "--cluster", "create",
             *(node.address for node in nodes), "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=30, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        for node in nodes:
            _wait(functools.partial(_cluster_ok, node), f"cluster node {node.port} not ok",
                  node.process)
        yield nodes


@contextlib.contextmanager
def _run(argv: list[str], port: int) -> Iterator[ProcessHandle]:
    with run_process(argv, ready_port=port, timeout=10) as process:
        yield process


def _cluster_ok(node: TcpRedis) -> bool:
    return bool(node.client().cluster("info")["cluster_state"] == "ok")


def _wait(condition: Callable[[], bool], what: str, process: ProcessHandle, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}:\n{process.output()}")
        time.sleep(0.02)
