"""Benchmark proxy: pure ASGI, aiohttp ClientSession upstream, response streamed back.

uvicorn --app-dir bench/clients aiohttp_proxy:app --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
from _asgi import (
    POOL_SIZE,
    Receive,
    Scope,
    Send,
    body_chunks,
    has_body,
    lifespan,
    request_headers,
    response_headers,
    send_error,
    upstream_base,
    upstream_url,
)


async def startup() -> aiohttp.ClientSession:
    print(f"aiohttp {aiohttp.__version__}", file=sys.stderr, flush=True)
    return aiohttp.ClientSession(
        base_url=upstream_base(),
        # A shared upstream client must never keep cookies: the default CookieJar stores every
        # Set-Cookie and sends it on later requests, i.e. one user's session cookie would be
        # replayed on the next user's request. DummyCookieJar stores nothing.
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=aiohttp.TCPConnector(limit=POOL_SIZE, limit_per_host=POOL_SIZE),
        auto_decompress=False,  # forward the body as the upstream framed it
        trust_env=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=2.0, sock_read=10.0),
    )


async def shutdown(session: aiohttp.ClientSession) -> None:
    await session.close()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send, startup, shutdown)
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']!r}")
    session: aiohttp.ClientSession = scope["state"]["client"]
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request_headers(scope)]
    data: Any = body_chunks(receive) if has_body(scope) else None
    try:
        response = await session.request(
            scope["method"],
            upstream_url("", scope),
            headers=headers,
            data=data,
            allow_redirects=False,
        )
    except aiohttp.ClientError:
        return await send_error(send, 502, b"bad gateway\n")
    async with response:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response.raw_headers),
            }
        )
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
