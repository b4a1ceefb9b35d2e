"""The ASGI HTTP scope of a request gatekeeper's own protocol (http11.py) parsed: what one
connection's requests share is taken once, when it opens; per request, the target is split at
``?`` without a URL object and the header list the parser's callbacks filled (names
lower-cased, values as bytes) becomes the scope's own, copied no more.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httptools

_METHODS = {m.encode("ascii"): m for m in
            ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")}


class ConnectionScope:
    """One connection's share of each request's scope (``tls``: the ASGI TLS extension)."""

    def __init__(self, *, asgi_version: str, root_path: str, server: tuple[str, int] | None,
                 client: tuple[str, int] | None, scheme: str, app_state: dict[str, Any],
                 tls: dict[str, Any] | None) -> None:
        self._asgi = {"version": asgi_version, "spec_version": "2.3"}
        self._root_path = root_path
        self._raw_root = root_path.encode("ascii")
        self._server = server
        self._client = client
        self._scheme = scheme
        self._app_state = app_state
        self._tls = tls

    def request(self, method: bytes, url: bytes, version: str,
                headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        """``url``: origin-form, or an absolute-form ``common.target_problem`` vouched for."""
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        scope = {
            "type": "http", "asgi": dict(self._asgi),
            "http_version": version, "server": self._server, "client": self._client,
            "scheme": self._scheme,
            "method": _METHODS.get(method) or method.decode("ascii"),
            "root_path": self._root_path, "path": self._root_path + path,
            "raw_path": self._raw_root + raw_path, "query_string": query,
            "headers": headers, "state": self._app_state.copy(),
        }
        if self._tls is not None:
            scope["extensions"] = {"tls": self._tls}
        return scope
