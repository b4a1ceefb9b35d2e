"""The access log names the path each request asked for: gatekeeper's own routes included (the
login routes under ``/oauth2/``, forward-auth), not only proxied requests. A real gatekeeper
process with browser login at a dev provider; its output is read line by line.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Gatekeeper, callback_of, login_oidc, served_login_issuer
from tests.support.poll import eventually
from tests.support.servers import free_port

ROUTES = [
    ("/oauth2/start", 302),
    ("/oauth2/userinfo", 401),
    ("/oauth2/sign_out", 302),
    ("/oauth2/callback", 400),
]


@pytest.fixture
def login_gatekeeper(start_gatekeeper: Callable[..., Gatekeeper]) -> Iterator[Gatekeeper]:
    port = free_port()
    with served_login_issuer([callback_of(port)]) as (issuer, _):
        yield start_gatekeeper(
            listen=f"127.0.0.1:{port}", oidc=login_oidc(issuer, port),
            session={"secret": secrets.token_urlsafe(32), "cookie_secure": False},
            trusted_proxies=["127.0.0.1/32"], forward_auth={"proxy": "traefik"})


def entries(gk: Gatekeeper) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gk.access_log() if line.startswith("{")
            and "status" in line]


def test_each_login_route_is_logged_with_its_own_path(login_gatekeeper: Gatekeeper) -> None:
    with login_gatekeeper.client(headers={"accept": "application/json"}) as client:
        got = [(path, client.get(path).status_code) for path in [p for p, _ in ROUTES]]
        assert got == ROUTES
        ask = client.get("/oauth2/auth", headers={"X-Forwarded-Uri": "/public/page",
                                                  "X-Forwarded-Method": "GET"})
        assert ask.status_code == 202
    assert eventually(lambda: len(entries(login_gatekeeper)) >= len(ROUTES) + 1, 5)
    logged = [(e["path"], e["status"]) for e in entries(login_gatekeeper)]
    # Forward-auth logs the request it was asked about: that is what was decided.
    assert logged == [*ROUTES, ("/public/page", 202)]
