"""The two HTTP/1.1 protocols (``server.http``: gatekeeper's own, http11.py, and uvicorn's with
gatekeeper's guards, protocol.py) driven in process through a recording transport: the same
conformance table runs against both; what only gatekeeper's own promises is marked so.

The e2e suite runs against either with GK_TEST_SERVER_HTTP=gatekeeper|uvicorn (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.server import ServerState

from gatekeeper.server.choice import http_protocol
from gatekeeper.server.limits import ConnectionLimits
from gatekeeper.settings.server import HttpProtocol
from tests.support.fakes import run

PROTOCOLS: list[HttpProtocol] = ["gatekeeper", "uvicorn"]
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
LIMITS = ConnectionLimits(max_request_line_bytes=256, max_header_bytes=4096, max_header_count=10,
                          max_connections=2)


class RecordingTransport(asyncio.Transport):
    """What a protocol wrote, and whether it reads, writes or closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True
        self.buffered = 0
        self.protocol: asyncio.BaseProtocol | None = None

    @property
    def sent(self) -> bytes:
        return b"".join(self.writes)

    def write(self, data: Any) -> None:
        if not self.closed:
            self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4180)}.get(name, default)


class Wire:
    """One protocol instance per connection, all sharing one server state (as in a worker)."""

    def __init__(self, kind: HttpProtocol, app: App, limits: ConnectionLimits = LIMITS) -> None:
        self.config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                                     ws="none")
        self.config.load()
        self.state = ServerState()
        self.factory = http_protocol(kind, limits)

    def connect(self) -> tuple[asyncio.Protocol, RecordingTransport]:
        protocol = self.factory(config=self.config, server_state=self.state,  # type: ignore[call-arg]
                                app_state={})
        transport = RecordingTransport()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return protocol, transport


async def settle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


def answer(body: bytes = b"ok", status: int = 200) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    return app


def statuses(data: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]


GET = b"GET /a HTTP/1.1\r\nHost: gk.test\r\n\r\n"


# -- the limits and the refusals ---------------------------------------------------------------


@pytest.mark.parametrize("kind", PROTOCOLS)
@pytest.mark.parametrize(("head", "status"), [
    pytest.param(b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, id="a long request line: 414"),
    pytest.param(b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 11 + b"\r\n", 431, id="too many headers: 431"),
    pytest.param(b"GET / HTTP/1.1\r\nX-A: " + b"b" * 5000 + b"\r\n\r\n", 431, id="a header too large: 431"),
    pytest.param(b"GET / HTTP/1.1\r\nX-A: " + b"b" * 9000, 431,
                 id="an unfinished header over the raw budget: 431"),
    pytest.param(b"GET http://elsewhere/ HTTP/1.1\r\nHost: gk.test\r\n\r\n", 400, id="another host: 400"),
    pytest.param(b"GET /a#b HTTP/1.1\r\nHost: gk.test\r\n\r\n", 400, id="a fragment: 400"),
    pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n", 400, id="Content-Length and Transfer-Encoding: 400"),
    pytest.param(b"GET / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n", 400, id="a bare LF: 400"),
])
def test_a_head_over_a_limit_or_malformed_is_refused_and_closed(
        kind: HttpProtocol, head: bytes, status: int) -> None:
    async def main() -> RecordingTransport:
        wire = Wire(kind, answer())
        protocol, transport = wire.connect()
        protocol.data_received(head)
        await settle()
        return transport

    transport = run(main())
    assert statuses(transport.sent) == [status]
    assert transport.closed


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_one_connection_over_max_connections_is_503_before_it_sends_a_byte(kind: HttpProtocol) -> None:
    async def main() -> list[RecordingTransport]:
        wire = Wire(kind, answer())
        return [wire.connect()[1] for _ in range(3)]

    first, second, third = run(main())
    assert (first.sent, second.sent, statuses(third.sent)) == (b"", b"", [503])
    assert third.closed and not first.closed


# -- the scope --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/a", "/a%20b/c?x=%2F&y", "/?", "/%e2%82%ac", "http://gk.test/p?q"])
def test_both_protocols_build_the_same_scope(target: str) -> None:
    async def scope_of(kind: HttpProtocol) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.update(scope)
            await answer()(scope, receive, send)

        wire = Wire(kind, app)
        protocol, _transport = wire.connect()
        protocol.data_received(f"GET {target} HTTP/1.1\r\nHost: gk.test\r\nX-Two: a \r\n"
                               "x-two: b\r\n\r\n".encode())
        await settle()
        return seen

    ours, theirs = run(scope_of("gatekeeper")), run(scope_of("uvicorn"))
    assert ours["headers"] == [(b"host", b"gk.test"), (b"x-two", b"a"), (b"x-two", b"b")]
    assert ours == theirs


# -- keep-alive, pipelining, 100-continue -------------------------------------------------------


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_pipelined_requests_are_answered_in_order_one_at_a_time(kind: HttpProtocol) -> None:
    order: list[str] = []

    async def main() -> tuple[RecordingTransport, list[str]]:
        gate = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            order.append(f"start {scope['path']}")
            if scope["path"] == "/1":
                await gate.wait()
            await answer(scope["path"].encode())(scope, receive, send)
            order.append(f"end {scope['path']}")

        wire = Wire(kind, app)
        protocol, transport = wire.connect()
        protocol.data_received(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in (1, 2, 3)))
        await settle()
        assert order == ["start /1"]  # the others wait, parsed or not
        gate.set()
        await settle(60)
        return transport, order

    transport, seen = run(main())
    assert seen == ["start /1", "end /1", "start /2", "end /2", "start /3", "end /3"]
    bodies = [part[-2:] for part in transport.sent.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"/1", b"/2", b"/3"] and not transport.closed


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_100_continue_is_sent_only_when_the_app_reads_the_body(kind: HttpProtocol) -> None:
    async def main(allow: bool) -> RecordingTransport:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if allow:
                message = await receive()
                assert message["body"] == b"hello"
            await answer(status=200 if allow else 401)(scope, receive, send)

        wire = Wire(kind, app)
        protocol, transport = wire.connect()
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               b"Content-Length: 5\r\n\r\n")
        await settle()
        if allow:
            assert transport.sent == b"HTTP/1.1 100 Continue\r\n\r\n"
            protocol.data_received(b"hello")
            await settle()
        return transport

    allowed, refused = run(main(True)), run(main(False))
    assert statuses(allowed.sent) == [100, 200]
    assert statuses(refused.sent) == [401]  # never asked for the body of a refused request


def test_an_answer_before_an_expected_body_closes_the_connection() -> None:
    """Gatekeeper's own only: the client may send the body or the next request now; either
    would be misread, so the answer says close (RFC 9110 §10.1.1). uvicorn keeps it open."""
    async def main() -> RecordingTransport:
        wire = Wire("gatekeeper", answer(status=401))
        protocol, transport = wire.connect()
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                               b"Content-Length: 5\r\n\r\n")
        await settle()
        return transport

    transport = run(main())
    assert statuses(transport.sent) == [401]
    assert b"\r\nconnection: close\r\n" in transport.sent and transport.closed


# -- writes and flow control ---------------------------------------------------------------------


def test_the_head_and_a_small_body_go_out_in_one_write() -> None:
    """Gatekeeper's own only (uvicorn writes the head, then the body)."""
    async def main() -> RecordingTransport:
        wire = Wire("gatekeeper", answer(b"x" * 1000))
        protocol, transport = wire.connect()
        protocol.data_received(GET)
        await settle()
        return transport

    transport = run(main())
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n" + b"x" * 1000)


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_a_client_that_does_not_read_holds_the_app_not_gatekeepers_memory(kind: HttpProtocol) -> None:
    chunk = b"y" * 65536

    async def main() -> tuple[int, int, RecordingTransport]:
        sent = 0

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            nonlocal sent
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(100):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent += 1
            await send({"type": "http.response.body", "body": b""})

        wire = Wire(kind, app)
        protocol, transport = wire.connect()
        protocol.pause_writing()  # the transport's buffer is over its high-water mark
        protocol.data_received(GET)
        await settle()
        while_paused = sent
        protocol.resume_writing()
        await settle(400)
        return while_paused, sent, transport

    while_paused, total, transport = run(main())
    assert while_paused == 0  # the app waits for the client, gatekeeper holds nothing of it
    assert total == 100 and transport.sent.endswith(b"0\r\n\r\n")


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_reading_pauses_while_the_app_does_not_take_the_body_and_resumes_when_it_does(
        kind: HttpProtocol) -> None:
    async def main() -> tuple[bool, bool, int]:
        take = asyncio.Event()
        got = 0

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            nonlocal got
            await take.wait()
            more = True
            while more:
                message = await receive()
                got += len(message["body"])
                more = message["more_body"]
            await answer()(scope, receive, send)

        wire = Wire(kind, app)
        protocol, transport = wire.connect()
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        for _ in range(3):
            protocol.data_received(b"z" * 50000)
        await settle()
        paused = not transport.reading
        take.set()
        await settle()
        resumed = transport.reading
        protocol.data_received(b"z" * 150000)
        await settle()
        return paused, resumed, got

    paused, resumed, got = run(main())
    assert paused and resumed and got == 300000


# -- memory ---------------------------------------------------------------------------------------


CLOSED_CONNECTIONS = {  # what the client sends, the answers it may read before the close
    "a header line over the limit":
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 300_000, [431]),
    "too many small headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a:b\r\n" * 60_000, [431]),
    "a request target over the limit": (b"GET /" + b"a" * 300_000, [414]),
    "two requests served, the second saying close":
        (GET + GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"), [200, 200]),
}


@pytest.mark.parametrize("kind", PROTOCOLS)
@pytest.mark.parametrize(("data", "answers"), CLOSED_CONNECTIONS.values(),
                         ids=CLOSED_CONNECTIONS.keys())
def test_a_closed_connection_is_freed_at_once_not_at_the_next_cyclic_gc(
        kind: HttpProtocol, data: bytes, answers: list[int]) -> None:
    """What a connection held (a head up to the limits) must go when it closes: left in
    reference cycles, it waited for a full pass of the cyclic GC, and a flood of refused heads
    kept tens of KiB per connection meanwhile (bench/RESULTS.md, "Head floods"). A real
    server on 127.0.0.1 under uvloop (as gatekeeper runs), the cyclic GC off throughout."""
    async def main() -> tuple[bytes, list[weakref.ref[asyncio.Protocol]]]:
        wire = Wire(kind, answer(), ConnectionLimits())
        made: list[weakref.ref[asyncio.Protocol]] = []

        def factory() -> asyncio.Protocol:
            protocol = wire.factory(config=wire.config, server_state=wire.state,  # type: ignore[call-arg]
                                    app_state={})
            made.append(weakref.ref(protocol))
            return protocol

        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        answered = b""
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1])
            writer.write(data)
            with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread
                while chunk := await asyncio.wait_for(reader.read(65536), 30):
                    answered += chunk
            writer.close()
            await settle()
        finally:
            server.close()
            await server.wait_closed()
        return answered, made

    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            answered, made = runner.run(main())
        alive = [ref() for ref in made]
    finally:
        gc.enable()
    seen = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", answered)]
    assert seen in (answers, [])  # the refusal, unless a reset overtook it
    assert len(alive) == 1 and alive == [None]
