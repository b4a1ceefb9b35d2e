"""The signed identity assertion end to end: a real Flask app that runs the verification code of
docs/identity-assertion.md (tests/support/apps/assertion_app.py), behind a running gatekeeper
that signs with a key from a file. Through gatekeeper, requests are accepted; straight to the
app's port, an assertion that is missing, forged (another key), expired, replayed on another
path, method or query, or made for another app (aud) is refused. The keys rotate by the file:
the next assertion is signed by the new key and the app, fetching the JWKS again, accepts it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from gatekeeper.assertion.binding import request_binding
from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper
from tests.support.assertion import jwks_keys, new_key, private_pem, write_private_key
from tests.support.fakes import mint
from tests.support.paths import ROOT
from tests.support.poll import eventually
from tests.support.servers import free_port, run_process

JWKS = "/.well-known/gatekeeper/jwks.json"
ISSUER = "https://orders.example.com"


@dataclass
class Deployment:
    gatekeeper: Gatekeeper
    app_url: str
    key_file: Path


@pytest.fixture(scope="module")
def start(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Deployment]]:
    """gatekeeper (with ``assertion`` overrides) in front of its own verifying app."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        def deploy(*, audience: str = "orders", app_audience: str = "orders",
                   **assertion: Any) -> Deployment:
            key_file = tmp_path_factory.mktemp("assertion") / "key.pem"
            write_private_key(key_file)
            app_port = free_port()
            gk = gatekeeper_factory(upstream=f"http://127.0.0.1:{app_port}", assertion={
                "key_file": str(key_file), "issuer": ISSUER, "audience": audience, **assertion})
            stack.enter_context(run_process(
                [sys.executable, "-m", "tests.support.apps.assertion_app", str(app_port)],
                cwd=ROOT, ready_port=app_port,
                env={"ASSERTION_JWKS_URL": gk.admin_url + JWKS, "ASSERTION_ISSUER": ISSUER,
                     "ASSERTION_AUDIENCE": app_audience}))
            return Deployment(gk, f"http://127.0.0.1:{app_port}", key_file)
        yield deploy


@pytest.fixture(scope="module")
def orders(start: Callable[..., Deployment]) -> Deployment:
    return start()


def bearer(issuer: DevIssuer, **claims: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint(issuer, claims={"roles": ["viewer"], **claims})}


def direct(deployment: Deployment, method: str, target: str, assertion: str | None) -> httpx.Response:
    """Straight to the app's port, around gatekeeper."""
    headers = {"X-Auth-Request-Jwt": assertion} if assertion is not None else {}
    with httpx.Client(base_url=deployment.app_url, trust_env=False, timeout=30) as client:
        return client.request(method, target, headers=headers)


def through(deployment: Deployment, issuer: DevIssuer, method: str, target: str) -> httpx.Response:
    with deployment.gatekeeper.client() as client:
        return client.request(method, target, headers=bearer(issuer, email="alice@example.com"))


@pytest.mark.parametrize(("method", "target"), [
    ("GET", "/orders/7?expand=items"), ("POST", "/orders"), ("DELETE", "/orders/7"),
    ("GET", "/orders/./7//lines?page=2&sort=-date"),
], ids=["a GET with a query", "a POST", "a DELETE", "a path gatekeeper canonicalizes"])
def test_requests_through_gatekeeper_are_accepted_by_the_documented_code(
    orders: Deployment, issuer: DevIssuer, method: str, target: str,
) -> None:
    answer = through(orders, issuer, method, target)
    assert answer.status_code == 200, answer.text
    claims = answer.json()["claims"]
    assert (claims["sub"], claims["roles"], claims["email"], claims["aud"], claims["iss"]) == (
        "alice", ["viewer"], "alice@example.com", "orders", ISSUER)


def test_a_request_around_gatekeeper_without_an_assertion_is_refused(orders: Deployment) -> None:
    answer = direct(orders, "GET", "/orders/7", None)
    assert answer.status_code == 401
    assert "no assertion" in answer.json()["refused"]


def test_identity_headers_alone_do_not_pass(orders: Deployment) -> None:
    with httpx.Client(base_url=orders.app_url, trust_env=False, timeout=30) as client:
        answer = client.get("/orders/7", headers={"X-Auth-Request-User": "admin"})
    assert answer.status_code == 401


def test_the_assertion_fits_its_own_request_and_no_other(orders: Deployment, issuer: DevIssuer) -> None:
    seen = through(orders, issuer, "GET", "/orders/7?expand=items")
    assert seen.status_code == 200, seen.text
    assertion = seen.json()["assertion"]
    # The same request again within its lifetime: accepted (the documented limit of a binding).
    assert direct(orders, "GET", "/orders/7?expand=items", assertion).status_code == 200
    for method, target in [("GET", "/orders/8?expand=items"), ("DELETE", "/orders/7?expand=items"),
                           ("GET", "/orders/7?expand=all"), ("GET", "/orders/7"),
                           ("GET", "/admin/orders/7?expand=items")]:
        refused = direct(orders, method, target, assertion)
        assert refused.status_code == 401, (method, target)
        assert "made for another request" in refused.json()["refused"], (method, target)


def claims_for(method: str, target: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": "orders", "sub": "alice", "iat": now, "nbf": now, "exp": now + 60,
            "req": request_binding(method, target.encode()), "roles": ["admin"], **changes}


def kid_of(deployment: Deployment) -> str:
    with deployment.gatekeeper.admin() as admin:
        (kid,) = jwks_keys(admin.get(JWKS).content)
    return kid


def test_an_assertion_signed_by_another_key_is_refused(orders: Deployment) -> None:
    attacker = new_key()
    for kid in (kid_of(orders), "attacker-key"):  # gatekeeper's kid, or one of its own
        forged = jwt.encode(claims_for("GET", "/orders/7"), attacker, algorithm="ES256",
                            headers={"kid": kid, "typ": "gatekeeper-assertion+jwt"})
        refused = direct(orders, "GET", "/orders/7", forged)
        assert refused.status_code == 401, kid
        assert refused.json()["refused"].startswith(("InvalidSignatureError", "PyJWKClientError")), kid


def sign_with(deployment: Deployment, claims: dict[str, Any]) -> str:
    """A token signed by gatekeeper's own key file: what only gatekeeper can make."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(deployment.key_file.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="ES256",  # type: ignore[arg-type]
                      headers={"kid": kid_of(deployment), "typ": "gatekeeper-assertion+jwt"})


def test_the_key_itself_makes_a_valid_assertion_so_the_refusals_below_are_for_their_claim(
    orders: Deployment,
) -> None:
    assert direct(orders, "GET", "/orders/7", sign_with(orders, claims_for("GET", "/orders/7"))
                  ).status_code == 200


@pytest.mark.parametrize(("changes", "reason"), [
    ({"iat": int(time.time()) - 180, "nbf": int(time.time()) - 180, "exp": int(time.time()) - 120},
     "ExpiredSignatureError"),
    ({"aud": "billing"}, "InvalidAudienceError"),
    ({"iss": "https://other.example.com"}, "InvalidIssuerError"),
], ids=["expired: refused", "another app's audience: refused", "another issuer: refused"])
def test_an_assertion_with_a_claim_out_of_place_is_refused(
    orders: Deployment, changes: dict[str, Any], reason: str,
) -> None:
    refused = direct(orders, "GET", "/orders/7", sign_with(orders, claims_for("GET", "/orders/7", **changes)))
    assert refused.status_code == 401
    assert refused.json()["refused"].startswith(reason)


def test_an_assertion_a_gatekeeper_made_for_another_app_is_refused(
    start: Callable[..., Deployment], issuer: DevIssuer,
) -> None:
    # A gatekeeper that names another app (aud) in front of an app that expects "orders".
    misdirected = start(audience="billing", app_audience="orders")
    answer = through(misdirected, issuer, "GET", "/orders/7")
    assert answer.status_code == 401
    assert answer.json()["refused"].startswith("InvalidAudienceError")


def test_a_rotation_by_the_files_signs_with_the_next_key_the_app_already_holds(
    start: Callable[..., Deployment], issuer: DevIssuer, tmp_path: Path,
) -> None:
    # Step 1 of the documented rotation: the next key is published before it signs.
    other = tmp_path / "other.pem"
    following = write_private_key(other)
    rotating = start(published_key_files=[str(other)], key_check_seconds=1)
    with rotating.gatekeeper.admin() as admin:
        current, upcoming = jwks_keys(admin.get(JWKS).content)
    first = through(rotating, issuer, "GET", "/orders/1")  # the app fetches the JWKS: both keys
    assert first.status_code == 200, first.text
    assert jwt.get_unverified_header(first.json()["assertion"])["kid"] == current
    # Step 2: the Secret's files swap roles (each replaced atomically, as the kubelet does).
    previous = rotating.key_file.read_bytes()
    for path, content in ((rotating.key_file, private_pem(following)), (other, previous)):
        staged = path.with_name(path.name + ".staged")
        staged.write_bytes(content)
        os.replace(staged, path)

    def swapped() -> bool:
        with rotating.gatekeeper.admin() as admin:
            return list(jwks_keys(admin.get(JWKS).content)) == [upcoming, current]

    assert eventually(swapped, seconds=15)
    second = through(rotating, issuer, "GET", "/orders/2")
    assert second.status_code == 200, second.text  # from the app's cached JWKS: no refetch needed
    assert jwt.get_unverified_header(second.json()["assertion"])["kid"] == upcoming
    # The previous key is still published: its assertions live out their time.
    assert direct(rotating, "GET", "/orders/1", first.json()["assertion"]).status_code == 200
