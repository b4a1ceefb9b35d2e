"""Real servers for tests: an ASGI app under uvicorn in a thread, or a whole process.

    with serve_asgi(app) as url:                     # http://127.0.0.1:PORT
        httpx.get(url + "/jwks")

    with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", cfg],
                     ready_url=f"http://127.0.0.1:{port}/healthz") as proc:
        ...; proc.output()

Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

import httpx
import uvicorn
from starlette.types import ASGIApp

__all__ = [
    "ProcessHandle",
    "ThreadedUvicorn",
    "free_port",
    "peak_rss_bytes",
    "rss_bytes",
    "run_process",
    "serve_asgi",
    "terminating",
]

HOST = "127.0.0.1"


# Under pytest-xdist (`make test` runs the suite in workers: the Makefile) each worker
# takes the ports it hands out from a block of its own, below the kernel's ephemeral range
# (32768-60999 on Linux): a port one worker reserved for a process about to start is never
# handed to another worker, nor picked by the kernel for anyone's bind(0) or connect().
_BLOCKS_START, _BLOCK_PORTS, _BLOCKS = 16384, 1024, 16
_next_port: list[int] = []


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … in a worker
    return int(worker[2:]) % _BLOCKS if worker.startswith("gw") and worker[2:].isdigit() else None


def free_port() -> int:
    """A port that was free a moment ago. Racy by nature; ``serve_asgi`` avoids needing it."""
    index = _worker_index()
    if index is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
            return port
    first = _BLOCKS_START + index * _BLOCK_PORTS
    if not _next_port:  # a random start: another suite on the machine starts elsewhere
        _next_port.append(first + int.from_bytes(os.urandom(2), "big") % _BLOCK_PORTS)
    for _ in range(_BLOCK_PORTS):
        port = _next_port[0]
        _next_port[0] = first + (port + 1 - first) % _BLOCK_PORTS
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue  # in use (or held by a server that just stopped): the next one
            return port
    raise RuntimeError(f"no free port in {first}-{first + _BLOCK_PORTS - 1}")


class ThreadedUvicorn(uvicorn.Server):
    """A uvicorn server that can run outside the main thread."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signal handlers belong to the main thread (pytest's); a server thread must not touch them.
        yield


@contextlib.contextmanager
def serve_asgi(
    app: ASGIApp,
    *,
    port: int | None = None,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **uvicorn_kwargs: Any,
) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 from a background thread; yield ``http://127.0.0.1:PORT``.

    Defaults: ``lifespan="on"`` (a failing startup then fails here instead of being ignored, as
    "auto" would; pass ``lifespan="off"`` for a bare ASGI app without lifespan support), no
    logging config, no access log, 2 s graceful shutdown. Any ``uvicorn.Config`` keyword
    overrides them. ``port`` reuses a fixed port, e.g. to bring an upstream back on the same URL.
    """
    # Bind here, so the port is known before the thread starts and no other test can take it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port or 0))
    except OSError:
        sock.close()
        raise
    bound_port: int = sock.getsockname()[1]
    options: dict[str, Any] = {
        "lifespan": "on",
        "log_config": None,  # dictConfig per server would rewire the test session's logging
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 2,
    }
    options.update(uvicorn_kwargs)
    config = uvicorn.Config(app, host=HOST, port=bound_port, **options)
    server = ThreadedUvicorn(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit on startup failure too: report, don't vanish
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {bound_port} did not start: {failure!r}")
            time.sleep(0.005)
        yield f"http://{HOST}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(shutdown_timeout)
        sock.close()  # uvicorn closes it on a clean shutdown; this covers a failed startup
    if thread.is_alive():
        raise RuntimeError(f"server on port {bound_port} did not stop")


class ProcessHandle:
    """A running child process whose stdout+stderr go to a temporary file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
        self.proc = proc
        self._log = log
        self._terminated = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr interleaved)."""
        fd = self._log.fileno()
        # pread leaves the shared file offset alone, which the child is still appending at.
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        return data.decode("utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float = 10.0) -> str:
        """Wait until ``text`` appears in the output; return the output."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.output()
            if text in output:
                return output
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in output of pid {self.pid}:\n{output}")
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM, once, without waiting (``stop`` then only waits): a fixture that started
        several processes signals them all first, so they shut down side by side."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (unless ``terminate`` sent it), wait up to ``timeout``, then SIGKILL.
        Returns the exit code."""
        if self.proc.poll() is None:
            if self._terminated:
                self._terminated = False  # a second stop() signals again, as it always did
            else:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # Anything the child left behind in its own process group (workers) goes too.
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


@contextlib.contextmanager
def terminating(handles: list[ProcessHandle]) -> Iterator[None]:
    """On exit, SIGTERM every one of ``handles`` at once; their own ``run_process`` contexts,
    left next, then wait for each (shutting down takes a gatekeeper ~0.5 s: in turn, that is
    half a second per process a module started)."""
    try:
        yield
    finally:
        for handle in handles:
            handle.terminate()


@contextlib.contextmanager
def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready_url: str | None = None,
    ready_port: int | None = None,
    timeout: float = 15.0,
    stop_timeout: float = 10.0,
) -> Iterator[ProcessHandle]:
    """Run ``argv``; yield once ``ready_url`` answers (any status) or ``ready_port`` accepts.

    ``env`` is layered over ``os.environ`` (a ``None`` value removes a variable). Raises
    ``RuntimeError`` with the captured output if the process exits early or is not ready within
    ``timeout``. On exit: SIGTERM, a bounded wait, then SIGKILL.
    """
    child_env = dict(os.environ)
    child_env["PYTHONUNBUFFERED"] = "1"  # so output() shows logs as they happen
    for name, value in (env or {}).items():
        if value is None:
            child_env.pop(name, None)
        else:
            child_env[name] = value
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=cwd,
            start_new_session=True,  # its own group: Ctrl-C in the terminal reaches only pytest
        )
        handle = ProcessHandle(proc, log)
        try:
            _wait_ready(handle, ready_url, ready_port, timeout)
            yield handle
        finally:
            handle.stop(stop_timeout)


def _wait_ready(handle: ProcessHandle, ready_url: str | None, ready_port: int | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # trust_env=False: a proxy from the environment must not intercept 127.0.0.1 probes.
    with httpx.Client(trust_env=False, timeout=1.0) as client:
        while True:
            if handle.proc.poll() is not None:
                raise RuntimeError(
                    f"process {handle.pid} exited with {handle.proc.returncode} before it was "
                    f"ready:\n{handle.output()}"
                )
            if _is_ready(client, ready_url, ready_port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {handle.pid} not ready after {timeout} s:\n{handle.output()}")
            time.sleep(0.05)


def _is_ready(client: httpx.Client, ready_url: str | None, ready_port: int | None) -> bool:
    if ready_url is not None:
        try:
            client.get(ready_url)
        except httpx.TransportError:
            return False
    if ready_port is not None:
        try:
            socket.create_connection((HOST, ready_port), timeout=1.0).close()
        except OSError:
            return False
    return True


def _proc_status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # always reported in kB
    raise LookupError(f"{field} not in /proc/{pid}/status")


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS)."""
    return _proc_status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """Highest resident set size so far (VmHWM)."""
    return _proc_status_kib(pid, "VmHWM") * 1024


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far, user + system (/proc/<pid>/stat fields 14, 15):
    what an attack costs, whatever else shares the machine (unlike a wall-clock time)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
