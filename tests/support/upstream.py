"""A real upstream app that records what reached it. Run it with ``serve_asgi``.

    recorder = Recorder()
    with serve_asgi(create_upstream_app(recorder)) as upstream_url:
        ...  # send traffic through the proxy
        assert recorder.last.header_values("x-auth-request-user") == ["alice"]

Routes (anything else behaves like ``/echo``):
    /echo                      any method; JSON of what arrived (see ``_echo_body``)
    /stream/download?bytes=N&chunk=65536[&chunked=1]
                               N pattern bytes made on the fly (``pattern_sha256(N)`` to check)
    /upload                    JSON {"bytes", "sha256"} of the streamed request body
    /slow?seconds=S[&phase=headers|body]
                               sleep before the headers (default) or between headers and body
    /cookies                   two Set-Cookie headers and a repeated X-Multi header
    /chunked?parts=N&delay=S   a streamed response without Content-Length
    /status/{code}[?location=] that status (Location added when given)
    /head                      GET: a 1234-byte body; HEAD: the same headers, no body
    /hop                       a response carrying hop-by-hop headers
    .../cors-reflect           the classic CORS hole: any Origin reflected with credentials
                               (``Access-Control-Allow-*``), and ``Vary: Accept-Encoding``
    /ws                        WebSocket echo; echoes the first requested subprotocol; "whoami"
                               answers JSON of the handshake; "close" / "close:CODE" closes

Request bodies are never buffered: they are hashed and counted as they stream in, before the
route answers, so a request is in the recorder by the time its response starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "RecordedRequest",
    "Recorder",
    "UpstreamApp",
    "create_upstream_app",
    "pattern_bytes",
    "pattern_sha256",
]

_PATTERN = bytes(range(256))
HEAD_BODY_LENGTH = 1234


def pattern_bytes(offset: int, length: int) -> bytes:
    """Bytes ``offset .. offset+length`` of the endless download pattern 00 01 .. ff 00 01 .."""
    start = offset % 256
    repeats = (start + length) // 256 + 1
    return (_PATTERN * repeats)[start : start + length]


def _pattern_chunks(total: int, chunk: int) -> Iterator[bytes]:
    # chunk is rounded to a multiple of 256 so every chunk after the first is the same object.
    chunk = max(256, chunk - chunk % 256)
    block = _PATTERN * (chunk // 256)
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        yield block if size == chunk else block[:size]
        sent += size


def pattern_sha256(length: int) -> str:
    """sha256 hex of the first ``length`` pattern bytes, computed in 1 MiB steps."""
    digest = hashlib.sha256()
    for part in _pattern_chunks(length, 1 << 20):
        digest.update(part)
    return digest.hexdigest()


@dataclass
class RecordedRequest:
    """What one request (or WebSocket handshake) looked like on arrival."""

    type: str  # "http" | "websocket"
    method: str
    path: str
    raw_path: bytes  # as the server received it, without the query
    query_string: bytes
    headers: list[tuple[bytes, bytes]]  # raw, in order, duplicates and case kept
    http_version: str
    client: tuple[str, int] | None
    started_at: float  # time.monotonic()
    body_bytes: int = 0
    body_sha256: str = hashlib.sha256().hexdigest()
    body_done_at: float | None = None
    disconnected: bool = False  # the client went away before the body ended
    response_bytes_sent: int = 0  # body bytes handed to the server (updated while streaming)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in arrival order."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The single value of ``name``; None if absent; AssertionError if repeated."""
        values = self.header_values(name)
        assert len(values) <= 1, f"{name} arrived {len(values)} times: {values}"
        return values[0] if values else None

    @property
    def header_names(self) -> list[str]:
        return [n.decode("latin-1") for n, _ in self.headers]


@dataclass
class Recorder:
    """Requests in arrival order. Appended from the server thread; read from the test."""

    requests: list[RecordedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            if not self.requests:
                raise AssertionError("the upstream received no request")
            return self.requests[-1]

    def by_path(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self.requests)


def _record(scope: Scope) -> RecordedRequest:
    client = scope.get("client")
    return RecordedRequest(
        type=scope["type"],
        method=scope.get("method", "GET"),
        path=scope["path"],
        raw_path=scope.get("raw_path") or b"",
        query_string=scope.get("query_string", b""),
        headers=[(bytes(n), bytes(v)) for n, v in scope["headers"]],
        http_version=scope.get("http_version", ""),
        client=(client[0], client[1]) if client else None,
        started_at=time.monotonic(),
    )


def _params(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {name: values[-1] for name, values in parsed.items()}


def _echo_body(record: RecordedRequest) -> dict[str, Any]:
    return {
        "method": record.method,
        "path": record.path,
        "raw_path": record.raw_path.decode("latin-1"),
        "query": record.query_string.decode("latin-1"),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in record.headers],
        "http_version": record.http_version,
        "body_bytes": record.body_bytes,
        "body_sha256": record.body_sha256,
    }


class _Responder:
    """Sends one HTTP response and counts the body bytes into the record."""

    def __init__(self, send: Send, record: RecordedRequest) -> None:
        self._send = send
        self._record = record

    async def start(self, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await self._send({"type": "http.response.start", "status": status, "headers": headers or []})

    async def body(self, data: bytes, *, more: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})
        self._record.response_bytes_sent += len(data)

    async def json(
        self, payload: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        await self.start(
            status,
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *(headers or []),
            ],
        )
        await self.body(data)


class UpstreamApp:
    """Pure ASGI so that raw_path, raw header lists and streaming are exactly what arrived."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = _record(scope)
        await _drain(receive, record)
        self.recorder.add(record)
        out = _Responder(send, record)
        path: str = scope["path"]
        params = _params(scope)
        if path == "/upload":
            await out.json({"bytes": record.body_bytes, "sha256": record.body_sha256})
        elif path == "/stream/download":
            await _download(out, receive, params, record)
        elif path == "/slow":
            await _slow(out, params)
        elif path == "/cookies":
            await _cookies(out)
        elif path == "/chunked":
            await _chunked(out, params)
        elif path.startswith("/status/") and path[len("/status/") :].isdigit():
            await _status(out, int(path[len("/status/") :]), params)
        elif path == "/head":
            await _head(out, record.method)
        elif path.endswith("/cors-reflect"):
            origin = (record.header_values("origin") or ["*"])[0]
            await out.json(_echo_body(record), headers=[
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"Access-Control-Allow-Credentials", b"true"),
                (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, PATCH"),
                (b"access-control-allow-headers", b"*"),
                (b"access-control-expose-headers", b"*"),
                (b"vary", b"Accept-Encoding")])
        elif path == "/hop":
            await out.json(
                {"hop": True},
                headers=[
                    (b"connection", b"X-Secret-Hop"),
                    (b"x-secret-hop", b"1"),
                    (b"keep-alive", b"timeout=5"),
                ],
            )
        else:
            await out.json(_echo_body(record))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = _record(scope)
        self.recorder.add(record)
        if (await receive())["type"] != "websocket.connect":
            return
        if scope["path"] == "/ws/full":  # the app refuses this one with an HTTP answer of its own
            await send({"type": "websocket.http.response.start", "status": 409,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "websocket.http.response.body", "body": b"the room is full"})
            return
        subprotocols: list[str] = scope.get("subprotocols") or []
        accept: Message = {"type": "websocket.accept"}
        if subprotocols:
            accept["subprotocol"] = subprotocols[0]
        await send(accept)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text: str | None = message.get("text")
            if text is None:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
            elif text == "whoami":
                handshake = _echo_body(record) | {"subprotocols": subprotocols}
                await send({"type": "websocket.send", "text": json.dumps(handshake)})
            elif text == "close" or text.startswith("close:"):
                code = int(text.partition(":")[2] or 1000)
                await send({"type": "websocket.close", "code": code})
                return
            else:
                await send({"type": "websocket.send", "text": text})


def create_upstream_app(recorder: Recorder | None = None) -> ASGIApp:
    return UpstreamApp(recorder if recorder is not None else Recorder())


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _drain(receive: Receive, record: RecordedRequest) -> None:
    """Read the whole request body in its chunks, hashing and counting; keep none of it."""
    digest = hashlib.sha256()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record.disconnected = True
            break
        chunk: bytes = message.get("body", b"")
        digest.update(chunk)
        record.body_bytes += len(chunk)
        if not message.get("more_body", False):
            break
    record.body_sha256 = digest.hexdigest()
    record.body_done_at = time.monotonic()


async def _download(
    out: _Responder, receive: Receive, params: dict[str, str], record: RecordedRequest
) -> None:
    total = int(params.get("bytes", "0"))
    chunk = int(params.get("chunk", "65536"))
    headers = [(b"content-type", b"application/octet-stream")]
    if params.get("chunked") != "1":
        headers.append((b"content-length", str(total).encode()))
    # uvicorn drops sends after a disconnect without raising, so watch for it to stop generating.
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        await out.start(200, headers)
        for part in _pattern_chunks(total, chunk):
            if gone.is_set():
                return
            await out.body(part, more=True)
        await out.body(b"")
    finally:
        watcher.cancel()


async def _slow(out: _Responder, params: dict[str, str]) -> None:
    seconds = float(params.get("seconds", "1"))
    payload = json.dumps({"slept": seconds}).encode()
    if params.get("phase") == "body":
        await out.start(200, [(b"content-length", str(len(payload)).encode())])
        await asyncio.sleep(seconds)
        await out.body(payload)
        return
    await asyncio.sleep(seconds)
    await out.start(200, [(b"content-length", str(len(payload)).encode())])
    await out.body(payload)


async def _cookies(out: _Responder) -> None:
    await out.start(
        200,
        [
            (b"content-length", b"2"),
            (b"set-cookie", b"a=1; Path=/"),
            (b"set-cookie", b"b=2; Path=/; HttpOnly"),
            (b"x-multi", b"a"),
            (b"x-multi", b"b"),
        ],
    )
    await out.body(b"ok")


async def _chunked(out: _Responder, params: dict[str, str]) -> None:
    parts = int(params.get("parts", "5"))
    delay = float(params.get("delay", "0"))
    # No Content-Length: the server frames this with Transfer-Encoding: chunked.
    await out.start(200, [(b"content-type", b"text/plain")])
    for index in range(parts):
        await out.body(f"part-{index}\n".encode(), more=True)
        if delay:
            await asyncio.sleep(delay)
    await out.body(b"")


async def _status(out: _Responder, status: int, params: dict[str, str]) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if "location" in params:
        headers.append((b"location", params["location"].encode("latin-1")))
    if "ratelimit" in params:  # the app's own rate-limit budget
        headers.append((b"x-ratelimit-limit", params["ratelimit"].encode("latin-1")))
    if status in (204, 304) or status < 200:
        await out.start(status, headers)
        await out.body(b"")
        return
    await out.json({"status": status}, status=status, headers=headers)


async def _head(out: _Responder, method: str) -> None:
    await out.start(
        200,
        [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(HEAD_BODY_LENGTH).encode()),
        ],
    )
    await out.body(b"" if method == "HEAD" else b"x" * HEAD_BODY_LENGTH)
