"""One request's state from the first byte to the access-log line: the ``Exchange``.

It *is* the read-only ``RequestView`` (one object per request on the hottest path, not two),
plus what is per request but not the request: its id (``X-Request-Id``), when it started, the
``Set-Cookie`` jar every answer carries (a session refreshed or ended, a login's state), the
body framing checked once at the edge, its W3C trace context, and the seconds the app took.
Only the edge and the stages that set cookies (a session refreshed or ended) see an
``Exchange``; the others take the ``RequestView`` they need.

For forward-auth, the exchange is about the request the ingress asks about (its method, path,
headers) while the id, start and jar are those of the check itself.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.cookies import CookieJar
from gatekeeper.request import RequestView
from gatekeeper.tracecontext import RequestSpan, TraceContext


class Exchange(RequestView):
    __slots__ = ("framing", "request_id", "scope", "set_cookies", "span", "started", "trace",
                 "upstream_seconds")

    def __init__(self, scope: dict[str, Any], path: str, request_id: str, started: float) -> None:
        super().__init__(scope, path)
        self.scope = scope  # the server's, for an app called in process (edge/inprocess.py)
        self.request_id = request_id
        self.started = started  # time.perf_counter() when the request arrived
        # Cookies the answer must set, whatever it is; None until a stage sets one.
        self.set_cookies: CookieJar | None = None
        # (has a body, its Content-Length or None for chunked): edge/proxy.py's body_framing,
        # checked once before the pipeline runs; (False, None) where no body is forwarded.
        self.framing: tuple[bool, int | None] = _NO_BODY
        self.upstream_seconds: float | None = None  # until the app's headers (access log)
        # The W3C trace this request is part of: set by the edge (tracecontext.py).
        self.trace: TraceContext | None = None
        self.span: RequestSpan | None = None  # recorded only when tracing exports (otel.py)

    def cookies_out(self) -> CookieJar:
        if self.set_cookies is None:
            self.set_cookies = CookieJar()
        return self.set_cookies


_NO_BODY: tuple[bool, int | None] = (False, None)
