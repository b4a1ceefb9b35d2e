"""Resources bounded against hostile peers on the WebSocket and app sides: messages bounded
both ways (payload, deflate, fragments), a client that never reads its pongs, and an app whose
extra or late answers must never reach the next request. Helpers: tests/support/attacks.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import Gatekeeper
from tests.support.attacks import (
    EMPTY_FRAGMENT,
    RSS_GROWTH_LIMIT,
    MiB,
    assert_served,
    ping_flood,
    under_siege,
)
from tests.support.fakes import run
from tests.support.servers import peak_rss_bytes, serve_asgi

# -- §2.8 WebSocket messages bounded both ways --------------------------------------------------

class BigMessageApp:
    """A WebSocket app that sends ``big:N`` back as one message of N bytes, and records the size
    of every message it receives."""

    def __init__(self) -> None:
        self.received: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # /public/served, for the client served meanwhile
            body = json.dumps({"path": scope["path"]}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            self.received.append(len(data))
            if data.startswith(b"big:"):
                await send({"type": "websocket.send", "bytes": b"x" * int(data[4:])})


@pytest.fixture(scope="module")
def big_message_app() -> Iterator[tuple[str, BigMessageApp]]:
    app = BigMessageApp()
    # The app's own server must not be the limit being tested.
    with serve_asgi(app, lifespan="off", ws_max_size=1 << 30) as url:
        yield url, app


def _ws_session(gk: Gatekeeper, first: bytes, compression: str | None) -> tuple[int | None, int]:
    """Send ``first``; return the close code and how many bytes came back before the close."""
    async def session() -> tuple[int | None, int]:
        url = gk.url.replace("http://", "ws://") + "/public/ws"
        received = 0
        async with ws_connect(url, proxy=None, open_timeout=10, max_size=None,
                              compression=compression) as ws:
            try:
                await ws.send(first)  # the close may come while this is still being written
                while True:
                    received += len(await asyncio.wait_for(ws.recv(), 30))
            except ConnectionClosed:
                pass
            return ws.close_code, received
    return run(session())


@pytest.mark.parametrize(("first", "compression"), [
    pytest.param(b"big:%d" % (48 * MiB), None, id="a 48 MiB message from the app is closed 1009"),
    pytest.param(b"\0" * (12 * MiB), "deflate",
                 id="a client's 12 MiB message deflated to a few KiB is closed 1009"),
    pytest.param(b"\0" * (2 * MiB), None, id="a client's 2 MiB message is closed 1009"),
])
def test_a_websocket_message_over_the_limit_is_closed_1009_either_way(
    start_gatekeeper: Callable[..., Gatekeeper], big_message_app: tuple[str, BigMessageApp],
    first: bytes, compression: str | None,
) -> None:
    url, app = big_message_app
    gk = start_gatekeeper(url)  # websocket_max_message_bytes: the 1 MiB default
    app.received.clear()
    before = peak_rss_bytes(gk.process.pid)
    siege, response, during = under_siege(gk, lambda: _ws_session(gk, first, compression))
    growth = peak_rss_bytes(gk.process.pid) - before
    assert siege.results[0] == (1009, 0)
    assert all(size < MiB for size in app.received)  # nothing over the limit reached the app
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB"
    assert_served(response)
    assert during


def test_a_websocket_message_within_the_limit_passes_both_ways(
    start_gatekeeper: Callable[..., Gatekeeper], big_message_app: tuple[str, BigMessageApp],
) -> None:
    url, app = big_message_app
    gk = start_gatekeeper(url, websocket_max_message_bytes=2 * MiB)

    async def session() -> tuple[int, int, int]:
        async with ws_connect(gk.url.replace("http://", "ws://") + "/public/ws", proxy=None,
                              open_timeout=10, max_size=None) as ws:
            await ws.send(b"big:%d" % (2 * MiB))
            echoed = len(await asyncio.wait_for(ws.recv(), 30))
            await ws.send(b"y" * (2 * MiB))
            await ws.send([b"z" * 1024] * 1024)  # one message in 1,024 fragments
            await ws.send(b"big:0")  # a round trip: both were delivered before it
            await asyncio.wait_for(ws.recv(), 30)
            return echoed, app.received[-3], app.received[-2]

    assert run(session()) == (2 * MiB, 2 * MiB, MiB)


def test_a_client_that_pings_and_never_reads_the_pongs_is_no_longer_read(
    start_gatekeeper: Callable[..., Gatekeeper], big_message_app: tuple[str, BigMessageApp],
) -> None:
    url, _ = big_message_app
    gk = start_gatekeeper(url)
    before = peak_rss_bytes(gk.process.pid)
    siege, response, during = under_siege(gk, lambda: ping_flood(gk, 256 * MiB), max_rounds=3)
    growth = peak_rss_bytes(gk.process.pid) - before
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB"
    first = siege.results[0]
    assert first.statuses == [101]
    assert first.sent < 256 * MiB  # gatekeeper stopped taking pings it could not answer
    assert_served(response)
    assert during


def test_a_message_of_millions_of_empty_fragments_is_closed_1009(
    start_gatekeeper: Callable[..., Gatekeeper], big_message_app: tuple[str, BigMessageApp],
) -> None:
    # Each fragment adds no payload, so a limit on payload bytes alone never trips, while the
    # server keeps one list entry per fragment until the message ends.
    url, _ = big_message_app
    gk = start_gatekeeper(url)
    before = peak_rss_bytes(gk.process.pid)
    siege, response, during = under_siege(gk, lambda: ping_flood(
        gk, 128 * MiB, EMPTY_FRAGMENT * 10_000, first=b"\x01\x80\0\0\0\0"), max_rounds=3)
    growth = peak_rss_bytes(gk.process.pid) - before
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB"
    first = siege.results[0]
    # Closed (1009, though a reset may overtake the close frame) long before the flood's end.
    assert first.closed and first.sent < 128 * MiB
    assert_served(response)
    assert during


# -- §2.6 a pooled upstream connection with bytes nobody asked for is never reused ------------

class HostileApp:
    """An HTTP/1.1 app on a raw socket that answers some requests twice or late.

    ``/twice/ID``: the answer, then at once a second answer in the same write.
    ``/twice-later/ID``: the answer, then a second one a moment later, while the connection
    is idle in gatekeeper's pool (``stray_sent`` is set once it is written).
    ``/late/ID``: one answer, after ``late_seconds`` (past gatekeeper's timeout).
    Anything else: ``for:PATH``. Every stray answer says ``stray:ID``.
    """

    def __init__(self, late_seconds: float) -> None:
        self.late_seconds = late_seconds
        self.stray_sent = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._closing = False

    @staticmethod
    def answer(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%b" % (
            len(body), body)

    def serve(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                path = head.split(b" ")[1]
                kind, _, ident = path.removeprefix(b"/public/").partition(b"/")
                try:
                    if kind == b"twice":
                        conn.sendall(self.answer(b"for:" + path) + self.answer(b"stray:" + ident))
                    elif kind == b"twice-later":
                        conn.sendall(self.answer(b"for:" + path))
                        time.sleep(0.2)
                        conn.sendall(self.answer(b"stray:" + ident))
                        self.stray_sent.set()
                    elif kind == b"late":
                        time.sleep(self.late_seconds)
                        conn.sendall(self.answer(b"stray:" + ident))
                    else:
                        conn.sendall(self.answer(b"for:" + path))
                except OSError:
                    return

    def close(self) -> None:
        self._closing = True
        self._server.close()


@pytest.fixture
def hostile_app() -> Iterator[HostileApp]:
    app = HostileApp(late_seconds=2.0)
    thread = threading.Thread(target=app.serve, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        app.close()


@pytest.mark.parametrize(("first", "first_status"), [
    # Two answers in one read: the app is out of step, its answer is not trusted (502).
    pytest.param("/public/twice/a", 502, id="a second answer in the same write"),
    pytest.param("/public/twice-later/a", 200, id="a second answer while idle in the pool"),
    pytest.param("/public/late/a", 504, id="an answer after the timeout"),
])
def test_an_answer_nobody_asked_for_never_reaches_the_next_request(
    start_gatekeeper: Callable[..., Gatekeeper], hostile_app: HostileApp, first: str,
    first_status: int,
) -> None:
    # One pooled connection: the next request would take the very connection the stray is on.
    gk = start_gatekeeper(hostile_app.url, upstream_max_connections=1, upstream_timeout_seconds=1)
    with gk.client(timeout=30) as client:
        response = client.get(first)
        assert response.status_code == first_status
        if first_status == 200:
            assert response.text == "for:" + first
        if "later" in first:
            assert hostile_app.stray_sent.wait(10)
        if "late" in first:  # the late answer has gone out by now, in reach of the next request
            time.sleep(hostile_app.late_seconds)
        answers = [client.get(f"/public/next/{n}") for n in range(3)]
    assert [(r.status_code, r.text) for r in answers] == [
        (200, f"for:/public/next/{n}") for n in range(3)]
