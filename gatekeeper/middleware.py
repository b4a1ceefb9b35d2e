"""``gatekeeper.Gatekeeper``: the sidecar's whole chain as ASGI middleware, in the app's process.

    from fastapi import FastAPI
    from gatekeeper import Gatekeeper

    app = FastAPI()
    app = Gatekeeper(app, config="gatekeeper.yaml")      # or settings=Settings(...)

One config, two shapes: the same file (keys, issuers, policies with hot reload, OIDC login
routes, sessions, rate limits, revocation) runs in front of the app either as a sidecar process
or here. The difference is the last hop: an allowed request is handed to ``app`` in process
(edge/inprocess.py) instead of over a socket, with ``scope["user"]`` and ``scope["auth"]`` set
as Starlette's ``AuthenticationMiddleware`` sets them. ``upstream`` and ``listen`` are not used;
the admin listener is started only with ``serve_admin=True``.

Start and stop ride on the app server's lifespan (uvicorn, hypercorn, Starlette's TestClient):
gatekeeper starts before the app's own startup and stops after its shutdown. A server that
runs no lifespan (httpx's ASGITransport) gets it started by the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatekeeper.app import GatekeeperApp
from gatekeeper.edge.inprocess import ASGIApp
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings
from gatekeeper.tracing import Tracing
from gatekeeper.types import Receive, Scope, Send

__all__ = ["Gatekeeper"]


class Gatekeeper:
    def __init__(
        self, app: ASGIApp, *, config: str | os.PathLike[str] | None = None,
        settings: Settings | None = None, environ: Mapping[str, str] | None = None,
        serve_admin: bool = False, tracing: Tracing | None = None,
    ) -> None:
        """``config``: a config file, read as ``gatekeeper run`` reads it (``${VAR}`` and
        ``GATEKEEPER_*`` from ``environ``, default the process's); or ``settings`` already
        built. A bad config raises ``ConfigError`` naming every key and reason, here."""
        if (config is None) == (settings is None):
            raise TypeError("give config= (a file) or settings=, not both or neither")
        self.app = app
        self.settings = (settings if settings is not None
                         else load_settings(Path(os.fspath(config or "")), environ))
        self._core = GatekeeperApp(self.settings, serve_admin=serve_admin, tracing=tracing,
                                   inner=app)
        self._stack: contextlib.AsyncExitStack | None = None
        self._starting = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._stack is None:
            await self.startup()
        await self._core(scope, receive, send)

    async def startup(self) -> None:
        """Start gatekeeper (once); a failure raises, with nothing left running."""
        async with self._starting:
            if self._stack is not None:
                return
            stack = contextlib.AsyncExitStack()
            try:
                await self._core.start(stack)
            except BaseException:
                await stack.aclose()
                raise
            self._stack = stack

    async def shutdown(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            self._core.stopped()
            await stack.aclose()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's own lifespan, with gatekeeper started before its startup and stopped after
        its shutdown; an app without a lifespan gets one run here."""
        asked = False

        async def receiving() -> dict[str, Any]:
            nonlocal asked
            asked = True
            message: dict[str, Any] = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()  # raising here: the app reports lifespan.startup.failed
            return message

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.shutdown()
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        except Exception:
            if asked:
                await self.shutdown()
                raise
            await self._own_lifespan(receive, send)  # the app does not speak lifespan

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        try:
            await self.startup()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.shutdown()
        await send({"type": "lifespan.shutdown.complete"})
