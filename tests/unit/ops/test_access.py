"""ops/access.py: the policy page is for a trusted peer or the admin token; everyone else gets
the answer of a path that does not exist (or 401 for a wrong token). Fail closed."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gatekeeper.settings.admin import AdminSettings
from tests.support.admin import PolicyAdmin, policy_admin
from tests.support.fakes import run

TOKEN = "page-token-" + "k" * 32
POLICY = "p, role:viewer, /docs/*, GET, allow\n"
WITH_TOKEN = AdminSettings(token=SecretStr(TOKEN))
TOKEN_ONLY = AdminSettings(token=SecretStr(TOKEN), trusted_peers=[])
PODS = AdminSettings(trusted_peers=["10.0.0.0/8"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CASES = [
    # (admin settings, peer, Host, headers, path, expected status)
    pytest.param(AdminSettings(), "127.0.0.1", "127.0.0.1:9901", {}, "/policy", 200,
                 id="a loopback peer gets the page by default"),
    pytest.param(AdminSettings(), "127.0.0.7", "localhost:9901", {}, "/policy", 200,
                 id="all of 127/8 is loopback, and Host localhost names this host"),
    pytest.param(AdminSettings(), "::1", "[::1]:9901", {}, "/policy", 200,
                 id="the IPv6 loopback is trusted by default"),
    pytest.param(AdminSettings(), "::ffff:127.0.0.1", "127.0.0.1", {}, "/policy", 200,
                 id="an IPv4-mapped loopback peer on a dual-stack listener is loopback"),
    pytest.param(AdminSettings(), "10.1.2.3", "10.0.0.5:9901", {}, "/policy", 404,
                 id="a pod-network peer gets 404 by default"),
    pytest.param(AdminSettings(), "10.1.2.3", "10.0.0.5:9901", {}, "/policy/explain", 404,
                 id="every policy path is guarded, explain too"),
    pytest.param(AdminSettings(), "10.1.2.3", "10.0.0.5:9901", {}, "/policy/", 404,
                 id="a trailing slash is not a way around"),
    pytest.param(AdminSettings(), "10.1.2.3", "10.0.0.5:9901",
                 {"X-Forwarded-For": "127.0.0.1"}, "/policy", 404,
                 id="X-Forwarded-For does not make a peer trusted"),
    pytest.param(AdminSettings(), "10.1.2.3", "10.0.0.5:9901", bearer(TOKEN), "/policy", 404,
                 id="without admin.token no bearer opens the page"),
    pytest.param(AdminSettings(), "127.0.0.1", "attacker.example:9901", {}, "/policy", 404,
                 id="a loopback peer naming another host is refused (DNS rebinding)"),
    pytest.param(AdminSettings(), "127.0.0.1", "127.0.0.1.attacker.example", {}, "/policy", 404,
                 id="a name that starts like an address is a name"),
    pytest.param(PODS, "10.9.8.7", "10.0.0.5:9901", {}, "/policy", 200,
                 id="a peer in configured trusted_peers gets the page"),
    pytest.param(PODS, "127.0.0.1", "127.0.0.1:9901", {}, "/policy", 404,
                 id="loopback is not trusted once trusted_peers leaves it out"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example:9901", bearer(TOKEN), "/policy", 200,
                 id="the right token opens the page from any peer and Host"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example", {"Authorization": f"bearer {TOKEN}"},
                 "/policy/explain?sub=a", 200, id="the bearer scheme is case-insensitive"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example", bearer(TOKEN[:-1]), "/policy", 401,
                 id="a prefix of the token is refused"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example", bearer(TOKEN + "x"), "/policy", 401,
                 id="the token plus a character is refused"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example", {"Authorization": f"Basic {TOKEN}"},
                 "/policy", 401, id="the token under another scheme is refused"),
    pytest.param(WITH_TOKEN, "127.0.0.1", "127.0.0.1", bearer("wrong-" + TOKEN), "/policy", 401,
                 id="a wrong token is refused even from a trusted peer"),
    pytest.param(WITH_TOKEN, "203.0.113.9", "gk.example", {}, "/policy", 404,
                 id="no token from an untrusted peer is a 404"),
    pytest.param(TOKEN_ONLY, "127.0.0.1", "127.0.0.1", {}, "/policy", 404,
                 id="trusted_peers [] leaves only the token"),
    pytest.param(TOKEN_ONLY, "127.0.0.1", "127.0.0.1", bearer(TOKEN), "/policy", 200,
                 id="trusted_peers [] with the token"),
]


@pytest.mark.parametrize(("admin", "peer", "host", "headers", "path", "status"), CASES)
def test_who_gets_the_policy_page(tmp_path: Path, admin: AdminSettings, peer: str, host: str,
                                  headers: dict[str, str], path: str, status: int) -> None:
    async def scenario() -> httpx.Response:
        async with policy_admin(tmp_path, POLICY, admin=admin) as page:
            return await page.get(path, peer=peer, host=host, headers=headers)

    response = run(scenario())
    assert response.status_code == status, response.text


def test_a_refused_caller_cannot_tell_the_page_from_a_missing_path(tmp_path: Path) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with policy_admin(tmp_path, POLICY) as page:
            return (await page.get("/policy", peer="10.1.2.3"),
                    await page.get("/no-such-page", peer="10.1.2.3"))

    refused, missing = run(scenario())
    assert (refused.status_code, refused.content, refused.headers.get("content-type")) == (
        missing.status_code, missing.content, missing.headers.get("content-type"))


def test_a_wrong_token_gets_a_bearer_challenge_and_is_logged_without_the_token(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-" + TOKEN

    async def scenario() -> httpx.Response:
        async with policy_admin(tmp_path, POLICY, admin=WITH_TOKEN) as page:
            return await page.get("/policy", peer="203.0.113.9", headers=bearer(wrong))

    with caplog.at_level(logging.DEBUG):
        response = run(scenario())
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="gatekeeper-admin"')
    assert response.json()["error"] == "unauthorized"
    assert any("wrong admin token" in r.getMessage() for r in caplog.records)
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert wrong not in logged and TOKEN not in logged


def test_the_probes_stay_open_to_every_peer(tmp_path: Path) -> None:
    async def scenario() -> PolicyAdmin:
        async with policy_admin(tmp_path, POLICY, admin=TOKEN_ONLY) as page:
            assert (await page.get("/healthz", peer="10.1.2.3")).status_code == 200
            assert (await page.get("/metrics", peer="10.1.2.3")).status_code == 200
            return page

    run(scenario())


def test_without_a_policy_there_is_no_page_even_for_a_trusted_peer(tmp_path: Path) -> None:
    async def scenario() -> httpx.Response:
        async with policy_admin(tmp_path, POLICY, with_page=False) as page:
            return await page.get("/policy")

    assert run(scenario()).status_code == 404
