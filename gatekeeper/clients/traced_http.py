"""The control plane's HTTP calls (discovery, JWKS, token and userinfo endpoints) as spans."""

from __future__ import annotations

import httpx

from gatekeeper.tracing import NO_TRACING, Tracing


class TracedTransport(httpx.AsyncBaseTransport):
    """``inner`` with each call in a span named by method and path (the query never: a code or
    a token may be in it); with ``NO_TRACING``, the call as it is."""

    def __init__(self, inner: httpx.AsyncBaseTransport, tracing: Tracing) -> None:
        self._inner = inner
        self._tracing = tracing

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._tracing is NO_TRACING:
            return await self._inner.handle_async_request(request)
        with self._tracing.call(f"{request.method} {request.url.path}", request.url.host):
            return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
