"""The policy page of a running gatekeeper: who gets it (trusted peer, token, nobody else), and
what it shows of the live traffic — the proxy's own denies and routes.

Every connection here comes from 127.0.0.1, so a refused peer is made by configuration: a
gatekeeper that trusts only 10.0.0.0/8 must refuse loopback, whatever X-Forwarded-For claims.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper
from tests.support.fakes import mint
from tests.support.policy import copy_default_policy

TOKEN = "e2e-admin-token-" + "z" * 32
WRONG = "e2e-wrong-token-" + "z" * 32


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return copy_default_policy(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="module")
def loopback_gk(gatekeeper_factory: Callable[..., Gatekeeper],
                policy_dir: dict[str, str]) -> Gatekeeper:
    """The defaults: loopback peers trusted, no token."""
    return gatekeeper_factory(policy={**policy_dir, "watch": False})


@pytest.fixture(scope="module")
def pod_gk(gatekeeper_factory: Callable[..., Gatekeeper], policy_dir: dict[str, str]) -> Gatekeeper:
    """Trusts the pod network only (so not the tests' loopback), and takes a token."""
    return gatekeeper_factory(policy={**policy_dir, "watch": False},
                              admin={"trusted_peers": ["10.0.0.0/8"], "token": TOKEN})


def get(gk: Gatekeeper, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    with gk.admin() as admin:
        return admin.get(path, headers=headers)


def test_a_loopback_peer_gets_the_page_by_default(loopback_gk: Gatekeeper) -> None:
    response = get(loopback_gk, "/policy")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert 'id="fact-digest"' in response.text


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 404),
    ({"X-Forwarded-For": "10.1.2.3"}, 404),
    ({"Forwarded": "for=10.1.2.3"}, 404),
    ({"Authorization": f"Bearer {WRONG}"}, 401),
    ({"Authorization": f"Bearer {TOKEN}"}, 200),
], ids=["an untrusted peer gets 404", "X-Forwarded-For cannot name a trusted peer",
        "Forwarded cannot either", "a wrong token gets 401", "the token opens the page"])
def test_an_untrusted_peer_needs_the_token(pod_gk: Gatekeeper, headers: dict[str, str],
                                           status: int) -> None:
    assert get(pod_gk, "/policy", headers).status_code == status
    assert get(pod_gk, "/policy/explain?sub=a&path=/", headers).status_code == status


def test_a_refused_page_answers_as_a_missing_one_and_the_probes_stay_open(
        pod_gk: Gatekeeper) -> None:
    refused, missing = get(pod_gk, "/policy"), get(pod_gk, "/no-such-page")
    assert (refused.status_code, refused.content) == (missing.status_code, missing.content)
    assert get(pod_gk, "/healthz").status_code == 200


def test_no_token_ever_reaches_the_log(pod_gk: Gatekeeper) -> None:
    get(pod_gk, "/policy", {"Authorization": f"Bearer {WRONG}"})
    get(pod_gk, "/policy", {"Authorization": f"Bearer {TOKEN}"})
    output = pod_gk.process.output()
    assert "wrong admin token" in output
    assert TOKEN not in output and WRONG not in output


def test_the_page_shows_the_proxys_denies_and_routes(loopback_gk: Gatekeeper,
                                                     issuer: DevIssuer) -> None:
    viewer = mint(issuer, "vera", claims={"roles": ["viewer"]})
    with loopback_gk.client() as client:
        assert client.get("/api/p1/items", headers={"Authorization": f"Bearer {viewer}"}
                          ).status_code == 200
        assert client.get("/admin/users", headers={"Authorization": f"Bearer {viewer}"}
                          ).status_code == 403
        assert client.get("/api/me").status_code == 401
    page = get(loopback_gk, "/policy").text
    denies = page[page.index('<table id="denies">'):page.index("</table>",
                                                                page.index('<table id="denies">'))]
    assert "vera" in denies and "/admin/users" in denies and "no_matching_rule" in denies
    assert "no_credentials" in denies and "/api/me" in denies
    matrix = page[page.index('<table id="matrix">'):]
    assert "GET /api/p1/items" in matrix and "GET /admin/users" in matrix


def test_explain_decides_with_the_policy_in_force(loopback_gk: Gatekeeper) -> None:
    allowed = get(loopback_gk, "/policy/explain?sub=ann&role=admin&method=GET&path=/admin/x").json()
    denied = get(loopback_gk, "/policy/explain?sub=ann&role=viewer&method=GET&path=/admin/x").json()
    assert (allowed["allowed"], allowed["reason"]) == (True, "policy_allow")
    assert (denied["allowed"], denied["reason"]) == (False, "no_matching_rule")
