"""The admin listener: /healthz (the process serves), /readyz (it can do its job), /metrics.

Kubernetes: the sidecar's startup and liveness probes use /healthz; the pod's readiness uses
/readyz. A startup probe on /readyz would wait for an app that starts only after the sidecar.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatekeeper.authn.jwks import IssuerKeys
from gatekeeper.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


class UpstreamProbe:
    """Is the app accepting TCP connections? Cached briefly so probes cannot hammer it."""

    def __init__(self, host: str, port: int, ttl: float = 1.0, timeout: float = 1.0) -> None:
        self._host, self._port = host, port
        self._ttl, self._timeout = ttl, timeout
        self._last: tuple[float, Check] | None = None

    async def check(self) -> Check:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self._ttl:
            return self._last[1]
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), self._timeout)
            writer.close()
            result = Check(True, f"{self._host}:{self._port} accepts connections")
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or "refused")
            result = Check(False, f"{self._host}:{self._port}: {reason}")
        self._last = (now, result)
        return result


def create_admin_app(
    metrics: Metrics,
    issuers: Mapping[str, IssuerKeys],
    upstream: UpstreamProbe,
    extra_checks: Mapping[str, Callable[[], Awaitable[Check]]] | None = None,
) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, dict[str, Any]] = {"config": {"ok": True, "detail": "valid"}}
        for name, keys in issuers.items():
            checks[f"issuer {name}"] = {
                "ok": keys.ready,
                "detail": "keys loaded" if keys.ready else f"no keys: {keys.last_error}",
                "stale_error": keys.last_error if keys.ready else None,
            }
        result = await upstream.check()
        checks["upstream"] = {"ok": result.ok, "detail": result.detail}
        for name, probe in (extra_checks or {}).items():
            extra = await probe()
            checks[name] = {"ok": extra.ok, "detail": extra.detail}
        ready = all(c["ok"] for c in checks.values())
        failing = [name for name, c in checks.items() if not c["ok"]]
        return JSONResponse({"ready": ready, "failing": failing, "checks": checks},
                            status_code=200 if ready else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
    ])
