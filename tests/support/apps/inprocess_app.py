"""A Starlette app with ``gatekeeper.Gatekeeper`` in front, in one process, served by uvicorn:

    python -m tests.support.apps.inprocess_app CONFIG PORT

(tests/e2e/test_middleware_e2e.py). Its routes answer with who Starlette says the caller is."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from gatekeeper import Gatekeeper


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity, "scopes": request.auth.scopes,
                         "method": request.method, "path": request.url.path,
                         "header_user": request.headers.get("x-auth-request-user")})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"{websocket.user.identity}: {text}")


def create(config: str) -> Gatekeeper:
    app = Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST", "DELETE", "PUT"]),
                            WebSocketRoute("/ws", echo)])
    return Gatekeeper(app, config=config)


if __name__ == "__main__":
    uvicorn.run(create(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
