"""Attacks for the resource tests: raw-socket clients that send too much, too slowly or never
read, repeated from a thread (a siege) while another client is served.

    def test_x(start_gatekeeper):                        # conftest: gatekeeper_starter as a fixture
        gk = start_gatekeeper(max_header_count=20)        # a process of its own: clean VmHWM
        siege, response, during = under_siege(gk, lambda: stream_head(gk, head, b"a", MiB))

"Served meanwhile" means: the other client's request completed, with the right answer, while
the attacking thread was still attacking; never a latency threshold. Every loop is bounded by
count and time.
"""

from __future__ import annotations

import re
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream, gatekeeper_config
from tests.support.servers import ProcessHandle, run_process, terminating

MiB = 1024 * 1024
RSS_GROWTH_LIMIT = 32 * MiB  # the attacks below send 24-64 MiB; unbounded, they cost 2-10x that
ATTACK_SECONDS = 60.0  # bound on any attacking loop: a broken test ends, it never hangs
SEND_CHUNK = 64 * 1024


@contextmanager
def gatekeeper_starter(
    tmp_path: Path, issuer: DevIssuer, upstream: Upstream
) -> Iterator[Callable[..., Gatekeeper]]:
    """Start a gatekeeper process per call, all stopped on exit (a clean VmHWM each). The
    function-scoped ``start_gatekeeper`` fixture (tests/conftest.py) wraps it."""
    handles: list[ProcessHandle] = []
    # terminating(), left first, signals all the processes; the stack then waits for each.
    with ExitStack() as stack, terminating(handles):
        def start(upstream_url: str | None = None, **overrides: Any) -> Gatekeeper:
            config = gatekeeper_config(issuer, upstream_url or upstream.url, **overrides)
            path = tmp_path / f"gatekeeper-{len(list(tmp_path.iterdir()))}.yaml"
            path.write_text(yaml.safe_dump(config))
            admin_url = f"http://{config['admin_listen']}"
            handle = stack.enter_context(run_process(
                [sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                # The admin port answers during startup, a moment before the public one listens.
                ready_url=f"{admin_url}/healthz", ready_port=int(config["listen"].rsplit(":", 1)[1])))
            handles.append(handle)
            return Gatekeeper(url=f"http://{config['listen']}", admin_url=admin_url,
                              process=handle, config=config, config_path=path)
        yield start


def address(gk: Gatekeeper) -> tuple[str, int]:
    host, port = gk.config["listen"].rsplit(":", 1)
    return host, int(port)


@dataclass
class Attack:
    """What one attacking connection got back."""

    sent: int = 0
    received: bytes = b""
    closed: bool = False  # the server closed (or reset) the connection

    @property
    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.received)]


def read_available(sock: socket.socket, attack: Attack, wait: float = 0.0) -> None:
    """Read what has arrived (within ``wait`` s of silence), noting a close."""
    while select.select([sock], [], [], wait)[0]:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            chunk = b""
        if not chunk:
            attack.closed = True
            return
        attack.received += chunk


def stream_head(gk: Gatekeeper, head: bytes, filler: bytes, volume: int,
                tail: bytes = b"\r\n\r\n") -> Attack:
    """Send ``head``, then ``filler`` repeated up to ``volume`` bytes, then ``tail``, as long as
    the server keeps reading; return what it answered."""
    attack = Attack()
    with socket.create_connection(address(gk), timeout=30) as sock:
        try:
            sock.sendall(head)
            attack.sent = len(head)
            chunk = filler * (SEND_CHUNK // max(1, len(filler)))
            while attack.sent < volume and not attack.closed and not attack.received:
                sock.sendall(chunk)
                attack.sent += len(chunk)
                read_available(sock, attack)
            sock.sendall(tail)
        except (BrokenPipeError, ConnectionResetError):
            attack.closed = True
        read_available(sock, attack, wait=30)
    return attack


@dataclass
class Siege:
    """An attack repeated from a thread until told to stop (bounded by rounds and time)."""

    attack: Callable[[], Any]
    max_rounds: int = 100_000
    results: list[Any] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    failure: list[BaseException] = field(default_factory=list)

    def run(self) -> None:
        deadline = time.monotonic() + ATTACK_SECONDS
        try:
            while (not self.stop.is_set() and len(self.results) < self.max_rounds
                   and time.monotonic() < deadline):
                self.started.set()
                self.results.append(self.attack())
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.failure.append(exc)
        finally:
            self.started.set()
            self.finished.set()


def under_siege(gk: Gatekeeper, attack: Callable[[], Any],
                max_rounds: int = 100_000) -> tuple[Siege, httpx.Response, bool]:
    """Run ``attack`` in a loop; meanwhile fetch /public/served as another client. Returns the
    siege, that client's response, and whether the siege was still going when it completed."""
    siege = Siege(attack, max_rounds)
    thread = threading.Thread(target=siege.run, daemon=True)
    thread.start()
    try:
        assert siege.started.wait(ATTACK_SECONDS)
        time.sleep(0.05)  # let the first attacking bytes reach gatekeeper
        with gk.client(timeout=ATTACK_SECONDS) as client:
            response = client.get("/public/served")
        during = not siege.finished.is_set()
    finally:
        siege.stop.set()
        thread.join(ATTACK_SECONDS + 30)
    assert not siege.failure, (siege.failure, gk.process.output()[-3000:])
    return siege, response, during


def assert_served(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.json()["path"] == "/public/served"


def drip(gk: Gatekeeper, data: bytes, interval: float) -> Attack:
    """Send ``data`` one byte every ``interval`` s (slowloris) while the server listens."""
    attack = Attack()
    with socket.create_connection(address(gk), timeout=30) as sock:
        try:
            for byte in data:
                sock.sendall(bytes([byte]))
                attack.sent += 1
                read_available(sock, attack, wait=interval)
                if attack.closed or attack.received:
                    break
        except (BrokenPipeError, ConnectionResetError):
            attack.closed = True
        read_available(sock, attack, wait=30)
    return attack


def drip_body(gk: Gatekeeper, head: bytes, body: bytes, interval: float,
              step: int = 1) -> Attack:
    """Send ``head`` at once, then ``body`` ``step`` bytes every ``interval`` s."""
    attack = Attack()
    with socket.create_connection(address(gk), timeout=30) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(body), step):
                read_available(sock, attack, wait=interval)
                if attack.closed or attack.received:
                    break
                sock.sendall(body[start:start + step])
                attack.sent += len(body[start:start + step])
        except (BrokenPipeError, ConnectionResetError):
            attack.closed = True
        read_available(sock, attack, wait=30)
    return attack


def hold_unread(gk: Gatekeeper, request: bytes, hold: float) -> Attack:
    """Ask for a large answer and never read it; return once the server cuts the connection
    off (or after ``hold`` s)."""
    attack = Attack()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(address(gk))
        sock.sendall(request)
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):  # reset by the server
                attack.closed = True
                break
            time.sleep(0.1)
    return attack


def pipeline_unread(gk: Gatekeeper, request: bytes, volume: int) -> tuple[socket.socket, Attack]:
    """Send ``request`` repeated up to ``volume`` bytes at once (pipelined) on a connection that
    reads only the first answer, which proves gatekeeper parsed the read that held the first
    request; return the connection, still open, for the caller to close."""
    attack = Attack()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)  # a server that stops reading ends the sending, not the test
    sock.connect(address(gk))
    data = request * (volume // len(request))
    try:
        sock.sendall(data)
        attack.sent = len(data)
    except TimeoutError:
        pass
    deadline = time.monotonic() + ATTACK_SECONDS
    while not attack.statuses and time.monotonic() < deadline:  # no more than the first
        try:
            chunk = sock.recv(512)
        except TimeoutError:
            continue
        if not chunk:
            attack.closed = True
            break
        attack.received += chunk
    return sock, attack


def wait_closed(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes; TimeoutError if it keeps the connection open."""
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


PING = b"\x89\xfd" + b"\0\0\0\0" + b"p" * 125  # masked with zeros: the payload as is
EMPTY_FRAGMENT = b"\x00\x80\0\0\0\0"  # a continuation frame without payload


def ping_flood(gk: Gatekeeper, volume: int, frames: bytes = PING * 512,
               first: bytes = b"") -> Attack:
    """Open a WebSocket by hand, send ``first``, then ``frames`` until ``volume`` bytes; never
    read (each ping makes the server write a pong)."""
    attack = Attack()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)  # gatekeeper taking nothing for 5 s ends the flood
        sock.connect(address(gk))
        sock.sendall(b"GET /public/ws HTTP/1.1\r\nHost: gk.test\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        while b"\r\n\r\n" not in attack.received:
            attack.received += sock.recv(1)  # the handshake answer only, byte by byte
        try:
            sock.sendall(first)
            while attack.sent < volume:
                sock.sendall(frames)
                attack.sent += len(frames)
                read_available(sock, attack)
                if attack.closed:
                    break
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            attack.closed = True
    return attack


