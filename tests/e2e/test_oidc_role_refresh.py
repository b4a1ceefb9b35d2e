"""Roles the provider withdraws are withdrawn at the session's next refresh (issue 11 §1.5).

A real gatekeeper process and the dev provider (gatekeeper/dev/login.py) on loopback; the app's
own record (the X-Auth-Request-Groups it received) says which roles the session carried. Each
row logs alice in with her roles, withdraws one or all of them at the provider the way real
providers do, lets the access token run out and checks what the refreshed session carries —
with the session in a cookie and in Redis.

    Entra ID   drops the ``roles`` claim from the ID token once no app role is assigned
    userinfo   roles only in the userinfo answer (the ID token carries none), asked again
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from tests.conftest import Gatekeeper, Upstream, served_login_issuer
from tests.support.oidc import login_with_http_client
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import free_port

CLIENT_ID = "gatekeeper"
CLIENT_SECRET = "dev-client-secret"
SESSION_SECRET = "role-refresh-session-secret-0123456789abcdef"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PAGE = "/hello"
STORES = ["cookie", "redis"]


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {store: free_port() for store in STORES}


@pytest.fixture(scope="module")
def op(ports: dict[str, int]) -> Iterator[tuple[DevIssuer, DevLogin]]:
    callbacks = [f"http://127.0.0.1:{port}/oauth2/callback" for port in ports.values()]
    with served_login_issuer(callbacks, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as pair:
        yield pair


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


@pytest.fixture(scope="module")
def gks(gatekeeper_factory: Callable[..., Gatekeeper], op: tuple[DevIssuer, DevLogin],
        ports: dict[str, int], redis_server: RedisServer) -> dict[str, Gatekeeper]:
    issuer = op[0]

    def config(store: str) -> dict[str, Any]:
        port = ports[store]
        session: dict[str, Any] = {"secret": SESSION_SECRET, "cookie_secure": False, "store": store}
        if store == "redis":
            session["redis_url"] = redis_server.url
        return {
            "listen": f"127.0.0.1:{port}",
            "oidc": {"issuer": issuer.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                     "redirect_url": f"http://127.0.0.1:{port}/oauth2/callback",
                     "refresh_margin_seconds": 0},
            "session": session,
        }
    return {store: gatekeeper_factory(**config(store)) for store in STORES}


@dataclass(frozen=True)
class Withdrawal:
    at_login: Callable[[DevLogin], None]  # how the provider states roles
    withdraw: Callable[[DevLogin], None]  # what changes at the provider before the refresh
    before: str  # X-Auth-Request-Groups after login
    after: str | None  # … after the refresh (None: no header at all)


def _id_token_roles(roles_at_refresh: list[str] | None) -> Callable[[DevLogin], None]:
    """The refreshed ID token names these roles; None: it has no roles claim (Entra ID)."""
    def withdraw(provider: DevLogin) -> None:
        def hook(header: dict[str, Any], claims: dict[str, Any], phase: str) -> str | None:
            if phase == "refresh":
                if roles_at_refresh is None:
                    claims.pop("roles", None)
                else:
                    claims["roles"] = roles_at_refresh
            return None
        provider.id_token_hook = hook
    return withdraw


def _roles_in_id_token_only(provider: DevLogin) -> None:
    provider.userinfo_overrides = {"roles": None}


def _roles_in_userinfo_only(provider: DevLogin) -> None:
    def hook(header: dict[str, Any], claims: dict[str, Any], phase: str) -> str | None:
        claims.pop("roles", None)
        return None
    provider.id_token_hook = hook


def _userinfo_roles(roles: list[str] | None) -> Callable[[DevLogin], None]:
    def withdraw(provider: DevLogin) -> None:
        provider.userinfo_overrides = {"roles": roles}
    return withdraw


WITHDRAWALS = [
    pytest.param(Withdrawal(_roles_in_id_token_only, _id_token_roles(None), "admin,user", None),
                 id="the refreshed ID token has no roles claim any more"),
    pytest.param(Withdrawal(_roles_in_id_token_only, _id_token_roles([]), "admin,user", None),
                 id="the refreshed ID token has an empty roles claim"),
    pytest.param(Withdrawal(_roles_in_id_token_only, _id_token_roles(["user"]), "admin,user", "user"),
                 id="the refreshed ID token names fewer roles"),
    pytest.param(Withdrawal(_roles_in_userinfo_only, _userinfo_roles(["user"]), "admin,user", "user"),
                 id="userinfo no longer lists a role"),
    pytest.param(Withdrawal(_roles_in_userinfo_only, _userinfo_roles(None), "admin,user", None),
                 id="userinfo no longer has a roles claim"),
]


def _log_in(gk: Gatekeeper, issuer: DevIssuer, client: httpx.Client) -> None:
    started = client.get(PAGE)
    assert started.status_code == 302, started.text
    assert started.headers["location"].startswith(f"{issuer.issuer}/authorize?")
    callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
    answer = client.get(callback)
    assert answer.status_code == 302, answer.text


@pytest.mark.parametrize("store", STORES, ids=["cookie session", "redis session"])
@pytest.mark.parametrize("case", WITHDRAWALS)
def test_a_role_withdrawn_at_the_provider_is_gone_after_the_refresh(
    gks: dict[str, Gatekeeper], op: tuple[DevIssuer, DevLogin], upstream: Upstream,
    store: str, case: Withdrawal,
) -> None:
    issuer, provider = op
    gk = gks[store]
    provider.id_token_hook = None
    provider.userinfo_overrides = {}
    case.at_login(provider)
    provider.access_token_ttl_seconds = 1
    frozen = time.time()  # the provider's own userinfo check never sees its token expire
    provider.clock = lambda: frozen
    try:
        with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER) as client:
            _log_in(gk, issuer, client)
            assert client.get(PAGE).status_code == 200
            assert upstream.recorder.last.header("x-auth-request-groups") == case.before
            refreshes = provider.grant_counts["refresh_token"]
            # Gatekeeper's expiry is int(time of the token answer) + 1: wait past it.
            time.sleep(max(0.0, int(time.time()) + 1 - time.time()) + 0.05)

            case.withdraw(provider)
            provider.access_token_ttl_seconds = 300
            page = client.get(PAGE)

        assert provider.grant_counts["refresh_token"] == refreshes + 1
        assert page.status_code == 200, page.text
        # Still alice, named in her issuer's space (the suite's bearer issuer is a second one).
        assert upstream.recorder.last.header("x-auth-request-user") == f"{issuer.issuer}#alice"
        assert upstream.recorder.last.header("x-auth-request-groups") == case.after
    finally:
        provider.id_token_hook = None
        provider.userinfo_overrides = {}
        provider.access_token_ttl_seconds = 300
        provider.clock = time.time
