"""A WSGI app without a framework, served by wsgiref or cheroot (both keep ``_`` in header names
and map them to the same environ key as ``-``)."""

from __future__ import annotations

import json
import wsgiref.simple_server
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.support.apps.record import append, route, wsgi_environ

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_app(log: Path, framework: str) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        handler = route(method, path)
        pairs = wsgi_environ(environ)
        append(log, framework=framework, handler=handler, method=method, path=path,
               headers=[(k, v) for k, v in pairs if k.startswith("HTTP_")], environ=pairs)
        body = json.dumps({"handler": handler}).encode()
        start_response("404 Not Found" if handler == "fallback" else "200 OK",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return app


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_wsgiref(app: WsgiApp, port: int) -> None:
    with wsgiref.simple_server.make_server("127.0.0.1", port, app, handler_class=_QuietHandler) as server:
        server.serve_forever()


def serve_cheroot(app: WsgiApp, port: int) -> None:
    from cheroot.wsgi import Server

    server = Server(("127.0.0.1", port), app, numthreads=4)
    server.safe_start()
