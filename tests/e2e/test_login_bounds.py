"""Nothing a client sends at the login routes creates unbounded state: abandoned logins do not
pile up cookies until the callback is 431, and a provider's ``error=`` (anyone can write one)
never becomes a new metric series. A real gatekeeper process and a dev OpenID Provider.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.login.state import MAX_PENDING_LOGINS
from tests.conftest import Gatekeeper, login_oidc
from tests.support.oidc import login_with_http_client

SESSION_SECRET = "bounds-e2e-session-secret-0123456789abcdef"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
ABANDONED = 150  # ~130 made the callback 431 before the bound


@pytest.fixture(scope="module")
def gk(gatekeeper_factory: Callable[..., Gatekeeper], login_issuer: DevIssuer, login_port: int) -> Gatekeeper:
    return gatekeeper_factory(
        listen=f"127.0.0.1:{login_port}",
        oidc=login_oidc(login_issuer, login_port),
        session={"secret": SESSION_SECRET, "cookie_secure": False},
    )


def state_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


def login_cookies(client: httpx.Client) -> list[str]:
    return [c.name for c in client.cookies.jar if c.name.startswith("_gatekeeper_login_")]


def test_abandoned_logins_are_capped_and_the_next_login_completes(gk: Gatekeeper) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10, headers=BROWSER) as client:
        first = client.get("/hello")
        states = [state_of(first.headers["location"])]
        for _ in range(ABANDONED):  # a protected page opened while signed out, never finished
            response = client.get("/hello")
            assert response.status_code == 302
            states.append(state_of(response.headers["location"]))
        assert len(login_cookies(client)) <= 1 + MAX_PENDING_LOGINS
        assert f"_gatekeeper_login_{states[-1]}" in login_cookies(client)

        last = client.get("/oauth2/start", params={"rd": "/hello"})
        callback = login_with_http_client(client, last.headers["location"], "alice", "alice-password")
        back = client.get(callback)
        assert back.status_code == 302 and back.headers["location"] == "/hello"
        assert client.get("/oauth2/userinfo").json()["sub"]

        oldest = client.get("/oauth2/callback", params={"code": "c", "state": states[0]},
                            headers={"accept": "application/json"})
    assert oldest.status_code == 400 and oldest.json()["error"] == "login_state_unknown"


def series(gk: Gatekeeper, metric: str) -> set[str]:
    text = httpx.get(gk.admin_url + "/metrics", trust_env=False, timeout=10).text
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith(metric + "{")}


def test_provider_error_codes_a_client_makes_up_add_no_metric_series(gk: Gatekeeper) -> None:
    with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
        started = client.get("/oauth2/start", params={"rd": "/"}, headers=BROWSER)
        state = state_of(started.headers["location"])
        cookie = f"_gatekeeper_login_{state}={client.cookies[f'_gatekeeper_login_{state}']}"
        before = {m: series(gk, m) for m in ("gatekeeper_requests_total", "gatekeeper_logins_total")}
        for i in range(300):  # the login cookie replayed: the deletion is only a request
            response = client.get("/oauth2/callback", headers={"cookie": cookie},
                                  params={"state": state, "error": f"made_up_{i}_{secrets.token_hex(4)}"})
            assert response.status_code == 400
            assert response.json()["error"] == "provider_other"
        known = client.get("/oauth2/callback", headers={"cookie": cookie},
                           params={"state": state, "error": "temporarily_unavailable"})
        assert known.json()["error"] == "provider_temporarily_unavailable"
    for metric, old in before.items():
        added = series(gk, metric) - old
        assert len(added) <= 2, sorted(added)[:5]  # provider_other and the one known code
        assert not [s for s in added if re.search(r"made_up", s)]
