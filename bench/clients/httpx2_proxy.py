"""Benchmark proxy: pure ASGI, httpx2 AsyncClient upstream (the maintained httpx fork).

    uvicorn --app-dir bench/clients httpx2_proxy:app --loop uvloop --http httptools --no-access-log

httpcore2 2.16 imports ``sniffio`` once at module load (pydantic/httpx2#1132), so unlike
httpx 0.28 + httpcore 1.0 it does not pay a failed import per request when sniffio is absent.
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import sys
from typing import Any

import httpx2
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


def no_cookie_jar() -> http.cookiejar.CookieJar:
    """A jar whose policy accepts and returns no cookie at all.

    A shared upstream client must never keep cookies: httpx2 stores every Set-Cookie it sees in
    ``client.cookies`` and sends it on later requests, i.e. one user's session cookie would be
    replayed on the next user's request. ``allowed_domains=[]`` makes set_ok/return_ok refuse all.
    """
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


async def startup() -> httpx2.AsyncClient:
    has_sniffio = importlib.util.find_spec("sniffio") is not None
    print(
        f"httpx2 {httpx2.__version__}, sniffio {'present' if has_sniffio else 'absent'}",
        file=sys.stderr,
        flush=True,
    )
    return httpx2.AsyncClient(
        base_url=upstream_base(),
        cookies=no_cookie_jar(),
        trust_env=False,  # no proxy / netrc lookups from the environment
        follow_redirects=False,
        limits=httpx2.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
        timeout=httpx2.Timeout(10.0, connect=2.0),
    )


async def shutdown(client: httpx2.AsyncClient) -> None:
    await client.aclose()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send, startup, shutdown)
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']!r}")
    client: httpx2.AsyncClient = scope["state"]["client"]
    content: Any = body_chunks(receive) if has_body(scope) else None
    request = client.build_request(
        scope["method"], upstream_url("", scope), headers=request_headers(scope), content=content
    )
    try:
        response = await client.send(request, stream=True)
    except httpx2.HTTPError:
        return await send_error(send, 502, b"bad gateway\n")
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response_headers(response.headers.raw),
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
