"""``gatekeeper.Gatekeeper`` in front of a real Starlette app, in process: the caller on
``request.user`` / ``request.auth.scopes`` as Starlette's AuthenticationMiddleware puts them
(``@requires`` works), gatekeeper's answers for what it refuses, WebSockets, and starting with
or without the server's lifespan. (The decision tables run through this shape too:
test_decisions.py, test_identity_headers.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from gatekeeper import Gatekeeper
from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.errors import ConfigError
from tests.support.asgi import serve
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse({
        "authenticated": user.is_authenticated, "identity": user.identity,
        "display_name": user.display_name, "scopes": request.auth.scopes,
        "header_user": request.headers.get("x-auth-request-user"),
        "path": request.url.path,
    })


@requires("admin")
async def admin_only(request: Request) -> JSONResponse:
    return JSONResponse({"admin": request.user.identity})


async def socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"identity": websocket.user.identity,
                               "scopes": websocket.auth.scopes})
    await websocket.close()


started: list[str] = []


@contextlib.asynccontextmanager
async def lifespan_app(app: Starlette) -> AsyncIterator[None]:
    started.append("app startup")
    yield
    started.append("app shutdown")


def starlette_app() -> Starlette:
    return Starlette(routes=[
        Route("/api/{rest:path}", whoami, methods=["GET", "POST", "DELETE"]),
        Route("/public/{rest:path}", whoami),
        Route("/admin/{rest:path}", admin_only, methods=["GET", "PUT"]),
        WebSocketRoute("/ws", socket),
    ], lifespan=lifespan_app)


def test_the_caller_is_request_user_with_scopes_and_the_identity_headers(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    token = mint(issuer, "alice", claims={"roles": ["viewer"], "name": "Alice A.",
                                          "scope": "items:read"})

    async def scenario(gk: Any) -> Any:
        return await gk.http("GET", "/api/me", headers=[
            bearer(token), (b"x-auth-request-user", b"mallory")])

    answer = serve(make_settings(), scenario, inner=starlette_app())
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body == {"authenticated": True, "identity": "alice", "display_name": "Alice A.",
                    "scopes": ["authenticated", "viewer", "items:read"], "header_user": "alice",
                    "path": "/api/me"}
    assert answer.header("x-request-id")


def test_requires_sees_the_roles_and_gatekeeper_refuses_before_the_app(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    viewer, admin = (mint(issuer, "alice", claims={"roles": [role]}) for role in ("viewer", "admin"))

    async def scenario(gk: Any) -> list[int]:
        return [(await gk.http("GET", "/admin/x", headers=[bearer(viewer)])).status,
                (await gk.http("GET", "/admin/x", headers=[bearer(admin)])).status,
                (await gk.http("GET", "/api/me")).status]

    # No policy: any caller with a token reaches the app, whose @requires("admin") decides.
    assert serve(make_settings(), scenario, inner=starlette_app()) == [403, 200, 401]


def test_the_policy_decides_before_the_app_is_called(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    viewer = mint(issuer, "alice", claims={"roles": ["viewer"]})

    async def scenario(gk: Any) -> list[tuple[int, str | None]]:
        found = []
        for method, path in (("GET", "/api/p1/items"), ("POST", "/api/p1/items"),
                             ("GET", "/public/readme")):
            answer = await gk.http(method, path, headers=[bearer(viewer)] if method == "POST"
                                   or path.startswith("/api") else [])
            found.append((answer.status, answer.header("content-type")))
        return found

    assert serve(make_settings(policy=EXAMPLE_POLICY), scenario, inner=starlette_app()) == [
        (200, "application/json"), (403, "application/json"), (200, "application/json")]


def test_an_anonymous_caller_on_a_public_path_is_an_unauthenticated_user(
    make_settings: MakeSettings,
) -> None:
    async def scenario(gk: Any) -> Any:
        return await gk.http("GET", "/public/readme")

    body = serve(make_settings(), scenario, inner=starlette_app()).json()
    assert (body["authenticated"], body["identity"], body["scopes"], body["header_user"]) == (
        False, "", [], None)


def test_a_websocket_reaches_the_app_with_its_caller_and_is_refused_without_one(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    token = mint(issuer, "alice", claims={"roles": ["viewer"]})

    async def scenario(gk: Any) -> tuple[Any, Any]:
        allowed = await gk.websocket("/ws", headers=[bearer(token)], messages=[])
        refused = await gk.websocket("/ws", messages=[])
        return allowed, refused

    allowed, refused = serve(make_settings(), scenario, inner=starlette_app())
    assert allowed.accepted and not refused.accepted
    assert refused.denial is not None and refused.denial.status == 401


def test_without_a_lifespan_the_first_request_starts_it(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    """httpx's ASGITransport runs no lifespan: gatekeeper starts on the first request."""
    app = Gatekeeper(starlette_app(), settings=make_settings())
    token = mint(issuer)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gk.test") as client:
            statuses = [(await client.get("/api/me")).status_code,
                        (await client.get("/api/me", headers={"authorization": f"Bearer {token}"})
                         ).status_code]
        await app.shutdown()
        return statuses

    assert asyncio.run(scenario()) == [401, 200]


def test_gatekeeper_starts_before_the_apps_startup_and_stops_after_its_shutdown(
    make_settings: MakeSettings,
) -> None:
    started.clear()

    async def scenario(gk: Any) -> list[str]:
        return list(started)

    assert serve(make_settings(), scenario, inner=starlette_app()) == ["app startup"]
    assert started == ["app startup", "app shutdown"]


def test_a_bad_config_is_refused_when_the_middleware_is_made(tmp_path: Path) -> None:
    config = tmp_path / "gatekeeper.yaml"
    config.write_text("auth:\n  leeway_seconds: -5\npublic_paths: [nope]\n")
    with pytest.raises(ConfigError) as caught:
        Gatekeeper(starlette_app(), config=config, environ={})
    assert any(p.startswith("auth.leeway_seconds") for p in caught.value.problems)
    assert any(p.startswith("public_paths") for p in caught.value.problems)
    with pytest.raises(TypeError):
        Gatekeeper(starlette_app())
