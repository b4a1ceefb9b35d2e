"""One identity per issuer, and users apart from roles (issue 11 §1.8, §1.9), end to end.

Real gatekeeper processes in front of the recording upstream, two real dev issuers (``main``
and ``partner``, both minting an ``alice``), a real redis-server for the revocation list:

- the partner's alice gets neither the main alice's rules, nor her X-Auth-Request-User, nor her
  revocation — with the main issuer mapped into the plain name space (``subject_prefix: ""``)
  and with both issuers namespaced by default;
- a token whose ``sub`` spells a role (``admin``, ``role:admin``, case and space variants) never
  acts as that role — under a migrated policy and under one written before ``role:``;
- the same issuer for bearer tokens and browser login gives a person one subject.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import (
    AUDIENCE,
    Gatekeeper,
    Upstream,
    callback_of,
    login_oidc,
    served_issuer,
    served_login_issuer,
)
from tests.support.fakes import mint
from tests.support.oidc import login_with_http_client
from tests.support.redis import RedisServer, run_redis
from tests.support.servers import free_port

ADMIN_SECRET = secrets.token_urlsafe(30)
ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "policies" / "model.conf"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def partner() -> Iterator[DevIssuer]:
    with served_issuer() as dev:
        yield dev


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


def policy_file(directory: Path, text: str) -> dict[str, str]:
    path = directory / "policy.csv"
    path.write_text(text)
    return {"model": str(MODEL), "policy": str(path)}


def two_issuers(main: DevIssuer, partner: DevIssuer, main_prefix: str | None) -> dict[str, Any]:
    main_entry: dict[str, Any] = {"issuer": main.issuer, "audience": [AUDIENCE]}
    if main_prefix is not None:
        main_entry["subject_prefix"] = main_prefix
    return {"issuers": [main_entry, {"issuer": partner.issuer, "audience": [AUDIENCE]}]}


def start_two_issuers(gatekeeper_factory: Callable[..., Gatekeeper], directory: Path,
                      issuer: DevIssuer, partner: DevIssuer, redis: RedisServer, *,
                      mapped: bool) -> tuple[Gatekeeper, str]:
    """A gatekeeper trusting both issuers; and the main alice's subject as it names her."""
    main_alice = "alice" if mapped else f"{issuer.issuer}#alice"
    policy = (f"g, {main_alice}, role:admin\n"
              "p, role:admin, /admin/*, *, allow\n"
              "p, role:authenticated, /echo, GET, allow\n")
    gk = gatekeeper_factory(
        auth=two_issuers(issuer, partner, "" if mapped else None),
        policy=policy_file(directory, policy),
        redis={"url": redis.url, "key_prefix": f"subjects-{secrets.token_hex(4)}:"},
        revocation={"enabled": True, "admin_secret": ADMIN_SECRET, "resync_seconds": 1,
                    "max_stale_seconds": 30},
    )
    return gk, main_alice


@pytest.fixture(scope="module")
def mapped(gatekeeper_factory: Callable[..., Gatekeeper], tmp_path_factory: pytest.TempPathFactory,
           issuer: DevIssuer, partner: DevIssuer, redis: RedisServer) -> tuple[Gatekeeper, str]:
    """The main issuer explicitly in the plain name space, the partner namespaced."""
    return start_two_issuers(gatekeeper_factory, tmp_path_factory.mktemp("mapped"), issuer,
                             partner, redis, mapped=True)


@pytest.fixture(scope="module")
def namespaced(gatekeeper_factory: Callable[..., Gatekeeper],
               tmp_path_factory: pytest.TempPathFactory, issuer: DevIssuer, partner: DevIssuer,
               redis: RedisServer) -> tuple[Gatekeeper, str]:
    """Both issuers namespaced by default."""
    return start_two_issuers(gatekeeper_factory, tmp_path_factory.mktemp("namespaced"), issuer,
                             partner, redis, mapped=False)


@pytest.fixture(params=["main mapped to the plain name space", "both namespaced by default"])
def setup(request: pytest.FixtureRequest) -> tuple[Gatekeeper, str]:
    name = "mapped" if request.param.startswith("main mapped") else "namespaced"
    started: tuple[Gatekeeper, str] = request.getfixturevalue(name)
    return started


def get(gk: Gatekeeper, token: str, path: str, **headers: str) -> httpx.Response:
    with gk.client() as client:
        return client.get(path, headers={"Authorization": f"Bearer {token}", **headers})


def reason(gk: Gatekeeper, response: httpx.Response) -> str | None:
    """The access log's reason for ``response`` (found by its request id; bounded wait)."""
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gk.access_log():
            entry = json.loads(line)
            if entry.get("request_id") == request_id:
                found: str | None = entry.get("reason")
                return found
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {request_id}")


def test_the_partners_alice_does_not_get_the_main_alices_rules(
    setup: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer
) -> None:
    gk, _ = setup
    assert get(gk, mint(issuer, "alice"), "/admin/users").status_code == 200
    refused = get(gk, mint(partner, "alice"), "/admin/users")
    assert refused.status_code == 403
    assert reason(gk, refused) == "no_matching_rule"
    assert get(gk, mint(partner, "alice"), "/echo").status_code == 200  # she is still herself


def test_the_app_is_told_the_subject_of_its_issuer_and_the_issuer(
    setup: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer, upstream: Upstream
) -> None:
    gk, main_alice = setup
    spoofed = {"X-Auth-Request-Issuer": issuer.issuer, "X-Auth-Request-User": main_alice}
    for dev, user in ((issuer, main_alice), (partner, f"{partner.issuer}#alice")):
        before = len(upstream.recorder)
        assert get(gk, mint(dev, "alice"), "/echo", **spoofed).status_code == 200
        assert len(upstream.recorder) == before + 1
        seen = upstream.recorder.last
        assert seen.header("x-auth-request-user") == user
        assert seen.header("x-auth-request-issuer") == dev.issuer


def test_revoking_the_partners_alice_leaves_the_main_alice(
    setup: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer
) -> None:
    gk, main_alice = setup
    expires_at = int(time.time()) + 3600
    # Each case its own user, so that the module's parametrizations do not meet.
    user = f"u{secrets.token_hex(3)}"
    main_user = main_alice.replace("alice", user)
    ours, theirs = mint(issuer, user), mint(partner, user)
    with gk.admin() as admin:
        answer = admin.post("/revoke", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                            json={"sub": user, "iss": partner.issuer, "expires_at": expires_at})
    assert answer.status_code == 200, answer.text
    assert answer.json()["revoked"] == f"sub:{partner.issuer}#{user}"
    deadline = time.monotonic() + 5
    while get(gk, theirs, "/echo").status_code != 401:
        assert time.monotonic() < deadline, "the partner's user was not revoked"
        time.sleep(0.05)
    assert get(gk, ours, "/echo").status_code == 200
    # And the other way round: the main issuer's user, by the subject gatekeeper names her by.
    with gk.admin() as admin:
        answer = admin.post("/revoke", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                            json={"sub": main_user, "expires_at": expires_at})
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5
    while get(gk, ours, "/echo").status_code != 401:
        assert time.monotonic() < deadline, "the main issuer's user was not revoked"
        time.sleep(0.05)


def test_a_revocation_that_names_a_subject_of_no_issuer_is_refused(
    namespaced: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer
) -> None:
    """With every issuer namespaced, a plain "alice" (or another case of an issuer's prefix) is
    nobody's subject: stored, it would revoke nobody while the answer says "revoked"."""
    gk, _ = namespaced
    expires_at = int(time.time()) + 3600
    for sub in ("alice", f"{issuer.issuer.upper()}#alice", f"{partner.issuer}/#alice",
                f" {partner.issuer}#alice"):
        with gk.admin() as admin:
            answer = admin.post("/revoke", headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                                json={"sub": sub, "expires_at": expires_at})
        assert answer.status_code == 400, (sub, answer.text)
        assert "name space" in answer.json()["error_description"], answer.text


def test_a_plain_sub_that_spells_the_partners_subject_is_refused(
    mapped: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer
) -> None:
    """The main issuer is in the plain name space: its sub "<partner>#alice" would otherwise be
    the partner's alice (and a main user could be revoked or granted as her)."""
    gk, _ = mapped
    for sub in (f"{partner.issuer}#alice", f"{partner.issuer}#", f"{partner.issuer.upper()}#alice",
                f" {partner.issuer}#alice"):
        response = get(gk, mint(issuer, sub), "/echo")
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "subject_namespace_clash"


ROLE_SPELLINGS = ["admin", "role:admin", "ROLE:admin", "Role:Admin", " admin", "admin ",
                  "role: admin", "Admin", "\u200badmin", "authenticated", "role:authenticated"]


@pytest.mark.parametrize("sub", ROLE_SPELLINGS, ids=[repr(s) for s in ROLE_SPELLINGS])
def test_a_sub_that_spells_a_role_does_not_act_as_it(
    mapped: tuple[Gatekeeper, str], issuer: DevIssuer, partner: DevIssuer, sub: str
) -> None:
    """In the plain name space (the main issuer's here), a token role does not help either."""
    gk, _ = mapped
    refused = get(gk, mint(issuer, sub, claims={"roles": ["viewer"]}), "/admin/users")
    assert refused.status_code == 403, refused.text
    assert reason(gk, refused) == "subject_names_a_role"
    # In the partner's name space the same sub is just a user (its issuer's prefix first).
    assert get(gk, mint(partner, sub, claims={"roles": ["viewer"]}), "/admin/users").status_code == 403


LEGACY = """\
p, admin, /admin/*, *, allow
p, authenticated, /echo, GET, allow
"""


@pytest.fixture(scope="module")
def legacy(gatekeeper_factory: Callable[..., Gatekeeper],
           tmp_path_factory: pytest.TempPathFactory) -> Gatekeeper:
    """One issuer and a policy written before role: (its role rules now apply to nobody)."""
    return gatekeeper_factory(policy=policy_file(tmp_path_factory.mktemp("legacy"), LEGACY))


@pytest.mark.parametrize("sub", ["admin", "Admin", "admin\t", "authenticated"])
def test_under_a_policy_written_before_role_a_sub_named_like_a_role_is_refused(
    legacy: Gatekeeper, issuer: DevIssuer, sub: str
) -> None:
    refused = get(legacy, mint(issuer, sub), "/admin/users")
    assert refused.status_code == 403
    assert reason(legacy, refused) == "subject_names_a_role"
    # A token role of that name no longer reaches the plain rule either: fail closed.
    assert get(legacy, mint(issuer, "u-1", claims={"roles": ["admin"]}), "/admin/users").status_code == 403


@pytest.fixture(scope="module")
def login_and_bearer(gatekeeper_factory: Callable[..., Gatekeeper], partner: DevIssuer,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gatekeeper, DevIssuer]]:
    """The main issuer both for bearer tokens and for browser login, beside a partner issuer
    (so every subject is namespaced)."""
    port = free_port()
    with served_login_issuer([callback_of(port)]) as (main, _):
        policy = (f"g, {main.issuer}#alice, role:admin\n"
                  "p, role:admin, /admin/*, *, allow\n")
        yield gatekeeper_factory(
            listen=f"127.0.0.1:{port}",
            auth={"issuers": [{"issuer": main.issuer, "audience": [AUDIENCE]},
                              {"issuer": partner.issuer, "audience": [AUDIENCE]}]},
            oidc=login_oidc(main, port),
            session={"secret": secrets.token_urlsafe(32), "cookie_secure": False},
            policy=policy_file(tmp_path_factory.mktemp("login"), policy),
        ), main


def test_a_session_and_a_bearer_token_of_one_person_are_one_identity(
    login_and_bearer: tuple[Gatekeeper, DevIssuer], partner: DevIssuer, upstream: Upstream
) -> None:
    gk, main = login_and_bearer
    with gk.client(headers=BROWSER) as browser:
        started = browser.get("/admin/users")
        assert started.status_code == 302, started.text
        callback = login_with_http_client(browser, started.headers["location"], "alice",
                                          "alice-password")
        assert browser.get(callback).status_code == 302
        by_session = browser.get("/admin/users")
    assert by_session.status_code == 200, by_session.text
    session_user = upstream.recorder.last.header("x-auth-request-user")
    assert get(gk, mint(main, "alice"), "/admin/users").status_code == 200
    assert upstream.recorder.last.header("x-auth-request-user") == session_user == \
        f"{main.issuer}#alice"
    assert get(gk, mint(partner, "alice"), "/admin/users").status_code == 403


def test_two_prefixes_that_could_overlap_are_refused_at_start(
    tmp_path: Path, issuer: DevIssuer, partner: DevIssuer
) -> None:
    config = {"auth": {"issuers": [
        {"issuer": issuer.issuer, "audience": [AUDIENCE], "subject_prefix": "p:"},
        {"issuer": partner.issuer, "audience": [AUDIENCE], "subject_prefix": "p:x"}]}}
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "gatekeeper", "check", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "auth.issuers.1.subject_prefix" in result.stderr and "overlap" in result.stderr
