"""Django with minimal settings: its URL resolver, class-based method dispatch and 404 handler,
under cheroot (a production WSGI server; Django's runserver drops ``_`` headers itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django
from django.conf import settings

from tests.support.apps.plain_wsgi import serve_cheroot
from tests.support.apps.record import PARAMETERS, append

_LOG: list[Path] = []  # set once by serve(); Django looks views up by module path


def _record(request: Any, handler: str) -> Any:
    from django.http import JsonResponse

    meta = [(k, str(v)) for k, v in request.META.items()
            if k.startswith("HTTP_") or k in ("REQUEST_METHOD", "PATH_INFO", "CONTENT_TYPE",
                                              "CONTENT_LENGTH", "REMOTE_ADDR", "SCRIPT_NAME")]
    append(_LOG[0], framework="django", handler=handler, method=request.method, path=request.path,
           headers=request.headers.items(), environ=meta,
           params={name: request.GET.get(name) for name in PARAMETERS})
    return JsonResponse({"handler": handler}, status=404 if handler == "fallback" else 200)


def public(request: Any, rest: str = "") -> Any:
    return _record(request, "public")


def admin(request: Any, rest: str = "") -> Any:
    return _record(request, "admin")


def fallback(request: Any, exception: Exception) -> Any:
    return _record(request, "fallback")


def _urlpatterns() -> list[Any]:
    from django.urls import path, re_path
    from django.views import View

    class Items(View):  # type: ignore[misc]  # django ships no type information
        http_method_names = ["get", "head", "post", "put", "patch", "delete"]

        def get(self, request: Any, item: str) -> Any:
            return _record(request, "items_read")

        def head(self, request: Any, item: str) -> Any:
            return _record(request, "items_read")

        def post(self, request: Any, item: str) -> Any:
            return _record(request, "items_write")

        def put(self, request: Any, item: str) -> Any:
            return _record(request, "items_delete")

        patch = delete = put

    return [
        re_path(r"^public/(?P<rest>.*)$", public),
        path("items/<str:item>", Items.as_view()),
        re_path(r"^admin(?P<rest>/.*)?$", admin),
    ]


handler404 = "tests.support.apps.django_app.fallback"


def serve(port: int, log: Path) -> None:
    _LOG.append(log)
    settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test-only",
                       MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    django.setup()
    globals()["urlpatterns"] = _urlpatterns()
    from django.core.wsgi import get_wsgi_application

    serve_cheroot(get_wsgi_application(), port)
