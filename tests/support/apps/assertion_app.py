"""An app that trusts nothing but gatekeeper's signed assertion, with the code of
docs/identity-assertion.md — run as it is printed there, not a copy of it.

    ASSERTION_JWKS_URL=… ASSERTION_ISSUER=… ASSERTION_AUDIENCE=… \\
        python -m tests.support.apps.assertion_app PORT        # Flask on werkzeug, 127.0.0.1

Every path and method runs the page's ``require_gatekeeper`` first. Allowed: 200 with the
claims, and the assertion it came with (for a test to replay). Refused: the page's 401, with
the reason the page's ``verify_assertion`` gives (the exception's type and text) so a test can
tell an expired assertion from a forged one.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import run_simple

from tests.support.docs import example
from tests.support.paths import ROOT

PAGE = ROOT / "docs" / "identity-assertion.md"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def documented_code() -> dict[str, Any]:
    """The namespace the page's two Python blocks define, run in order."""
    markdown = PAGE.read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "identity_assertion_example"}
    for name in ("verify-python", "verify-flask"):
        exec(compile(example(markdown, name), f"{PAGE}:{name}", "exec"), namespace)
    return namespace


def make_app() -> Flask:
    code = documented_code()
    app = Flask(__name__)
    app.before_request(code["require_gatekeeper"])

    @app.route("/", defaults={"path": ""}, methods=METHODS)
    @app.route("/<path:path>", methods=METHODS)
    def allowed(path: str) -> Any:
        return jsonify(claims=code["g"].claims,
                       assertion=request.headers.get("X-Auth-Request-Jwt"))

    @app.errorhandler(401)
    def refused(error: HTTPException) -> Any:
        try:  # the page's code again, to say why it refused
            code["verify_assertion"](request.headers.get("X-Auth-Request-Jwt"), request.method,
                                     request.environ["RAW_URI"])
            reason = "accepted on the second look"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        return jsonify(refused=reason), 401

    return app


if __name__ == "__main__":
    run_simple("127.0.0.1", int(sys.argv[1]), make_app(), threaded=True)
