"""The dev issuer's HTTP face: discovery and JWKS, and the login side's routes when it has one.

    issuer = DevIssuer("http://127.0.0.1:9000")
    app = create_issuer_app(issuer)   # GET /.well-known/openid-configuration, GET /jwks

``create_issuer_app(issuer, login=DevLogin(...))`` adds the login side (gatekeeper/dev/login.py):
authorize, token, userinfo and logout endpoints, for relying parties under test. The top of dev/:
issuer.py (keys, tokens) <- login.py (the provider's logic) <- login_http.py (its routes) <- here.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from gatekeeper.dev.login_http import login_routes

__all__ = ["create_issuer_app"]


class _Knobs:
    """Pure ASGI wrapper: counts every request by path and plays 'down' before any routing."""

    def __init__(self, app: ASGIApp, issuer: DevIssuer) -> None:
        self.app = app
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.issuer.fetch_counts[scope["path"]] += 1
            if self.issuer.down:
                response = JSONResponse({"error": "issuer down"}, status_code=503)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_issuer_app(issuer: DevIssuer, *, login: DevLogin | None = None) -> ASGIApp:
    """The issuer's HTTP face: discovery and JWKS, reading ``issuer``'s knobs on every request.

    With ``login``, also its routes (authorize, token, userinfo, logout), advertised in discovery.
    """

    def cache_headers() -> dict[str, str]:
        return {"Cache-Control": f"public, max-age={issuer.jwks_max_age_seconds}"}

    async def discovery(request: Request) -> Response:
        if issuer.discovery_delay_seconds:
            await asyncio.sleep(issuer.discovery_delay_seconds)
        extra = login.discovery() if login is not None else None
        return JSONResponse(issuer.discovery(extra), headers=cache_headers())

    async def jwks(request: Request) -> Response:
        # The delay lets single-flight tests pile many verifications onto one slow fetch.
        issuer.jwks_in_flight += 1
        issuer.jwks_most_in_flight = max(issuer.jwks_most_in_flight, issuer.jwks_in_flight)
        try:
            if issuer.jwks_delay_seconds:
                await asyncio.sleep(issuer.jwks_delay_seconds)
        finally:
            issuer.jwks_in_flight -= 1
        body = issuer.jwks() if issuer.jwks_override is None else issuer.jwks_override
        return JSONResponse(body, headers=cache_headers())

    routes = [
        Route("/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route("/jwks", jwks, methods=["GET"]),
    ]
    if login is not None:
        routes += login_routes(login)
    return _Knobs(Starlette(routes=routes), issuer)
