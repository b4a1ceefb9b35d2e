"""The upstream HTTP/1.1 client against raw asyncio servers that answer canned bytes.

Each test runs its own event loop (``asyncio.run``) with a ``CannedServer`` on 127.0.0.1 whose
``answer(connection, index, head)`` decides, per request, what goes back: bytes; ``Close(bytes)``
to close the connection right after them; an async iterator of parts (to hold a response
midway); or ``None`` to close without an answer. The server records every connection and request
head it saw, so the tests can tell a reused connection from a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import pytest

from gatekeeper.errors import UpstreamTimeout, UpstreamUnavailable
from gatekeeper.upstream import Http1Pool
from tests.support.fakes import run


class Close(bytes):
    """Answer bytes after which the server closes the connection."""


Reply = bytes | AsyncIterator[bytes] | None
Answer = Callable[[int, int, bytes], Awaitable[Reply]]


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: %d" % len(body), *extra]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class CannedServer:
    def __init__(self, answer: Answer, *, read_bodies: bool = True) -> None:
        self._answer = answer
        self._read_bodies = read_bodies
        self.connections: list[list[bytes]] = []  # request heads, per TCP connection
        self.bodies: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> CannedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        if self._handlers:  # let each handler see its connection end (bounded)
            await asyncio.wait(self._handlers, timeout=5)
        await self._server.wait_closed()

    def pool(self, max_connections: int = 4, read_timeout: float = 2.0) -> Http1Pool:
        return Http1Pool("127.0.0.1", self.port, max_connections=max_connections,
                         connect_timeout=2.0, read_timeout=read_timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        heads: list[bytes] = []
        self.connections.append(heads)
        connection = len(self.connections) - 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                if self._read_bodies:
                    self.bodies.append(await _read_body(reader, head))
                answer = await self._answer(connection, len(heads) - 1, head)
                if answer is None:
                    break
                if isinstance(answer, bytes):
                    writer.write(answer)
                    await writer.drain()
                    if isinstance(answer, Close):
                        break
                    continue
                async for part in answer:
                    writer.write(part)
                    await writer.drain()
                if isinstance(part, Close):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    lines = head.lower().split(b"\r\n")
    for line in lines:
        if line.startswith(b"content-length:"):
            return await reader.readexactly(int(line.split(b":")[1]))
    if b"transfer-encoding: chunked" in lines:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                return body
    return b""


def always(*answers: bytes | None) -> Answer:
    """Answer the n-th request of every connection with ``answers[n]`` (the last one repeats)."""
    async def answer(connection: int, index: int, head: bytes) -> Reply:
        return answers[min(index, len(answers) - 1)]
    return answer


def per_connection(*answers: bytes | None) -> Answer:
    """Answer every request on the n-th connection with ``answers[n]`` (the last one repeats)."""
    async def answer(connection: int, index: int, head: bytes) -> Reply:
        return answers[min(connection, len(answers) - 1)]
    return answer


async def fetch(pool: Http1Pool, method: str = "GET", target: bytes = b"/",
                body: AsyncIterator[bytes] | None = None,
                length: int | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = await pool.send(method, target, [(b"host", b"app")], body, length)
    try:
        data = b"".join([chunk async for chunk in response.body()])
    finally:
        await response.aclose()
    return response.status, response.headers, data


async def _settle(pool: Http1Pool) -> None:
    """Let the loop deliver pending connection_lost callbacks (bounded)."""
    for _ in range(50):
        await asyncio.sleep(0)


# -- malformed responses ------------------------------------------------------------------------------

MALFORMED = {
    "Content-Length and Transfer-Encoding":
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two different Content-Length":
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "Content-Length: 2, 2": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk size overflow":
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "header with a bare CR": b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\nContent-Length: 2\r\n\r\nok",
    "header with a bare LF": b"HTTP/1.1 200 OK\r\nX-A: 1\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n Set-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok",
    "Transfer-Encoding: xchunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\nevil",
    "Transfer-Encoding: chunked, identity":
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\nevil",
    "a second response after the first": ok(b"ok") + ok(b"evil", b"Set-Cookie: evil=1"),
    "an invalid status line": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "not HTTP at all": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_a_malformed_response_is_refused_and_its_connection_dropped(shape: str) -> None:
    async def scenario() -> None:
        # The first connection answers malformed; any later one answers correctly.
        async with CannedServer(per_connection(MALFORMED[shape], ok(b"fine"))) as server:
            pool = server.pool()
            with pytest.raises(UpstreamUnavailable) as caught:
                await fetch(pool)
            assert caught.value.status == 502
            assert await fetch(pool) == (200, [(b"Content-Length", b"4")], b"fine")
            assert [len(heads) for heads in server.connections] == [1, 1]  # never reused
            await pool.aclose()

    run(scenario())


def test_the_bytes_of_a_split_response_never_surface() -> None:
    async def scenario() -> list[bytes]:
        split = ok(b"ok") + ok(b"evil", b"Set-Cookie: evil=1")
        seen: list[bytes] = []
        async with CannedServer(always(split)) as server:
            pool = server.pool()
            try:
                response = await pool.send("GET", b"/", [], None, None)
            except UpstreamUnavailable:
                return seen  # refused before the headers: nothing surfaced at all
            seen += [v for _, v in response.headers]
            with contextlib.suppress(UpstreamUnavailable):
                seen += [chunk async for chunk in response.body()]
            await response.aclose()
            await pool.aclose()
        return seen

    assert not any(b"evil" in part for part in run(scenario()))


# -- framing that is allowed ---------------------------------------------------------------------------


def test_a_response_without_length_is_read_until_close_and_not_reused() -> None:
    async def scenario() -> None:
        until_close = Close(b"HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\n" + b"x" * 100_000)
        async with CannedServer(always(until_close)) as server:
            pool = server.pool()
            assert await fetch(pool) == (200, [(b"X-Framing", b"none")], b"x" * 100_000)
            assert (await fetch(pool))[2] == b"x" * 100_000
            assert [len(heads) for heads in server.connections] == [1, 1]
            await pool.aclose()

    run(scenario())


def test_a_response_cut_short_of_its_length_is_an_error() -> None:
    async def scenario() -> None:
        truncated = Close(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        async with CannedServer(always(truncated)) as server:
            with pytest.raises(UpstreamUnavailable):  # before or after the headers surfaced
                await fetch(server.pool())

    run(scenario())


def test_a_response_cut_short_after_its_headers_surfaced_raises_from_the_body() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def answer(connection: int, index: int, head: bytes) -> Reply:
            async def parts() -> AsyncIterator[bytes]:
                yield b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf"
                await gate.wait()
                yield Close(b"")
            return parts()

        async with CannedServer(answer) as server:
            pool = server.pool()
            response = await pool.send("GET", b"/", [], None, None)
            received = b""
            with pytest.raises(UpstreamUnavailable):
                async for chunk in response.body():
                    received += chunk
                    gate.set()
            assert received == b"half"
            await response.aclose()
            await pool.aclose()

    run(scenario())


def test_a_chunked_response_is_decoded() -> None:
    async def scenario() -> None:
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        async with CannedServer(always(chunked)) as server:
            pool = server.pool()
            assert (await fetch(pool))[2] == b"hello world"
            assert (await fetch(pool))[2] == b"hello world"
            assert [len(heads) for heads in server.connections] == [2]
            await pool.aclose()

    run(scenario())


def test_trailers_of_a_chunked_response_never_become_headers() -> None:
    async def scenario() -> None:
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
                   b"2\r\nok\r\n0\r\nX-Checksum: abc\r\nSet-Cookie: evil=1\r\n\r\n")
        async with CannedServer(always(chunked)) as server:
            pool = server.pool()
            status, headers, body = await fetch(pool)
            assert (status, body) == (200, b"ok")
            assert headers == [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-Checksum")]
            assert (await fetch(pool))[1] == headers  # and the connection stays in step
            assert [len(heads) for heads in server.connections] == [2]
            await pool.aclose()

    run(scenario())


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
], ids=["100 Continue", "103 Early Hints", "two interim responses"])
def test_interim_responses_are_skipped_and_only_the_final_one_surfaces(interim: bytes) -> None:
    async def scenario() -> None:
        async with CannedServer(always(interim + ok(b"final", b"X-Final: 1"))) as server:
            pool = server.pool()
            status, headers, body = await fetch(pool)
            assert (status, body) == (200, b"final")
            assert headers == [(b"Content-Length", b"5"), (b"X-Final", b"1")]
            assert (await fetch(pool))[2] == b"final"
            assert [len(heads) for heads in server.connections] == [2]
            await pool.aclose()

    run(scenario())


def test_a_head_response_surfaces_without_waiting_for_a_body() -> None:
    async def scenario() -> None:
        async with CannedServer(always(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")) as server:
            pool = server.pool(read_timeout=5)
            status, headers, body = await asyncio.wait_for(fetch(pool, "HEAD"), 3)
            assert (status, headers, body) == (200, [(b"Content-Length", b"1234")], b"")
            await pool.aclose()

    run(scenario())


# -- keep-alive --------------------------------------------------------------------------------------


def test_two_requests_reuse_one_connection() -> None:
    async def scenario() -> None:
        async with CannedServer(always(ok())) as server:
            pool = server.pool()
            assert await fetch(pool, target=b"/one") == (200, [(b"Content-Length", b"2")], b"ok")
            assert await fetch(pool, target=b"/two") == (200, [(b"Content-Length", b"2")], b"ok")
            assert [len(heads) for heads in server.connections] == [2]
            assert server.connections[0][1].startswith(b"GET /two HTTP/1.1\r\n")
            assert pool.open_connections == 1
            await pool.aclose()

    run(scenario())


@pytest.mark.parametrize("closing", [
    ok(b"ok", b"Connection: close"),
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
], ids=["Connection: close", "HTTP/1.0 without keep-alive"])
def test_a_response_that_ends_the_connection_is_not_reused(closing: bytes) -> None:
    async def scenario() -> None:
        async with CannedServer(always(closing)) as server:
            pool = server.pool()
            assert (await fetch(pool))[2] == b"ok"
            assert (await fetch(pool))[2] == b"ok"
            assert [len(heads) for heads in server.connections] == [1, 1]
            await pool.aclose()

    run(scenario())


def test_an_idle_connection_closed_by_the_app_is_replaced() -> None:
    async def scenario() -> None:
        async with CannedServer(always(Close(ok()))) as server:
            pool = server.pool()
            assert (await fetch(pool))[2] == b"ok"
            # The app closes the idle connection; once the client has seen it, it is gone.
            for _ in range(200):
                if pool.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert pool.open_connections == 0
            assert (await fetch(pool))[2] == b"ok"
            assert [len(heads) for heads in server.connections] == [1, 1]
            await pool.aclose()

    run(scenario())


def test_a_close_racing_a_reused_idempotent_request_is_retried_once_on_a_fresh_connection() -> None:
    # The app answers the first request, then closes the connection when the second arrives
    # without answering it: the race of an idle timeout with a new request.
    async def scenario() -> None:
        async with CannedServer(always(ok(), None)) as server:
            pool = server.pool()
            assert (await fetch(pool, target=b"/one"))[2] == b"ok"
            assert (await fetch(pool, "DELETE", b"/two"))[2] == b"ok"
            assert [[h.split(b"\r\n")[0] for h in heads] for heads in server.connections] == [
                [b"GET /one HTTP/1.1", b"DELETE /two HTTP/1.1"], [b"DELETE /two HTTP/1.1"]]
            await pool.aclose()

    run(scenario())


def test_a_non_idempotent_request_is_never_retried() -> None:
    async def scenario() -> None:
        async with CannedServer(always(ok(), None)) as server:
            pool = server.pool()
            assert (await fetch(pool))[2] == b"ok"
            with pytest.raises(UpstreamUnavailable) as caught:
                await fetch(pool, "POST", b"/once")
            assert caught.value.code == "upstream_closed"
            assert sum(len(heads) for heads in server.connections) == 2  # sent once only
            await pool.aclose()

    run(scenario())


def test_a_retry_happens_at_most_once() -> None:
    async def scenario() -> None:
        async with CannedServer(always(None)) as server:  # every request: close, no answer
            pool = server.pool()
            with pytest.raises(UpstreamUnavailable):
                await fetch(pool)
            assert len(server.connections) == 1  # a fresh connection is not retried
            await pool.aclose()

    run(scenario())


# -- request side ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [
    (b"x-a", b"1\r\nX-Injected: 1"),
    (b"x-a", b"1\nX-Injected: 1"),
    (b"x-a", b"1\rX-Injected: 1"),
    (b"x-a\r\nx-injected", b"1"),
], ids=["CRLF in a value", "LF in a value", "CR in a value", "CRLF in a name"])
def test_a_header_with_cr_or_lf_is_refused_before_anything_is_written(name: bytes, value: bytes) -> None:
    async def scenario() -> None:
        async with CannedServer(always(ok())) as server:
            pool = server.pool()
            with pytest.raises(UpstreamUnavailable) as caught:
                await pool.send("GET", b"/", [(b"host", b"app"), (name, value)], None, None)
            assert caught.value.code == "header_injection"
            await _settle(pool)
            assert server.connections == []
            assert pool.open_connections == 0
            await pool.aclose()

    run(scenario())


def test_a_request_body_is_streamed_with_its_framing() -> None:
    async def scenario() -> None:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"hello ", b"", b"world"):
                yield part

        async with CannedServer(always(ok())) as server:
            pool = server.pool()
            assert (await fetch(pool, "POST", b"/cl", parts(), 11))[0] == 200
            assert (await fetch(pool, "POST", b"/chunked", parts(), None))[0] == 200
            assert (await fetch(pool, "POST", b"/empty", None, None))[0] == 200
            heads = server.connections[0]
            assert b"content-length: 11\r\n" in heads[0]
            assert b"transfer-encoding: chunked\r\n" in heads[1]
            assert b"content-length: 0\r\n" in heads[2]
            assert server.bodies == [b"hello world", b"hello world", b""]
            await pool.aclose()

    run(scenario())


def test_an_answer_before_the_whole_body_was_read_is_forwarded() -> None:
    # Like a 413: the app answers after the head and closes, ignoring the body still being sent.
    async def scenario() -> None:
        async def big() -> AsyncIterator[bytes]:
            for _ in range(200):
                yield b"x" * 65536

        refusal = Close(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n"
                        b"Connection: close\r\n\r\ntoo big!")
        async with CannedServer(per_connection(refusal, ok()), read_bodies=False) as server:
            pool = server.pool()
            assert await fetch(pool, "POST", b"/upload", big(), 200 * 65536) == (
                413, [(b"Content-Length", b"8"), (b"Connection", b"close")], b"too big!")
            assert (await fetch(pool))[0] == 200
            assert len(server.connections) == 2
            await pool.aclose()

    run(scenario())


def test_a_slow_but_steady_request_body_is_not_a_timeout() -> None:
    # The app reads the whole body before it answers; the body takes longer than read_timeout to
    # arrive, but bytes keep flowing, so nobody is stalled.
    async def scenario() -> None:
        async def trickle() -> AsyncIterator[bytes]:
            for _ in range(8):
                await asyncio.sleep(0.1)
                yield b"x" * 100

        async with CannedServer(always(ok())) as server:
            pool = server.pool(read_timeout=0.5)
            assert await fetch(pool, "POST", b"/upload", trickle(), 800) == (
                200, [(b"Content-Length", b"2")], b"ok")
            assert server.bodies == [b"x" * 800]
            await pool.aclose()

    run(scenario())


def test_a_request_body_that_stops_flowing_times_out() -> None:
    async def scenario() -> None:
        async def stall() -> AsyncIterator[bytes]:
            yield b"x" * 10
            await asyncio.Event().wait()  # never more
            yield b""

        async with CannedServer(always(ok())) as server:
            pool = server.pool(read_timeout=0.3)
            with pytest.raises(UpstreamTimeout):
                await asyncio.wait_for(fetch(pool, "POST", b"/upload", stall(), 100), 5)
            await pool.aclose()

    run(scenario())


# -- limits and timeouts -----------------------------------------------------------------------------


def _held_answers(gates: list[asyncio.Event]) -> Answer:
    """The first request on connection n gets its head at once and its body once gates[n] is set."""
    async def answer(connection: int, index: int, head: bytes) -> Reply:
        if index or connection >= len(gates):
            return ok(b"%d" % connection)
        gate = gates[connection]

        async def held() -> AsyncIterator[bytes]:
            yield b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
            await gate.wait()
            yield b"%d" % connection
        return held()
    return answer


def test_the_pool_cap_makes_a_third_request_wait_and_time_out() -> None:
    async def scenario() -> None:
        gates = [asyncio.Event(), asyncio.Event()]
        async with CannedServer(_held_answers(gates)) as server:
            pool = server.pool(max_connections=2, read_timeout=0.3)
            # Two responses in progress hold both connections (their bodies are held).
            first = await pool.send("GET", b"/1", [], None, None)
            second = await pool.send("GET", b"/2", [], None, None)
            with pytest.raises(UpstreamTimeout):
                await pool.send("GET", b"/3", [], None, None)  # no free slot within read_timeout
            assert len(server.connections) == 2  # the third never connected
            for gate, response in zip(gates, (first, second), strict=True):
                gate.set()
                assert b"".join([chunk async for chunk in response.body()]) in (b"0", b"1")
                await response.aclose()
            assert (await fetch(pool, target=b"/4"))[0] == 200  # on a released connection
            assert len(server.connections) == 2
            await pool.aclose()

    run(scenario())


def test_a_request_waiting_at_the_cap_gets_the_next_released_connection() -> None:
    async def scenario() -> None:
        gates = [asyncio.Event(), asyncio.Event()]
        async with CannedServer(_held_answers(gates)) as server:
            pool = server.pool(max_connections=2, read_timeout=5)
            first = await pool.send("GET", b"/1", [], None, None)
            second = await pool.send("GET", b"/2", [], None, None)
            third = asyncio.create_task(fetch(pool, target=b"/3"))
            for _ in range(20):  # let it run as far as it can: it must be stuck at the cap
                await asyncio.sleep(0)
            assert not third.done() and len(server.connections) == 2
            gates[0].set()
            assert b"".join([chunk async for chunk in first.body()]) == b"0"
            await first.aclose()  # complete and keep-alive: handed to the waiting request
            assert await asyncio.wait_for(third, 3) == (200, [(b"Content-Length", b"1")], b"0")
            assert [len(heads) for heads in server.connections] == [2, 1]
            await second.aclose()  # incomplete: closed, and its slot freed
            await _settle(pool)
            assert pool.open_connections == 1
            gates[1].set()  # lets the server's handler finish
            await pool.aclose()

    run(scenario())


def test_a_request_waiting_at_the_cap_gets_the_slot_of_a_closed_connection() -> None:
    async def scenario() -> None:
        gates = [asyncio.Event(), asyncio.Event()]
        async with CannedServer(_held_answers(gates)) as server:
            pool = server.pool(max_connections=2, read_timeout=5)
            first = await pool.send("GET", b"/1", [], None, None)
            second = await pool.send("GET", b"/2", [], None, None)
            third = asyncio.create_task(fetch(pool, target=b"/3"))
            for _ in range(20):
                await asyncio.sleep(0)
            assert not third.done()
            await first.aclose()  # abandoned midway: the connection closes
            assert (await asyncio.wait_for(third, 3))[0] == 200
            assert len(server.connections) == 3
            for gate in gates:  # lets the server's handlers finish
                gate.set()
            await second.aclose()
            await pool.aclose()

    run(scenario())


def test_many_concurrent_requests_share_a_capped_pool_without_leaking_slots() -> None:
    async def scenario() -> None:
        pool: Http1Pool | None = None
        peak = 0

        async def answer(connection: int, index: int, head: bytes) -> Reply:
            nonlocal peak
            assert pool is not None
            peak = max(peak, pool.open_connections)
            await asyncio.sleep(0.001 * (connection % 3))
            if index % 4 == 3:  # every fourth answer on a connection ends it
                return Close(ok(b"ok", b"Connection: close"))
            return ok()

        async with CannedServer(answer) as server:
            pool = server.pool(max_connections=3, read_timeout=5)
            for _ in range(2):  # a leaked slot would starve the second wave
                results = await asyncio.gather(*(fetch(pool, target=b"/%d" % i) for i in range(60)))
                assert [body for _, _, body in results] == [b"ok"] * 60
            assert peak <= 3
            assert 3 < len(server.connections) < 60  # closed ones were replaced, others reused
            await pool.aclose()

    run(scenario())


def test_a_slow_answer_is_a_timeout_and_the_connection_is_dropped() -> None:
    async def scenario() -> None:
        late = asyncio.Event()

        async def answer(connection: int, index: int, head: bytes) -> bytes | None:
            if connection == 0:
                await late.wait()
            return ok()

        async with CannedServer(answer) as server:
            pool = server.pool(read_timeout=0.3)
            with pytest.raises(UpstreamTimeout):
                await fetch(pool)
            late.set()  # a late answer must not be taken for the next request's
            assert (await fetch(pool))[2] == b"ok"
            assert len(server.connections) == 2
            await pool.aclose()

    run(scenario())


@pytest.mark.parametrize("stray", [
    ok(b"stray", b"Set-Cookie: session=someone-else"),
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nst",  # the start of one
    b"X",  # not even a status line
], ids=["a whole second answer", "the start of a second answer", "one stray byte"])
def test_an_idle_connection_holding_unread_bytes_is_never_reused(stray: bytes) -> None:
    # The app's stray bytes reach the kernel while the connection idles in the pool, and the
    # next request takes the connection before the loop has delivered them: they would be read
    # as that request's answer. The pool must look before it reuses.
    async def scenario() -> None:
        async with CannedServer(always(ok(b"mine"))) as server:
            pool = server.pool()
            assert (await fetch(pool, target=b"/first"))[2] == b"mine"
            server._writers[0].write(stray)  # sent at once: the socket's buffer is empty
            time.sleep(0.05)  # loopback delivery, with this loop held (no await here)
            assert (await fetch(pool, target=b"/next"))[2] == b"mine"
            assert [len(heads) for heads in server.connections] == [1, 1]
            await pool.aclose()

    run(scenario())


def test_a_body_that_stalls_is_a_timeout() -> None:
    async def scenario() -> None:
        async with CannedServer(always(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")) as server:
            pool = server.pool(read_timeout=0.3)
            response = await pool.send("GET", b"/", [], None, None)
            received = b""
            with pytest.raises(UpstreamTimeout):
                async for chunk in response.body():
                    received += chunk
            assert received == b"half"
            await response.aclose()
            await pool.aclose()

    run(scenario())


def test_a_refused_connection_is_upstream_refused() -> None:
    async def scenario() -> None:
        async with CannedServer(always(ok())) as server:
            port = server.port
        pool = Http1Pool("127.0.0.1", port, max_connections=1, connect_timeout=1, read_timeout=1)
        for _ in range(3):  # the slot is given back each time
            with pytest.raises(UpstreamUnavailable) as caught:
                await fetch(pool)
            assert caught.value.code == "upstream_refused"
        await pool.aclose()

    run(scenario())
