"""``gatekeeper demo``: a dev OpenID issuer (tokens and a login page), an echo app and gatekeeper in
front of it, in one process.

Everything binds to 127.0.0.1. The demo proves itself on start: it sends allowed and denied
requests through the proxy, logs in through the browser flow with an HTTP client, and prints what
happened; then it prints curl lines and the URL to open in a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import secrets
import socket
import tempfile
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gatekeeper import logs
from gatekeeper.app import create_app
from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.issuer_http import create_issuer_app
from gatekeeper.dev.login import DEMO_USERS, DevClient, DevLogin
from gatekeeper.settings import Settings
from gatekeeper.wiring.admin import QuietServer

AUDIENCE = "demo-api"

# The default model of policies/model.conf, with a small policy for the demo's users.
DEMO_MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)
"""
DEMO_POLICY = """# Roles come from the token's "roles" claim; admins are users too.
g, role:admin, role:user
p, role:anonymous, /public/*, GET|HEAD, allow
p, role:user, /hello, GET, allow
p, role:admin, /admin/*, *, allow
"""
TOKEN_TTL_SECONDS = 12 * 3600
DEMO_CLIENT_ID = "gatekeeper-demo"
_FORM_INPUT = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def create_echo_app() -> Starlette:
    """The 'app' behind gatekeeper: shows what it received, identity headers first."""

    async def echo(request: Request) -> JSONResponse:
        identity = {k: v for k, v in request.headers.items() if k.startswith("x-auth-request-")}
        return JSONResponse(
            {
                "app": "echo",
                "method": request.method,
                "path": request.url.path,
                "identity_headers": identity,
                "x_forwarded_for": request.headers.get("x-forwarded-for"),
            }
        )

    return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST", "PUT", "DELETE"])])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_tokens(issuer: DevIssuer) -> dict[str, str]:
    """The demo's bearer tokens. alice and bob are the dev login's users (DEMO_USERS): one
    e-mail address and one set of roles each, whether they sign in or send a token."""
    users = {user.username: user for user in DEMO_USERS}
    alice, bob = users["alice"], users["bob"]
    return {
        "alice": issuer.mint(alice.sub, audience=AUDIENCE, ttl_seconds=TOKEN_TTL_SECONDS,
                             claims={"email": alice.email, "roles": list(alice.roles)}),
        "carol": issuer.mint("carol", audience=AUDIENCE, ttl_seconds=TOKEN_TTL_SECONDS,
                             claims={"email": "carol@example.test", "roles": ["user"]}),
        # The wrong audience on purpose: the demo shows it refused.
        "bob": issuer.mint(bob.sub, audience="some-other-api", ttl_seconds=TOKEN_TTL_SECONDS,
                           claims={"email": bob.email}),
    }


def _server(app: Any, port: int, quiet: bool = True, **kwargs: Any) -> uvicorn.Server:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_config=None, log_level="warning", **kwargs
    )
    return QuietServer(config) if quiet else uvicorn.Server(config)


async def _self_check(base: str, tokens: dict[str, str]) -> list[str]:
    lines = []
    async with httpx.AsyncClient(trust_env=False) as client:
        cases = [
            ("alice, valid token", "/hello", {"Authorization": f"Bearer {tokens['alice']}"}),
            ("alice (role admin)", "/admin/users", {"Authorization": f"Bearer {tokens['alice']}"}),
            ("carol (role user): policy says no", "/admin/users",
             {"Authorization": f"Bearer {tokens['carol']}"}),
            ("no token", "/hello", {}),
            ("bob, token for another audience", "/hello", {"Authorization": f"Bearer {tokens['bob']}"}),
            ("spoofed identity header, no token", "/hello", {"X-Auth-Request-User": "admin"}),
            ("anonymous on a public path", "/public/info", {}),
        ]
        for label, path, headers in cases:
            response = await client.get(base + path, headers=headers)
            shown = response.json().get("identity_headers", response.json().get("error"))
            lines.append(f"  {response.status_code}  GET {path:<13} {label:<39} → {json.dumps(shown)}")
    lines.append(await _browser_login_check(base))
    return lines


async def _browser_login_check(base: str) -> str:
    """What a browser does: protected page → login form → callback → the page, now signed in."""
    async with httpx.AsyncClient(trust_env=False, headers={"accept": "text/html"}) as browser:
        to_login = await browser.get(base + "/hello")
        form = await browser.get(to_login.headers["location"])
        fields = {name: html.unescape(value) for name, value in _FORM_INPUT.findall(form.text)}
        fields.update(username="bob", password="bob-password", action="login")
        back = await browser.post(str(form.url), data=fields)  # the form posts to /authorize
        callback = await browser.get(back.headers["location"])
        page = await browser.get(base + callback.headers["location"])
        shown = page.json().get("identity_headers")
    label = "bob, browser login at the dev issuer's form"
    return f"  {page.status_code}  GET {'/hello':<13} {label:<39} → {json.dumps(shown)}"


async def _demo(port: int, admin_port: int, exit_after_check: bool, policy_dir: Path) -> int:
    issuer_port, echo_port = _free_port(), _free_port()
    issuer = DevIssuer(f"http://127.0.0.1:{issuer_port}")
    base = f"http://127.0.0.1:{port}"
    client_secret = secrets.token_urlsafe(24)
    login = DevLogin(issuer, clients=[DevClient(
        DEMO_CLIENT_ID, client_secret, [f"{base}/oauth2/callback"], [f"{base}/oauth2/signed_out"])])
    (policy_dir / "model.conf").write_text(DEMO_MODEL)
    (policy_dir / "policy.csv").write_text(DEMO_POLICY)
    settings = Settings.model_validate(
        {
            "listen": f"127.0.0.1:{port}",
            "admin_listen": f"127.0.0.1:{admin_port}",
            "upstream": f"http://127.0.0.1:{echo_port}",
            "public_paths": ["/public/*"],
            "drain_seconds": 1,
            "access_log": False,  # keep the demo's output readable
            "auth": {"issuers": [{"issuer": issuer.issuer, "audience": [AUDIENCE]}]},
            "policy": {"model": str(policy_dir / "model.conf"),
                       "policy": str(policy_dir / "policy.csv")},
            "oidc": {"issuer": issuer.issuer, "client_id": DEMO_CLIENT_ID,
                     "client_secret": client_secret, "redirect_url": f"{base}/oauth2/callback"},
            # http on loopback: a Secure cookie would not come back over plain http elsewhere.
            "session": {"secret": secrets.token_urlsafe(32), "cookie_secure": False},
        }
    )
    issuer_server = _server(create_issuer_app(issuer, login=login), issuer_port)
    echo_server = _server(create_echo_app(), echo_port)
    background = [asyncio.create_task(s.serve()) for s in (issuer_server, echo_server)]
    while not (issuer_server.started and echo_server.started):  # noqa: ASYNC110 - no event to await
        await asyncio.sleep(0.05)
    gatekeeper = _server(
        create_app(settings),
        port,
        quiet=False,
        lifespan="on",
        proxy_headers=False,
        timeout_graceful_shutdown=1,
    )
    serving = asyncio.create_task(gatekeeper.serve())
    while not gatekeeper.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    try:
        if serving.done():
            return 1
        tokens = demo_tokens(issuer)
        print(
            f"\ngatekeeper demo: proxy {base} → echo app :{echo_port}; "
            f"dev issuer {issuer.issuer}; admin http://127.0.0.1:{admin_port}/readyz\n"
        )
        print("Self-check through the proxy:")
        print("\n".join(await _self_check(base, tokens)))
        print("\nTry it yourself:")
        print(f'  ALICE="{tokens["alice"]}"')
        print(f'  CAROL="{tokens["carol"]}"')
        print(f'  curl -s -H "Authorization: Bearer $ALICE" {base}/hello      # 200, identity headers')
        print(f'  curl -si -H "Authorization: Bearer $CAROL" {base}/admin/users  # 403, by the policy')
        print(f"  curl -si {base}/hello                                        # 401, no token")
        print(f'  curl -s -H "X-Auth-Request-User: admin" {base}/public/x   # spoofed header is stripped')
        print(f"  curl -s http://127.0.0.1:{admin_port}/metrics | grep gatekeeper_requests")
        print(f"\nIn a browser: open {base}/hello and sign in as alice / alice-password (admin)")
        print(f"  or bob / bob-password; {base}/admin/users is for admins only (403 page for bob);")
        print(f"  {base}/oauth2/userinfo shows who you are, {base}/oauth2/sign_out signs out.")
        print("\nCtrl-C to stop.", flush=True)
        if exit_after_check:
            gatekeeper.should_exit = True
        await serving
    finally:
        gatekeeper.should_exit = True
        for server in (issuer_server, echo_server):
            server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(serving, *background), 5)
    return 0


def run_demo(port: int = 4180, admin_port: int = 9901, exit_after_check: bool = False) -> int:
    logs.configure("warning")
    try:
        with tempfile.TemporaryDirectory(prefix="gatekeeper-demo-") as policy_dir:
            return asyncio.run(_demo(port, admin_port, exit_after_check, Path(policy_dir)))
    except KeyboardInterrupt:
        return 0
