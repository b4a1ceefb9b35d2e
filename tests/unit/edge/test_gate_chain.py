"""The gate over the real pipeline, in process (an ASGI harness: no sockets): one chain for a
proxied request, a WebSocket handshake and a forward-auth check.

Real Pipeline, RateLimits (in-memory counter), HeaderPolicy, ForwardAuth, Proxy; fakes only
where I/O would be: the app (a recording transport), the session store (an authenticator that
says "revoked") and the login routes (they end the session's cookie).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gatekeeper.authz import AuthenticatedOnly, PublicPaths
from gatekeeper.cookies import SetCookie
from gatekeeper.edge import gate as gate_module
from gatekeeper.edge import proxy as proxy_module
from gatekeeper.edge.forward_auth import ForwardAuth
from gatekeeper.edge.gate import Gate, GateSettings
from gatekeeper.edge.proxy import Proxy
from gatekeeper.edge.responses import Answer
from gatekeeper.edge.websocket import WebSocketProxy
from gatekeeper.errors import SessionRevoked
from gatekeeper.exchange import Exchange
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import Decision, Principal
from gatekeeper.ratelimit import MemoryWindowCounter, RateLimits
from gatekeeper.settings import RateLimitRule, Settings
from gatekeeper.settings.forward_auth import ForwardAuthSettings
from gatekeeper.upstream.address import UpstreamAddress

ALICE = Principal(subject="alice", roles=(), claims={}, via="bearer", issuer="https://idp",
                  expires_at=0.0)
ENDED = SetCookie("_gatekeeper", "", max_age=0, secure=False)


class App:
    """The upstream transport: records what was sent, answers 200 with an empty body."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int | None, bytes]] = []

    async def send(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                   body: AsyncIterator[bytes] | None, content_length: int | None) -> App:
        received = b"".join([chunk async for chunk in body]) if body is not None else b""
        self.sent.append((method, target, content_length, received))
        return self

    status = 200
    headers: list[tuple[bytes, bytes]] = []

    async def body(self) -> AsyncIterator[bytes]:
        yield b"ok"

    def abort(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Caller:
    """An authenticator: always ``principal``, or SessionRevoked when ``revoked``."""

    def __init__(self, principal: Principal, revoked: bool = False) -> None:
        self.principal, self.revoked = principal, revoked

    async def authenticate(self, request: Exchange) -> Principal | None:
        if self.revoked:
            raise SessionRevoked("this session was revoked")
        return self.principal


class Login:
    """The login routes as the pipeline (end a revoked session's cookie) and the gate see them:
    no routes of their own here, and no browser sent to log in."""

    sign_out_url = "/oauth2/sign_out"

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def end_revoked_session(self, request: Exchange, request_id: str) -> None:
        request.cookies_out().set(ENDED)
        self.ended.append(request_id)

    @property
    def sessions(self) -> Login:
        return self

    async def still_signed_in(self, request: Exchange) -> str | None:
        return None

    def handles(self, path: str) -> bool:
        return False

    async def handle(self, request: Exchange, receive: Any, request_id: str) -> Answer:
        raise AssertionError("no login routes here")

    def wants_login(self, request: Exchange, decision: Decision) -> bool:
        return False

    async def redirect_to_login(self, request: Exchange, request_id: str) -> Answer:
        raise AssertionError("no browser here")


def build(caller: Caller, *, limit: int | None = None, login: Login | None = None,
          app: App | None = None) -> Gate:
    settings = Settings(trusted_proxies=["127.0.0.1/32"])
    metrics, headers = Metrics(), HeaderPolicy(settings.header_section())
    upstream = UpstreamAddress.parse("http://127.0.0.1:9")
    rate_limits = None if limit is None else RateLimits(
        [RateLimitRule(path="/limited/*", limit=limit, window_seconds=60)], MemoryWindowCounter(),
        key_prefix="t:", is_trusted=headers.is_trusted, metrics=metrics)
    pipeline = Pipeline([caller], AuthenticatedOnly(PublicPaths([])), headers,
                        rate_limits=rate_limits)
    if login is not None:
        pipeline = pipeline.ending_revoked_sessions(login)
    return Gate(pipeline, Proxy(upstream, app or App(), headers, metrics),
                WebSocketProxy(upstream, headers, metrics, 1, 60, 0, 1024),
                ForwardAuth(ForwardAuthSettings(proxy="traefik"), headers.is_trusted), metrics,
                AccessLog(enabled=False), GateSettings(max_header_bytes=16384), login)


def scope(kind: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
          method: str = "GET") -> dict[str, Any]:
    return {"type": kind, "method": method, "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": [(b"host", b"app.test"), *(headers or [])],
            "client": ("127.0.0.1", 5000), "scheme": "http",
            "extensions": {"websocket.http.response": {}} if kind == "websocket" else {}}


def through(gate: Gate, way: str, path: str) -> tuple[int, dict[bytes, list[bytes]]]:
    """One request ``way`` (http, websocket, forward-auth): the status and headers answered."""
    if way == "forward-auth":
        asked = scope("http", "/oauth2/auth", [(b"x-forwarded-uri", path.encode()),
                                               (b"x-forwarded-method", b"GET")])
    else:
        asked = scope("websocket" if way == "websocket" else "http", path)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"} if way == "websocket"
                else {"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gate(asked, receive, send))
    start = sent[0]
    headers: dict[bytes, list[bytes]] = {}
    for name, value in start.get("headers", []):
        headers.setdefault(name, []).append(value)
    return start["status"], headers


WAYS = ["http", "websocket", "forward-auth"]
ALLOWED = {"http": 200, "websocket": 101, "forward-auth": 202}


@pytest.mark.parametrize("way", WAYS)
def test_a_rate_limited_route_is_limited_the_same_whichever_way_it_is_asked(way: str) -> None:
    gate = build(Caller(ALICE), limit=2)
    if way == "websocket":  # an allowed handshake would go on to the app: spend the budget by HTTP
        assert [through(gate, "http", "/limited/x")[0] for _ in range(2)] == [200, 200]
    else:
        assert [through(gate, way, "/limited/x")[0] for _ in range(2)] == [ALLOWED[way]] * 2
    status, headers = through(gate, way, "/limited/x")
    assert status == 429
    assert headers[b"x-ratelimit-limit"] == [b"2"] and headers[b"x-ratelimit-remaining"] == [b"0"]
    assert 1 <= int(headers[b"retry-after"][0]) <= 120  # within two windows (ratelimit.py)


@pytest.mark.parametrize("way", WAYS)
def test_a_revoked_session_is_ended_whichever_way_it_comes(way: str) -> None:
    login = Login()
    status, headers = through(build(Caller(ALICE, revoked=True), login=login), way, "/page")
    assert status == 401
    assert headers[b"set-cookie"] == [ENDED.header_value()]
    assert len(login.ended) == 1


@pytest.mark.parametrize(("framing", "length"), [
    ([(b"content-length", b"5")], 5),
    ([(b"transfer-encoding", b"chunked")], None),
], ids=["content-length", "chunked"])
def test_body_framing_is_checked_once_and_what_it_found_is_forwarded(
        framing: list[tuple[bytes, bytes]], length: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    app = App()
    gate = build(Caller(ALICE), app=app)
    calls: list[object] = []
    original = proxy_module.body_framing

    def spy(request: Any) -> Any:
        calls.append(request)
        return original(request)

    for module in (gate_module, proxy_module):  # wherever the edge looks it up
        monkeypatch.setattr(module, "body_framing", spy)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": b"hello", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gate(scope("http", "/upload", framing, method="POST"), receive, send))
    assert sent[0]["status"] == 200
    assert len(calls) == 1
    assert app.sent == [("POST", b"/upload", length, b"hello")]


def test_ambiguous_framing_is_refused_before_the_pipeline_runs() -> None:
    asked: list[Decision] = []

    class Spy(Caller):
        async def authenticate(self, request: Exchange) -> Principal | None:
            asked.append(request)  # type: ignore[arg-type]
            return ALICE

    gate = build(Spy(ALICE))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    both: Callable[[], dict[str, Any]] = lambda: scope(  # noqa: E731
        "http", "/upload", [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")], "POST")
    asyncio.run(gate(both(), receive, send))
    assert sent[0]["status"] == 400 and b"ambiguous_framing" in sent[1]["body"]
    assert asked == []
