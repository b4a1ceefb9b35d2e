"""python -m tests.support.apps FRAMEWORK PORT LOGFILE (see the package docstring)."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.apps import FRAMEWORKS


def main(argv: list[str]) -> None:
    framework, port, log = argv[0], int(argv[1]), Path(argv[2])
    if framework not in FRAMEWORKS:
        raise SystemExit(f"unknown framework {framework!r}: one of {', '.join(FRAMEWORKS)}")
    if framework == "starlette":
        from tests.support.apps import starlette_app
        starlette_app.serve(port, log)
    elif framework in ("flask", "flask-override"):
        from tests.support.apps import flask_app
        flask_app.serve(framework, port, log)
    elif framework in ("wsgiref", "cheroot"):
        from tests.support.apps import plain_wsgi
        app = plain_wsgi.make_app(log, framework)
        (plain_wsgi.serve_wsgiref if framework == "wsgiref" else plain_wsgi.serve_cheroot)(app, port)
    elif framework == "aiohttp":
        from tests.support.apps import aiohttp_app
        aiohttp_app.serve(port, log)
    else:
        from tests.support.apps import django_app
        django_app.serve(port, log)


if __name__ == "__main__":
    main(sys.argv[1:])
