"""The streaming proxy end to end: targets, framing, streaming, errors, WebSocket, keep-alive.

Gatekeeper runs as a real process between the test and the recording upstream. Hostile request
shapes go over a bare socket (``raw_request``) because httpx would normalize or refuse them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.fakes import mint, run
from tests.support.servers import free_port, peak_rss_bytes
from tests.support.upstream import HEAD_BODY_LENGTH, pattern_bytes, pattern_sha256

# The full 1 GiB each way: ~4-7 s per direction on this 2-core box (hash checks included).
STREAM_BYTES = 1 << 30
STREAM_CHUNK = 1 << 20
RSS_GROWTH_LIMIT = 100 * 1024 * 1024
STALL_LIMIT = 64 * 1024 * 1024  # loopback socket buffers (a few MiB each) + high-water marks


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    return mint(issuer, "alice")


@pytest.fixture(scope="module")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _client(gk: Gatekeeper, timeout: float) -> httpx.Client:
    # Gatekeeper.client() fixes timeout=30 (tests/conftest.py), so build one with another.
    return httpx.Client(base_url=gk.url, trust_env=False, timeout=timeout)


def _raw_get(target: str, token: str) -> bytes:
    return request_bytes("GET", target, [("Host", "gk.test"), ("Authorization", f"Bearer {token}")])


# -- request target -----------------------------------------------------------------------------------


def test_a_canonical_target_is_forwarded_byte_for_byte(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str
) -> None:
    response = raw_request(gatekeeper.url, _raw_get("/echo/a%20b?x=%2F&y=1+2", token))
    assert response.status == 200, response.body
    seen = upstream.recorder.last
    assert (seen.raw_path, seen.query_string) == (b"/echo/a%20b", b"x=%2F&y=1+2")


@pytest.mark.parametrize(("target", "canonical", "query"), [
    ("//echo/./x", b"/echo/x", b""),
    ("/%65cho/x", b"/echo/x", b""),
    ("/echo/y/../x?q=%2e%2e/%2F", b"/echo/x", b"q=%2e%2e/%2F"),  # the query is never touched
])
def test_a_non_canonical_target_is_forwarded_in_canonical_form(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str, target: str, canonical: bytes,
    query: bytes,
) -> None:
    response = raw_request(gatekeeper.url, _raw_get(target, token))
    assert response.status == 200, response.body
    seen = upstream.recorder.last
    assert (seen.raw_path, seen.query_string) == (canonical, query)


@pytest.mark.parametrize("target", ["/echo/%2e%2e/x", "/a%2fb", "/a;b", "/a\\b", "/echo/%00"])
def test_a_malformed_target_is_400_and_never_reaches_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str, target: str
) -> None:
    before = len(upstream.recorder)
    response = raw_request(gatekeeper.url, _raw_get(target, token))
    assert response.status == 400
    assert response.json()["error"] == "malformed_target"
    assert len(upstream.recorder) == before


# -- request smuggling shapes ---------------------------------------------------------------------------

_SMUGGLING = {
    "Content-Length and Transfer-Encoding": (
        [("Content-Length", "5"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\nGET /echo/smuggled"),
    "two Content-Length headers": (
        [("Content-Length", "5"), ("Content-Length", "6")], b"hello!"),
    "Content-Length: 5, 5": ([("Content-Length", "5, 5")], b"hello"),
    "Transfer-Encoding: chunked, identity": (
        [("Transfer-Encoding", "chunked, identity")], b"5\r\nhello\r\n0\r\n\r\n"),
    "Transfer-Encoding: xchunked": ([("Transfer-Encoding", "xchunked")], b"5\r\nhello\r\n0\r\n\r\n"),
    "two Transfer-Encoding headers": (
        [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")], b"0\r\n\r\n"),
    "obs-fold header": ([("X-Folded", "a\r\n b"), ("Content-Length", "0")], b""),
    "header line ending in a bare LF": ([("X-Bare", "1\nX-Other: 2"), ("Content-Length", "0")], b""),
    "header line ending in a bare CR": ([("X-Bare", "1\rX-Other: 2"), ("Content-Length", "0")], b""),
    "space before the colon": ([("Content-Length ", "5")], b"hello"),
}


@pytest.mark.parametrize("shape", list(_SMUGGLING))
def test_smuggling_shapes_are_refused_and_never_reach_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str, shape: str
) -> None:
    headers, body = _SMUGGLING[shape]
    data = request_bytes("POST", "/echo/smuggle",
                         [("Host", "gk.test"), ("Authorization", f"Bearer {token}"), *headers], body)
    before = len(upstream.recorder)
    response = raw_request(gatekeeper.url, data)
    assert response.status == 400, (response.status, response.body)
    assert len(upstream.recorder) == before


# -- streaming ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streaming_gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """Its own process, so its peak RSS reflects only the streams."""
    return gatekeeper_factory(upstream_timeout_seconds=60)


def _upload_body(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        size = min(STREAM_CHUNK, total - sent)
        yield pattern_bytes(sent, size)
        sent += size


def test_a_large_upload_streams_without_buffering(
    streaming_gatekeeper: Gatekeeper, upstream: Upstream, auth: dict[str, str]
) -> None:
    gk = streaming_gatekeeper
    peak_before = peak_rss_bytes(gk.process.pid)
    with _client(gk, timeout=120) as client:
        response = client.post("/upload", content=_upload_body(STREAM_BYTES),
                               headers={**auth, "Content-Length": str(STREAM_BYTES)})
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": STREAM_BYTES, "sha256": pattern_sha256(STREAM_BYTES)}
    seen = upstream.recorder.by_path("/upload")[-1]
    assert seen.header_values("content-length") == [str(STREAM_BYTES)]
    assert peak_rss_bytes(gk.process.pid) - peak_before < RSS_GROWTH_LIMIT


def test_a_large_download_streams_without_buffering(
    streaming_gatekeeper: Gatekeeper, upstream: Upstream, auth: dict[str, str]
) -> None:
    gk = streaming_gatekeeper
    peak_before = peak_rss_bytes(gk.process.pid)
    digest = hashlib.sha256()
    received = 0
    with _client(gk, timeout=120) as client, client.stream(
        "GET", f"/stream/download?bytes={STREAM_BYTES}&chunk={STREAM_CHUNK}", headers=auth
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == str(STREAM_BYTES)
        chunks = response.iter_raw(STREAM_CHUNK)
        first = next(chunks)
        digest.update(first)
        received += len(first)
        # A slow reader: the sleep is the stimulus, not a wait. With backpressure the app is held
        # to socket buffers plus gatekeeper's high-water mark, however long the client dawdles.
        time.sleep(1.0)
        sent_while_stalled = upstream.recorder.by_path("/stream/download")[-1].response_bytes_sent
        assert sent_while_stalled < STALL_LIMIT, sent_while_stalled
        for chunk in chunks:
            digest.update(chunk)
            received += len(chunk)
    assert received == STREAM_BYTES
    assert digest.hexdigest() == pattern_sha256(STREAM_BYTES)
    assert peak_rss_bytes(gk.process.pid) - peak_before < RSS_GROWTH_LIMIT


def _bytes_read(pid: int) -> int:
    """All bytes the process has read from sockets and files so far (/proc/PID/io rchar)."""
    with open(f"/proc/{pid}/io", encoding="ascii") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def test_a_client_leaving_a_download_stops_reading_from_the_app(
    gatekeeper: Gatekeeper, auth: dict[str, str]
) -> None:
    read_before = _bytes_read(gatekeeper.process.pid)
    with gatekeeper.client() as client, client.stream(
        "GET", f"/stream/download?bytes={STREAM_BYTES}",
        headers={**auth, "X-Request-Id": "left-download-0001"},
    ) as response:
        assert response.status_code == 200
        next(response.iter_raw(STREAM_CHUNK))
    # The client is gone after its first MiB: gatekeeper must notice, log 499 and drop the app's
    # stream, not read the remaining GiB into the void (the server's send() ignores a gone client).
    assert [e["status"] for e in access_log_entries(gatekeeper, "left-download-0001")] == [499]
    assert _bytes_read(gatekeeper.process.pid) - read_before < STREAM_BYTES // 4


def test_a_chunked_request_body_reaches_the_app_intact(
    gatekeeper: Gatekeeper, upstream: Upstream, auth: dict[str, str]
) -> None:
    parts = [pattern_bytes(i * 1000, 1000 + i) for i in range(50)]
    with gatekeeper.client() as client:
        response = client.post("/upload", content=iter(parts), headers=auth)  # no length: chunked
    whole = b"".join(parts)
    assert response.status_code == 200
    assert response.json() == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}
    assert upstream.recorder.last.header_values("transfer-encoding") == ["chunked"]


def test_a_chunked_response_streams_intact(gatekeeper: Gatekeeper, auth: dict[str, str]) -> None:
    with gatekeeper.client() as client:
        response = client.get("/chunked?parts=20", headers=auth)
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.text == "".join(f"part-{i}\n" for i in range(20))


def test_head_returns_the_length_without_a_body_and_the_next_request_works(
    gatekeeper: Gatekeeper, auth: dict[str, str]
) -> None:
    with gatekeeper.client() as client:
        head = client.head("/head", headers=auth)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(HEAD_BODY_LENGTH)
        assert head.content == b""
        get = client.get("/head", headers=auth)  # same client connection, then a fresh app hop
    assert get.status_code == 200
    assert get.content == b"x" * HEAD_BODY_LENGTH
    raw = raw_request(gatekeeper.url, request_bytes(
        "HEAD", "/head", [("Host", "gk.test"), ("Authorization", auth["Authorization"]),
                          ("Connection", "close")]))
    assert raw.status == 200
    assert raw.raw.endswith(b"\r\n\r\n") and raw.body == b""  # the head, then the close


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str
) -> None:
    host, port = gatekeeper.config["listen"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/upload", [
            ("Host", "gk.test"), ("Authorization", f"Bearer {token}"),
            ("Expect", "100-continue"), ("Content-Length", "5"), ("Connection", "close")]))
        interim = b""
        while b"\r\n\r\n" not in interim and len(interim) < 1000:  # bounded by size and timeout
            data = sock.recv(1000)
            assert data, f"closed before any answer: {interim!r}"
            interim += data
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    head, _, body = (interim.partition(b"\r\n\r\n")[2] + rest).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body) == {"bytes": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}


# -- status codes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 204, 304, 500])
def test_the_status_passes_through(gatekeeper: Gatekeeper, auth: dict[str, str], status: int) -> None:
    with gatekeeper.client() as client:
        response = client.get(f"/status/{status}", headers=auth)
        again = client.get("/echo/after-status", headers=auth)  # the connection stays usable
    assert response.status_code == status
    assert again.status_code == 200


def test_a_redirect_passes_through_with_its_location(gatekeeper: Gatekeeper, auth: dict[str, str]) -> None:
    with gatekeeper.client() as client:
        response = client.get("/status/302", params={"location": "/x?y=1"}, headers=auth)
    assert response.status_code == 302
    assert response.headers.get_list("location") == ["/x?y=1"]


# -- upstream failures ---------------------------------------------------------------------------------


def test_an_upstream_that_refuses_connections_is_502(
    gatekeeper_factory: Callable[..., Gatekeeper], auth: dict[str, str]
) -> None:
    gk = gatekeeper_factory(upstream=f"http://127.0.0.1:{free_port()}")
    with gk.client() as client:
        response = client.get("/echo", headers=auth)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] in ("upstream_refused", "upstream_unavailable")


@pytest.fixture(scope="module")
def impatient_gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    return gatekeeper_factory(upstream_timeout_seconds=1)


def test_an_upstream_slower_than_the_timeout_is_504(
    impatient_gatekeeper: Gatekeeper, auth: dict[str, str]
) -> None:
    with impatient_gatekeeper.client() as client:
        response = client.get("/slow", params={"seconds": "3"}, headers=auth)
        again = client.get("/echo/after-timeout", headers=auth)
    assert response.status_code == 504
    assert response.json()["error"] == "upstream_timeout"
    assert again.status_code == 200


def test_a_stalled_response_body_is_cut_after_the_timeout(
    impatient_gatekeeper: Gatekeeper, auth: dict[str, str]
) -> None:
    # The app sends its headers, then stalls 4 s; gatekeeper gives up after 1 s and cuts the
    # response short. Had it waited, the whole body would arrive and no error would be raised.
    with _client(impatient_gatekeeper, timeout=15) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/slow", params={"seconds": "4", "phase": "body"},
                       headers={**auth, "X-Request-Id": "stalled-body-0001"})
        again = client.get("/echo/after-stall", headers=auth)
    assert again.status_code == 200
    access = access_log_entries(impatient_gatekeeper, "stalled-body-0001")
    assert [(e["path"], e["status"]) for e in access] == [("/slow", 200)]  # as sent, once
    log = impatient_gatekeeper.process.output()
    warnings = [json.loads(line) for line in log.splitlines()
                if "stalled-body-0001" in line and '"level"' in line]
    assert [w["reason"] for w in warnings] == ["upstream_timeout"]
    assert "Exception in ASGI application" not in log


# -- WebSocket -----------------------------------------------------------------------------------------


def _ws_url(gk: Gatekeeper, path: str) -> str:
    return "ws://" + gk.url.split("://", 1)[1] + path


def test_a_websocket_is_relayed_with_identity_headers(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str
) -> None:
    async def session() -> tuple[str, bytes, dict[str, Any], str | None]:
        async with connect(
            _ws_url(gatekeeper, "/ws?room=1"), proxy=None, subprotocols=[Subprotocol("chat.v2")],
            additional_headers={"Authorization": f"Bearer {token}",
                                "X-Auth-Request-User": "mallory", "X_Auth_Request_User": "mallory"},
            open_timeout=10,
        ) as ws:
            await ws.send("hello")
            text = await asyncio.wait_for(ws.recv(), 10)
            await ws.send(b"\x00\x01binary")
            data = await asyncio.wait_for(ws.recv(), 10)
            await ws.send("whoami")
            whoami = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert isinstance(data, bytes)
            return str(text), data, whoami, ws.subprotocol

    text, data, whoami, subprotocol = run(session())
    assert text == "hello"
    assert data == b"\x00\x01binary"
    assert subprotocol == "chat.v2"
    folded = [v for n, v in whoami["headers"] if n.lower().replace("_", "-") == "x-auth-request-user"]
    assert folded == ["alice"]
    assert whoami["path"] == "/ws" and whoami["query"] == "room=1"
    assert whoami["subprotocols"] == ["chat.v2"]


def test_a_websocket_close_code_from_the_app_reaches_the_client(
    gatekeeper: Gatekeeper, token: str
) -> None:
    async def session() -> int | None:
        async with connect(_ws_url(gatekeeper, "/ws"), proxy=None, open_timeout=10,
                           additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send("close:4001")
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return ws.close_code

    assert run(session()) == 4001


@pytest.mark.parametrize("goodbye", ["abort", "close frame without a code"])
def test_a_client_that_vanishes_mid_websocket_is_logged_and_not_an_error(
    gatekeeper: Gatekeeper, token: str, goodbye: str
) -> None:
    request_id = f"ws-goodbye-{goodbye.replace(' ', '-')}"

    async def session() -> None:
        ws = await connect(_ws_url(gatekeeper, "/ws"), proxy=None, open_timeout=10,
                           additional_headers={"Authorization": f"Bearer {token}",
                                               "X-Request-Id": request_id})
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 10) == "hi"
        if goodbye == "abort":
            ws.transport.abort()  # no close frame at all: the server reports 1006
        else:
            ws.transport.write(b"\x88\x80\x00\x00\x00\x00")  # masked close, empty payload: 1005
            ws.transport.close()

    run(session())
    entries = access_log_entries(gatekeeper, request_id)
    assert [(e["path"], e["status"]) for e in entries] == [("/ws", 101)]
    assert "Exception in ASGI application" not in gatekeeper.process.output()


def refused_handshake(gk: Gatekeeper, path: str, headers: dict[str, str]) -> Any:
    """The HTTP answer to a WebSocket handshake that was not accepted."""
    async def handshake() -> Any:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(_ws_url(gk, path), proxy=None, open_timeout=10, additional_headers=headers):
                pass
        return refused.value.response

    return run(handshake())


def test_a_websocket_without_a_token_is_refused_before_the_app_with_the_http_answer(
    gatekeeper: Gatekeeper, upstream: Upstream, token: str
) -> None:
    websockets_before = sum(1 for r in upstream.recorder.requests if r.type == "websocket")
    response = refused_handshake(gatekeeper, "/ws", {"X-Request-Id": "ws-no-token"})
    assert response.status_code == 401  # as for HTTP: the challenge, the JSON error
    assert response.headers["www-authenticate"] == 'Bearer realm="gatekeeper"'
    assert json.loads(response.body)["error"] == "unauthenticated"
    response = refused_handshake(gatekeeper, "/ws", {"Authorization": f"Bearer {token}x",
                                                     "X-Request-Id": "ws-bad-token"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert sum(1 for r in upstream.recorder.requests if r.type == "websocket") == websockets_before
    for request_id in ("ws-no-token", "ws-bad-token"):
        assert [e["status"] for e in access_log_entries(gatekeeper, request_id)] == [401]


def test_a_websocket_the_app_refuses_gets_the_app_s_answer_and_the_log_says_so(
    gatekeeper: Gatekeeper, token: str
) -> None:
    response = refused_handshake(gatekeeper, "/ws/full", {"Authorization": f"Bearer {token}",
                                                          "X-Request-Id": "ws-app-refused"})
    assert response.status_code == 409 and response.body == b"the room is full"
    assert [e["status"] for e in access_log_entries(gatekeeper, "ws-app-refused")] == [409]


def test_a_websocket_to_an_app_that_is_down_is_502(
    gatekeeper_factory: Callable[..., Gatekeeper], token: str
) -> None:
    gk = gatekeeper_factory(upstream=f"http://127.0.0.1:{free_port()}")
    response = refused_handshake(gk, "/ws", {"Authorization": f"Bearer {token}",
                                             "X-Request-Id": "ws-app-down"})
    assert response.status_code == 502
    assert json.loads(response.body)["error"] in ("upstream_refused", "upstream_unavailable")
    assert [e["status"] for e in access_log_entries(gk, "ws-app-down")] == [502]


# -- connections ---------------------------------------------------------------------------------------


def test_keep_alive_connections_to_the_app_are_reused(
    gatekeeper: Gatekeeper, upstream: Upstream, auth: dict[str, str]
) -> None:
    with gatekeeper.client() as client:
        statuses = [client.get("/echo/keep-alive", headers=auth).status_code for _ in range(200)]
    assert statuses == [200] * 200
    ports = {r.client for r in upstream.recorder.by_path("/echo/keep-alive")}
    assert len(upstream.recorder.by_path("/echo/keep-alive")) == 200
    assert len(ports) <= 3, f"{len(ports)} upstream connections for 200 sequential requests"


def test_cookies_set_by_the_app_never_reach_another_client(
    gatekeeper: Gatekeeper, upstream: Upstream, auth: dict[str, str]
) -> None:
    with gatekeeper.client() as first:
        assert len(first.get("/cookies", headers=auth).headers.get_list("set-cookie")) == 2
    with gatekeeper.client() as second:
        assert second.get("/echo/after-cookies", headers=auth).status_code == 200
    assert upstream.recorder.last.header_values("cookie") == []


# -- raw HTTP/1.1 over a bare socket (also used by test_headers and test_lifecycle) ---------------------
# httpx normalizes what it sends (header spelling, dot segments, framing): hostile shapes are written
# byte by byte here.


@dataclass
class RawResponse:
    """One parsed response; ``status`` is 0 when the server closed without answering."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    raw: bytes = b""

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == wanted]

    def json(self) -> Any:
        return json.loads(self.body)


class _Collector:
    def __init__(self, response: RawResponse) -> None:
        self.response = response
        self.parts: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.response.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        self.response.complete = True


def raw_request(url: str, data: bytes, *, timeout: float = 15.0) -> RawResponse:
    """Send ``data`` as-is to the server behind ``url``; read the first response.

    Reads until that response is complete or the server closes (never beyond ``timeout``), so
    requests need not say ``Connection: close``.
    """
    parts = urlsplit(url)
    response = RawResponse()
    collector = _Collector(response)
    parser = httptools.HttpResponseParser(collector)
    deadline = time.monotonic() + timeout
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout) as sock:
        sock.sendall(data)
        while not response.complete:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete response within {timeout} s: {response.raw[:300]!r}")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            response.raw += chunk
            parser.feed_data(chunk)
    if response.raw:
        response.status = parser.get_status_code()
    response.body = b"".join(collector.parts)
    return response


def access_log_entries(gk: Gatekeeper, request_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The access log lines of ``request_id``, once at least one is out (lines are batched)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [entry for entry in map(json.loads, gk.access_log())
                   if entry.get("request_id") == request_id and "status" in entry]
        if entries or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)


def request_bytes(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A request head (+ body) exactly as given: nothing added, nothing normalized."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def test_an_open_websocket_is_closed_when_its_token_expires(
    gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer
) -> None:
    # A recheck period far longer than the token: the close comes from the token's exp itself.
    gk = gatekeeper_factory(websocket_recheck_seconds=600, auth={"leeway_seconds": 0})
    short = issuer.mint("alice", audience=AUDIENCE, ttl_seconds=3)

    async def session() -> tuple[int | None, str | None, float]:
        async with connect(_ws_url(gk, "/ws"), proxy=None, open_timeout=10,
                           additional_headers={"Authorization": f"Bearer {short}",
                                               "X-Request-Id": "ws-expires"}) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 10) == "hi"
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)  # a bound on a broken test, not a timing check
            return ws.close_code, ws.close_reason, time.time()

    code, reason, closed_at = run(session())
    assert code == 1008 and reason == "expired"
    assert closed_at >= jwt.decode(short, options={"verify_signature": False})["exp"]
    assert [e["status"] for e in access_log_entries(gk, "ws-expires")] == [101]
