"""Flask, on werkzeug's development server or (with the method-override middleware) on cheroot."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import run_simple

from tests.support.apps.plain_wsgi import serve_cheroot
from tests.support.apps.record import ALL_METHODS, PARAMETERS, append, wsgi_environ


class HTTPMethodOverrideMiddleware:
    """The pattern of Flask's docs ("Adding HTTP Method Overrides"), written out here: a client
    behind a proxy that only speaks GET and POST sends X-HTTP-Method-Override."""

    allowed_methods = frozenset(ALL_METHODS)
    bodyless_methods = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        if method in self.allowed_methods:
            environ["REQUEST_METHOD"] = method
        if method in self.bodyless_methods:
            environ["CONTENT_LENGTH"] = "0"
        return self.app(environ, start_response)


def make_app(log: Path, framework: str) -> Flask:
    app = Flask(__name__)

    def record(handler: str) -> Any:
        append(log, framework=framework, handler=handler, method=request.method, path=request.path,
               headers=request.headers.items(), environ=wsgi_environ(request.environ),
               params={name: request.args.get(name) for name in PARAMETERS})
        return jsonify(handler=handler), 404 if handler == "fallback" else 200

    @app.route("/public/<path:rest>", methods=ALL_METHODS)
    def public(rest: str) -> Any:
        return record("public")

    @app.route("/items/<item>", methods=["GET"])  # HEAD comes with GET
    def items_read(item: str) -> Any:
        return record("items_read")

    @app.route("/items/<item>", methods=["POST"])
    def items_write(item: str) -> Any:
        return record("items_write")

    @app.route("/items/<item>", methods=["PUT", "PATCH", "DELETE"])
    def items_delete(item: str) -> Any:
        return record("items_delete")

    @app.route("/admin", methods=ALL_METHODS)
    @app.route("/admin/<path:rest>", methods=ALL_METHODS)
    def admin(rest: str = "") -> Any:
        return record("admin")

    @app.errorhandler(404)
    @app.errorhandler(405)
    def fallback(error: HTTPException) -> Any:
        return record("fallback")

    if framework == "flask-override":
        app.wsgi_app = HTTPMethodOverrideMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def serve(framework: str, port: int, log: Path) -> None:
    app = make_app(log, framework)
    if framework == "flask-override":
        serve_cheroot(app, port)
    else:
        run_simple("127.0.0.1", port, app, threaded=True)
