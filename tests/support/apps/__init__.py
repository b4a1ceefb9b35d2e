"""Small real apps on third-party frameworks, each recording what its framework believes.

    python -m tests.support.apps FRAMEWORK PORT LOGFILE     # serves on 127.0.0.1:PORT

FRAMEWORK is one of ``FRAMEWORKS``. Every app routes the same way, with its framework's own
router (``plain_wsgi``, which has none, dispatches in ``record.route``):

    /public/<anything>           any method          handler "public"
    /items/<id>                  GET, HEAD           "items_read"
    /items/<id>                  POST                "items_write"
    /items/<id>                  PUT, PATCH, DELETE  "items_delete"
    /admin, /admin/<anything>    any method          "admin"
    anything else                                    "fallback" (404)

Each handler appends one JSON line to LOGFILE *before* it answers (see ``record.Record``): the
handler that ran, the method and path the framework reports, every header the framework
exposes (and, for WSGI, every environ key), and the ``X-Probe`` header the test sets to find
the line again. A request that runs no handler writes nothing.
"""

from __future__ import annotations

# name -> what serves it
FRAMEWORKS: dict[str, str] = {
    "starlette": "Starlette on uvicorn",
    "flask": "Flask on werkzeug's development server",
    "wsgiref": "a WSGI app on the standard library's wsgiref",
    "cheroot": "the same WSGI app on cheroot",
    "aiohttp": "aiohttp's web server",
    "django": "Django's WSGI handler on cheroot",
    "flask-override": "Flask with the method-override middleware of Flask's docs, on cheroot",
}
