"""The admin listener: /healthz (the process serves), /readyz (it can do its job), /metrics,
POST /revoke when ``revocation.enabled`` (404 otherwise), the policy page (/policy,
/policy/explain: ops/policy_page.py) when a policy is configured, for trusted peers or the
admin token only (ops/access.py), and the assertion keys at /.well-known/gatekeeper/jwks.json
when ``assertion`` is set (404 otherwise).

Kubernetes: the sidecar's startup and liveness probes use /healthz; the pod's readiness uses
/readyz. A startup probe on /readyz would wait for an app that starts only after the sidecar.

    POST /revoke   Authorization: Bearer <revocation.admin_secret>
                   {"jti": "...", "expires_at": 1790000000}  or  {"sub": "...", "expires_at": ...}
                   or {"sub": "alice", "iss": "https://partner.example", "expires_at": ...}:
                   a sub is the subject as gatekeeper sees it (issuer-namespaced when several
                   issuers are configured); with iss, gatekeeper applies that issuer's prefix
    200 {"revoked": "jti:...", "expires_at": ...}   stored in Redis and broadcast to every replica
    400 bad body · 401 no or wrong secret · 503 Redis did not take it (retrying is harmless)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gatekeeper.assertion import JWKS_CACHE_CONTROL, JWKS_PATH
from gatekeeper.edge.responses import error_json
from gatekeeper.errors import BadRequest, GatekeeperError
from gatekeeper.metrics import Metrics
from gatekeeper.ops.access import AdminAccess, Guarded
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.revocation import RevocationList
from gatekeeper.settings.admin import AdminSettings
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.types import Check as Check  # re-exported: callers written before types.py

log = logging.getLogger("gatekeeper.ops.admin")
MAX_REVOKE_BODY_BYTES = 4096


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
    *,
    revocations: RevocationList | None = None,
    access: AdminAccess | None = None,
    policy_page: PolicyPage | None = None,
    jwks: Callable[[], bytes] | None = None,
) -> Starlette:
    """``access``: who may open /policy* (ops/access.py; default: loopback peers only);
    ``policy_page``: served there when a policy is configured (404 otherwise); ``jwks``: the
    assertion key ring's current JWKS body (it changes on a key reload)."""
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
        metrics.flush()  # the batched per-request values: exact at scrape time
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
    ]
    if revocations is not None:
        routes.append(Route("/revoke", _revoke_endpoint(revocations), methods=["POST"]))
    if policy_page is not None:
        routes.extend(policy_page.routes())
    if jwks is not None:
        routes.append(Route(JWKS_PATH, _jwks_endpoint(jwks), methods=["GET", "HEAD"]))
    # Before routing: a refused caller learns nothing, not even which /policy paths exist.
    guard = Middleware(Guarded, access=access or AdminAccess(AdminSettings()))
    return Starlette(routes=routes, middleware=[guard])


def _jwks_endpoint(jwks: Callable[[], bytes]) -> Callable[[Request], Awaitable[Response]]:
    async def keys(request: Request) -> Response:
        return Response(jwks(), media_type="application/json",
                        headers={"cache-control": JWKS_CACHE_CONTROL.decode()})

    return keys


def _revoke_endpoint(revocations: RevocationList) -> Callable[[Request], Awaitable[Response]]:
    async def revoke(request: Request) -> Response:
        if not revocations.admin_secret_matches(_bearer(request)):
            # Never log what was presented: it may be the secret with a typo.
            log.warning("revoke refused: missing or wrong admin secret",
                        extra={"client": request.client.host if request.client else None})
            return _error(401, "unauthorized", "Authorization: Bearer <revocation.admin_secret> "
                          "is required", {"www-authenticate": 'Bearer realm="gatekeeper-admin"'})
        try:
            body = await _body(request, MAX_REVOKE_BODY_BYTES)
            stored = await revocations.revoke(revocations.parse_request(body))
        except GatekeeperError as exc:
            return _error(exc.status, exc.code, exc.description)
        expires_at = stored.expires_at
        return JSONResponse({"revoked": stored.member,
                             "expires_at": int(expires_at) if expires_at.is_integer() else expires_at})

    return revoke


def _bearer(request: Request) -> bytes:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return credentials.strip().encode("latin-1")  # the header's bytes, as sent


async def _body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"the body must be at most {limit} bytes")
    return bytes(body)


def _error(status: int, code: str, description: str,
           headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_json(code, description), status_code=status, headers=headers,
                    media_type="application/json")
