"""What the benchmark proxies share: the lifespan loop and header hygiene (no client code here).

Each proxy module is a pure ASGI app that builds its upstream client once, in the lifespan, and
keeps it in the lifespan state (``scope["state"]``), never at module level.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 9110 §7.6.1: connection-specific headers are not forwarded by an intermediary.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Connection pool cap, the same for every client so that none queues or churns at -c32.
POOL_SIZE = 64


def upstream_base() -> str:
    return os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8080")


def upstream_url(base: str, scope: Scope) -> str:
    query: bytes = scope.get("query_string", b"")
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    return base + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def request_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Client headers minus hop-by-hop ones and Host (the client sets the upstream's)."""
    return [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP and k != b"host"]


def response_headers(raw: Any) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones; the server re-frames the body itself."""
    return [(bytes(k), bytes(v)) for k, v in raw if bytes(k).lower() not in HOP_BY_HOP]


def has_body(scope: Scope) -> bool:
    return any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])


async def body_chunks(receive: Receive) -> Any:
    """The request body as an async iterator of bytes, streamed as it arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        if chunk := message.get("body", b""):
            yield chunk
        if not message.get("more_body", False):
            return


async def lifespan(
    scope: Scope,
    receive: Receive,
    send: Send,
    startup: Callable[[], Awaitable[Any]],
    shutdown: Callable[[Any], Awaitable[None]],
) -> None:
    """Run the ASGI lifespan: ``scope["state"]["client"] = await startup()``, then shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["client"] = await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await shutdown(scope["state"]["client"])
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_error(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(text)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
