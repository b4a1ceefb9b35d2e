"""A real ``redis-server`` (Debian's package) on a unix socket in a temp dir, for the Redis tests.

    with run_redis() as server:          # server.url == "unix:///tmp/.../redis.sock"
        server.client().ping()
        server.freeze(); server.thaw()   # SIGSTOP / SIGCONT: a Redis that hangs
        server.restart()                 # stop and start again on the same socket, data kept

Persistence: an RDB snapshot is written at shutdown (SIGTERM), so a restarted server still holds
its keys, as a real deployment with persistence does. No TCP port is opened.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.servers import ProcessHandle, run_process

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


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
        argv = [REDIS_SERVER, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
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
    if not Path(REDIS_SERVER).exists():
        raise RuntimeError("redis-server is missing: apt-get install redis-server (.ci/run does it)")
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
