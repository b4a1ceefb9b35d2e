"""The one record format every app writes, and the routing table ``plain_wsgi`` needs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ALL_METHODS", "PARAMETERS", "WSGI_KEYS", "append", "route", "wsgi_environ"]

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Environ keys a WSGI app reads besides HTTP_*: what the server says the request is.
WSGI_KEYS = ("REQUEST_METHOD", "PATH_INFO", "SCRIPT_NAME", "QUERY_STRING", "CONTENT_TYPE",
             "CONTENT_LENGTH", "REMOTE_ADDR", "SERVER_NAME", "wsgi.url_scheme")


# The query parameters whose value each app records as its framework reads it (one value).
PARAMETERS = ("owner",)


def append(log: Path, *, framework: str, handler: str, method: str, path: str,
           headers: Iterable[tuple[str, str]], environ: Iterable[tuple[str, str]] = (),
           params: Mapping[str, object] | None = None) -> dict[str, Any]:
    """Write one record (a single O_APPEND write: whole lines even from several threads).
    ``params``: PARAMETERS as the framework's own query API reads them (None when absent)."""
    header_list = [[str(k), str(v)] for k, v in headers]
    probe = next((v for k, v in header_list if k.lower() in ("x-probe", "http_x_probe")), None)
    record = {"framework": framework, "handler": handler, "method": method, "path": path,
              "headers": header_list, "environ": [[str(k), str(v)] for k, v in environ],
              "probe": probe, "params": {k: None if v is None else str(v)
                                         for k, v in (params or {}).items()}}
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)
    return record


def wsgi_environ(environ: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every HTTP_* key and the request keys of a WSGI environ, as the app reads them."""
    return [(k, str(v)) for k, v in environ.items() if k.startswith("HTTP_") or k in WSGI_KEYS]


def route(method: str, path: str) -> str:
    """The routing table, for a WSGI app without a router."""
    if path.startswith("/public/"):
        return "public"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "items" and parts[2]:
        if method in ("GET", "HEAD"):
            return "items_read"
        if method == "POST":
            return "items_write"
        if method in ("PUT", "PATCH", "DELETE"):
            return "items_delete"
    return "fallback"
