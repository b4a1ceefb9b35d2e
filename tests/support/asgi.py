"""The real gatekeeper ASGI app, in process: built by ``create_app`` from a ``Settings``, started
through its own lifespan, and driven with raw ASGI messages (or httpx's ASGI transport).

    async def scenario(gk: InProcess) -> Answer:
        return await gk.http("GET", "/echo", headers=[(b"authorization", b"Bearer " + token)])

    answer = serve(settings, scenario)          # or: async with running(settings) as gk: ...
    assert answer.status == 200

Only the public behaviour is reachable here: the status, headers and body of an answer, and what
the app behind gatekeeper received. Nothing reaches into the edge's classes, so these tests hold
whatever the pipeline looks like inside.

The upstream is a real HTTP server: gatekeeper's upstream client speaks HTTP/1.1 over TCP to the
configured ``upstream`` URL, so ``tests/support/upstream.py``'s recorder is served on 127.0.0.1
(the ``upstream`` fixture of tests/conftest.py). Issuers are fetched the same way (``issuer``).
Each raw exchange is bounded in time: a hang fails the test, it never blocks the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

import httpx

from gatekeeper.app import create_app
from gatekeeper.edge.inprocess import ASGIApp
from gatekeeper.middleware import Gatekeeper
from gatekeeper.settings import Settings
from gatekeeper.tracing import Tracing
from tests.support.fakes import run

T = TypeVar("T")
Message = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
HeaderInput = Iterable[tuple[bytes | str, bytes | str]]

CLIENT = ("127.0.0.1", 50000)     # the peer gatekeeper sees; on loopback, as in the e2e tests
SERVER = ("127.0.0.1", 4180)
HOST = b"gk.test"                 # the Host a request carries unless it names its own
EXCHANGE_TIMEOUT = 10.0           # seconds one request or handshake may take before the test fails


class StartupFailed(Exception):
    """The app refused to start (lifespan.startup.failed); the message is the app's."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as the client received it (gatekeeper's own, or the app's passed on)."""

    status: int
    headers: Headers
    body: bytes

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.headers if n.lower() == wanted]

    def header(self, name: str) -> str | None:
        """The single value of ``name``; None when absent; AssertionError when repeated."""
        values = self.header_values(name)
        assert len(values) <= 1, f"{name} came {len(values)} times: {values}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass(frozen=True)
class WebSocketAnswer:
    """How a handshake ended: refused with an HTTP answer (the Denial Response extension), closed
    before accept (``close_code``), or accepted, with the replies to the messages sent."""

    accepted: bool
    denial: Answer | None = None
    close_code: int | None = None
    replies: list[str] = field(default_factory=list)
    accept_headers: Headers = field(default_factory=list)


def _raw_headers(headers: HeaderInput, default_host: bool) -> Headers:
    raw = [(n.encode("latin-1") if isinstance(n, str) else n,
            v.encode("latin-1") if isinstance(v, str) else v) for n, v in headers]
    raw = [(n.lower(), v) for n, v in raw]  # ASGI: names lower-cased, as uvicorn passes them
    if default_host and not any(n == b"host" for n, _ in raw):
        raw.insert(0, (b"host", HOST))
    return raw


def _scope(kind: str, method: str, target: bytes | str, headers: HeaderInput, *,
           client: tuple[str, int], default_host: bool) -> dict[str, Any]:
    raw_target = target.encode("latin-1") if isinstance(target, str) else target
    raw_path, _, query = raw_target.partition(b"?")
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        # uvicorn's way: path is the percent-decoded raw_path, raw_path the bytes as sent.
        "path": unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": _raw_headers(headers, default_host),
        "server": SERVER,
        "client": client,
    }
    if kind == "http":
        scope["method"] = method
    return scope


class InProcess:
    """A started gatekeeper app. ``http`` and ``websocket`` send raw ASGI messages (targets and
    header spellings exactly as given); ``client`` is an httpx client on the same app."""

    def __init__(self, app: ASGIApp, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def http(
        self, method: str, target: bytes | str, *, headers: HeaderInput = (), body: bytes = b"",
        client: tuple[str, int] = CLIENT, default_host: bool = True,
    ) -> Answer:
        scope = _scope("http", method, target, headers, client=client, default_host=default_host)
        answered = asyncio.Event()
        body_sent = False
        start: Message | None = None
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()  # a client that stays until its answer is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                assert start is None, "a second response start"
                start = message
            elif message["type"] == "http.response.body":
                assert start is not None, "a body before the response start"
                chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    answered.set()

        async with asyncio.timeout(EXCHANGE_TIMEOUT):
            await self.app(scope, receive, send)
        answered.set()
        assert start is not None, "the app returned without an answer"
        return Answer(int(start["status"]), [(bytes(n), bytes(v)) for n, v in start["headers"]],
                      b"".join(chunks))

    async def websocket(
        self, target: bytes | str, *, headers: HeaderInput = (), subprotocols: Sequence[str] = (),
        messages: Sequence[str] = (), denial_extension: bool = True,
        client: tuple[str, int] = CLIENT,
    ) -> WebSocketAnswer:
        """Open a WebSocket; when accepted, send each text message, read one reply to each,
        then disconnect. ``denial_extension``: whether the server offers the ASGI WebSocket
        Denial Response extension (uvicorn does)."""
        headers = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
                   (b"sec-websocket-version", b"13"),
                   (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), *headers]
        scope = _scope("websocket", "GET", target, headers, client=client, default_host=True)
        scope["subprotocols"] = list(subprotocols)
        scope["extensions"] = {"websocket.http.response": {}} if denial_extension else {}
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        outbox: asyncio.Queue[Message] = asyncio.Queue()
        await inbox.put({"type": "websocket.connect"})
        task = asyncio.ensure_future(self.app(scope, inbox.get, outbox.put))
        try:
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                return await self._converse(inbox, outbox, messages)
        finally:
            await inbox.put({"type": "websocket.disconnect", "code": 1000})
            async with asyncio.timeout(EXCHANGE_TIMEOUT):
                await task

    @staticmethod
    async def _converse(inbox: asyncio.Queue[Message], outbox: asyncio.Queue[Message],
                        messages: Sequence[str]) -> WebSocketAnswer:
        first = await outbox.get()
        if first["type"] == "websocket.close":
            return WebSocketAnswer(accepted=False, close_code=int(first.get("code", 1000)))
        if first["type"] == "websocket.http.response.start":
            chunks: list[bytes] = []
            while True:
                part = await outbox.get()
                assert part["type"] == "websocket.http.response.body", part["type"]
                chunks.append(bytes(part.get("body", b"")))
                if not part.get("more_body", False):
                    break
            denial = Answer(int(first["status"]), [(bytes(n), bytes(v)) for n, v in first["headers"]],
                            b"".join(chunks))
            return WebSocketAnswer(accepted=False, denial=denial)
        assert first["type"] == "websocket.accept", first["type"]
        replies: list[str] = []
        for text in messages:
            await inbox.put({"type": "websocket.receive", "text": text})
            reply = await outbox.get()
            if reply["type"] == "websocket.close":
                return WebSocketAnswer(accepted=True, close_code=int(reply.get("code", 1000)),
                                       replies=replies)
            assert reply["type"] == "websocket.send", reply["type"]
            replies.append(reply.get("text") or bytes(reply.get("bytes") or b"").decode("latin-1"))
        return WebSocketAnswer(accepted=True, replies=replies,
                               accept_headers=[(bytes(n), bytes(v)) for n, v in first.get("headers", [])])


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp) -> AsyncIterator[None]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                   inbox.get, outbox.put))
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        started = await outbox.get()
    if started["type"] == "lifespan.startup.failed":
        await task
        raise StartupFailed(started.get("message", ""))
    # The app freezes what it built at start out of the collector's reach (app.py): right for a
    # process, a leak for a test session that builds an app per test. Hand it back.
    gc.unfreeze()
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        async with asyncio.timeout(EXCHANGE_TIMEOUT):
            await outbox.get()
            await task


def _asgi(app: ASGIApp) -> Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]:
    """The app as httpx's transport types an ASGI app (its scope is a MutableMapping)."""

    async def call(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        assert isinstance(scope, dict)
        await app(scope, receive, send)

    return call


@contextlib.asynccontextmanager
async def running(settings: Settings, *, tracing: Tracing | None = None,
                  inner: ASGIApp | None = None) -> AsyncIterator[InProcess]:
    """The app built from ``settings``, started (no admin listener), stopped on exit;
    ``tracing``: where its spans go (default: as ``settings`` say). ``inner``: run the other
    shape, ``gatekeeper.Gatekeeper`` in front of ``inner`` in process (``upstream`` unused)."""
    app: Any = (create_app(settings, serve_admin=False, tracing=tracing) if inner is None
                else Gatekeeper(inner, settings=settings, tracing=tracing))
    async with _lifespan(app):
        transport = httpx.ASGITransport(app=_asgi(app), client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url="http://" + HOST.decode()) as client:
            yield InProcess(app, client)


def serve(settings: Settings, scenario: Callable[[InProcess], Awaitable[T]], *,
          tracing: Tracing | None = None, inner: ASGIApp | None = None) -> T:
    """Start the app, run ``scenario`` against it, stop it; from a plain (sync) test."""

    async def main() -> T:
        async with running(settings, tracing=tracing, inner=inner) as gk:
            return await scenario(gk)

    return run(main())


def request(settings: Settings, method: str, target: bytes | str, *, headers: HeaderInput = (),
            body: bytes = b"", client: tuple[str, int] = CLIENT,
            inner: ASGIApp | None = None) -> Answer:
    """One raw request to a freshly started app."""

    async def one(gk: InProcess) -> Answer:
        return await gk.http(method, target, headers=headers, body=body, client=client)

    return serve(settings, one, inner=inner)
