"""Benchmark proxy: pure ASGI, httpx 0.28 AsyncClient upstream, response streamed back.
``make_app`` takes the module, so httpx2_proxy.py runs the very same proxy on httpx2.

    uvicorn --app-dir bench/clients httpx_proxy:app --loop uvloop --http httptools --no-access-log

httpcore 1.0.x imports ``sniffio`` inside a function on every lock/semaphore setup; when sniffio
is absent (anyio >= 4.11 no longer pulls it in) each call pays a failed import (encode/httpcore
#1103). The harness measures this proxy with and without sniffio on the path.
"""

from __future__ import annotations

import http.cookiejar
import importlib.util
import sys
from types import ModuleType
from typing import Any

import httpx
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

    A shared upstream client must never keep cookies: httpx stores every Set-Cookie it sees in
    ``client.cookies`` and sends it on later requests, i.e. one user's session cookie would be
    replayed on the next user's request. ``allowed_domains=[]`` makes set_ok/return_ok refuse all.
    """
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def make_app(httpx_module: ModuleType) -> Any:
    """The proxy on ``httpx_module`` (httpx or its API-compatible fork httpx2)."""

    async def startup() -> Any:
        has_sniffio = importlib.util.find_spec("sniffio") is not None
        print(
            f"{httpx_module.__name__} {httpx_module.__version__}, "
            f"sniffio {'present' if has_sniffio else 'absent'}",
            file=sys.stderr,
            flush=True,
        )
        return httpx_module.AsyncClient(
            base_url=upstream_base(),
            cookies=no_cookie_jar(),
            trust_env=False,  # no proxy / netrc lookups from the environment
            follow_redirects=False,
            limits=httpx_module.Limits(max_connections=POOL_SIZE,
                                       max_keepalive_connections=POOL_SIZE),
            timeout=httpx_module.Timeout(10.0, connect=2.0),
        )

    async def shutdown(client: Any) -> None:
        await client.aclose()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(scope, receive, send, startup, shutdown)
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported scope {scope['type']!r}")
        client = scope["state"]["client"]
        content: Any = body_chunks(receive) if has_body(scope) else None
        request = client.build_request(
            scope["method"], upstream_url("", scope), headers=request_headers(scope),
            content=content,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx_module.HTTPError:
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

    return app


app = make_app(httpx)
