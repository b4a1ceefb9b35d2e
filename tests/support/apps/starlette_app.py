"""Starlette on uvicorn: the framework gatekeeper itself is built on."""

from __future__ import annotations

from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.apps.record import ALL_METHODS, PARAMETERS, append


def make_app(log: Path) -> Starlette:
    def record(request: Request, handler: str) -> JSONResponse:
        append(log, framework="starlette", handler=handler, method=request.method,
               path=request.url.path,
               headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
               params={name: request.query_params.get(name) for name in PARAMETERS})
        return JSONResponse({"handler": handler}, status_code=404 if handler == "fallback" else 200)

    async def public(request: Request) -> JSONResponse:
        return record(request, "public")

    async def items_read(request: Request) -> JSONResponse:
        return record(request, "items_read")

    async def items_write(request: Request) -> JSONResponse:
        return record(request, "items_write")

    async def items_delete(request: Request) -> JSONResponse:
        return record(request, "items_delete")

    async def admin(request: Request) -> JSONResponse:
        return record(request, "admin")

    async def fallback(request: Request, exc: Exception) -> JSONResponse:
        return record(request, "fallback")

    routes = [
        Route("/public/{rest:path}", public, methods=ALL_METHODS),
        Route("/items/{item}", items_read, methods=["GET", "HEAD"]),
        Route("/items/{item}", items_write, methods=["POST"]),
        Route("/items/{item}", items_delete, methods=["PUT", "PATCH", "DELETE"]),
        Route("/admin", admin, methods=ALL_METHODS),
        Route("/admin/{rest:path}", admin, methods=ALL_METHODS),
    ]
    return Starlette(routes=routes, exception_handlers={404: fallback, 405: fallback})


def serve(port: int, log: Path) -> None:
    uvicorn.run(make_app(log), host="127.0.0.1", port=port, log_level="warning", access_log=False)
