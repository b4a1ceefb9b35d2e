"""aiohttp's own HTTP server and router."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tests.support.apps.record import PARAMETERS, append

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(log: Path) -> web.Application:
    def record(request: web.Request, handler: str) -> web.Response:
        append(log, framework="aiohttp", handler=handler, method=request.method, path=request.path,
               headers=request.headers.items(),
               params={name: request.query.get(name) for name in PARAMETERS})
        return web.json_response({"handler": handler}, status=404 if handler == "fallback" else 200)

    def named(handler: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            return record(request, handler)
        return handle

    @web.middleware
    async def fallback(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status in (404, 405):
                return record(request, "fallback")
            raise

    app = web.Application(middlewares=[fallback])
    app.router.add_route("*", "/public/{rest:.*}", named("public"))
    app.router.add_get("/items/{item}", named("items_read"))  # HEAD too
    app.router.add_post("/items/{item}", named("items_write"))
    for method in ("PUT", "PATCH", "DELETE"):
        app.router.add_route(method, "/items/{item}", named("items_delete"))
    app.router.add_route("*", "/admin", named("admin"))
    app.router.add_route("*", "/admin/{rest:.*}", named("admin"))
    return app


def serve(port: int, log: Path) -> None:
    web.run_app(make_app(log), host="127.0.0.1", port=port, print=None, access_log=None)
