"""The assertion signer (gatekeeper/assertion/signer.py): the claims an app relies on, the key
that signs (kid), and the cache — reused only for the same caller, method and target, only in
the first half of its life, and never across a key swap."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from gatekeeper.assertion.binding import request_binding
from gatekeeper.assertion.keys import KeyRing, load_keyring
from gatekeeper.assertion.signer import TYP, AssertionSigner
from gatekeeper.paths import canonical_path
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.assertion import AssertionSettings
from tests.support.assertion import verified, write_private_key
from tests.support.fakes import FakeClock

CLAIMS = {"email": "alice@example.com", "org": {"id": "acme"}, "plan": ["gold", 3],
          "nested": {"a": {"b": 1}}, "iss": "https://idp.example"}


def principal(subject: str = "alice", roles: tuple[str, ...] = ("viewer", "editor"),
              **claims: Any) -> Principal:
    return Principal(subject=subject, roles=roles, claims={**CLAIMS, **claims}, via="bearer",
                     issuer="https://idp.example")


def request(method: str = "GET", target: str = "/orders/7?expand=items") -> RequestView:
    raw, _, query = target.partition("?")
    scope = {"method": method, "path": raw, "raw_path": raw.encode(), "query_string": query.encode(),
             "headers": [], "client": ("127.0.0.1", 1), "scheme": "http"}
    return RequestView(scope, canonical_path(raw.encode()))


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    write_private_key(folder / "one.pem")
    write_private_key(folder / "two.pem")
    return folder / "one.pem", folder / "two.pem"


def make(key_file: Path, clock: FakeClock, **extra: Any) -> tuple[AssertionSigner, KeyRing]:
    settings = AssertionSettings(key_file=key_file, audience="orders", issuer="https://app.example",
                                 **extra)
    keys = load_keyring(settings)
    return AssertionSigner(settings, keys, clock=clock), keys


def token(signer: AssertionSigner, who: Principal, req: RequestView) -> str:
    name, value = signer.header(who, req)
    assert name == b"X-Auth-Request-Jwt"
    return value.decode("ascii")


def test_the_claims_say_who_for_which_request_by_whom_to_whom_and_until_when(
    key_files: tuple[Path, Path],
) -> None:
    clock = FakeClock(time.time())
    signer, keys = make(key_files[0], clock, ttl_seconds=30,
                        claims={"tenant": "org.id", "plan": "plan", "deep": "nested"})
    jwt_text = token(signer, principal(), request("GET", "/orders/7?expand=items"))
    claims = verified(jwt_text, keys.jwks, audience="orders", issuer="https://app.example")
    iat = int(clock.now)
    assert claims == {
        "iss": "https://app.example", "aud": "orders", "sub": "alice",
        "iat": iat, "nbf": iat, "exp": iat + 30,
        "req": request_binding("GET", b"/orders/7?expand=items"),
        "roles": ["viewer", "editor"], "email": "alice@example.com",
        "tenant": "acme", "plan": ["gold", 3],  # "deep" is an object: left out
    }
    assert jwt.get_unverified_header(jwt_text) == {"alg": "ES256", "kid": keys.signing.kid,
                                                   "typ": TYP}


@pytest.mark.parametrize(("claims", "has_email"), [
    ({"email_verified": False}, False), ({"email_verified": "false"}, False),
    ({"email_verified": True}, True), ({}, True),
], ids=["unverified e-mail: left out", "'false': left out", "verified: kept", "no statement: kept"])
def test_an_email_the_provider_did_not_verify_is_left_out(
    key_files: tuple[Path, Path], claims: dict[str, Any], has_email: bool,
) -> None:
    signer, _ = make(key_files[0], FakeClock(time.time()))
    payload = jwt.decode(token(signer, principal(**claims), request()),
                         options={"verify_signature": False})
    assert ("email" in payload) is has_email


def test_no_roles_is_an_empty_list(key_files: tuple[Path, Path]) -> None:
    signer, _ = make(key_files[0], FakeClock(time.time()))
    payload = jwt.decode(token(signer, principal(roles=()), request()),
                         options={"verify_signature": False})
    assert payload["roles"] == []


def test_the_same_caller_and_request_reuse_the_assertion_for_half_its_life(
    key_files: tuple[Path, Path],
) -> None:
    clock = FakeClock(time.time())
    signer, _ = make(key_files[0], clock, ttl_seconds=60)
    alice, req = principal(), request()
    first = token(signer, alice, req)
    clock.advance(29.0)
    assert token(signer, alice, request()) == first  # another RequestView, the same request
    clock.advance(1.5)
    renewed = token(signer, alice, req)
    assert renewed != first
    renewed_claims = jwt.decode(renewed, options={"verify_signature": False})
    assert renewed_claims["iat"] == int(clock.now)


def test_a_clock_set_back_before_iat_signs_afresh(key_files: tuple[Path, Path]) -> None:
    clock = FakeClock(time.time())
    signer, _ = make(key_files[0], clock)
    alice, req = principal(), request()
    first = token(signer, alice, req)
    clock.advance(-120)
    assert token(signer, alice, req) != first


VARIANTS = [
    ("another caller with the same subject", principal(), request()),
    ("another method", None, request("POST")),
    ("another path", None, request("GET", "/orders/8?expand=items")),
    ("another query", None, request("GET", "/orders/7?expand=all")),
    ("no query", None, request("GET", "/orders/7")),
]


@pytest.mark.parametrize(("who", "req"), [(w, r) for _, w, r in VARIANTS],
                         ids=[f"{name}: its own assertion" for name, _, _ in VARIANTS])
def test_an_assertion_is_never_reused_for_another_caller_method_or_target(
    key_files: tuple[Path, Path], who: Principal | None, req: RequestView,
) -> None:
    signer, keys = make(key_files[0], FakeClock(time.time()))
    alice = principal()
    first = token(signer, alice, request())
    other = token(signer, who or alice, req)
    assert other != first
    claims = verified(other, keys.jwks, audience="orders", issuer="https://app.example")
    assert claims["req"] == request_binding(req.method, req.path.encode() + (
        b"?" + req.query if req.query else b""))


def test_many_callers_and_targets_each_get_their_own(key_files: tuple[Path, Path]) -> None:
    signer, keys = make(key_files[0], FakeClock(time.time()), cache_size=16)  # evictions too
    callers = [principal(f"user{i}") for i in range(6)]
    targets = [f"/items/{j}?page={j % 2}" for j in range(6)]
    for _ in range(2):  # the second round comes from the cache (or is signed again when evicted)
        for caller in callers:
            for target in targets:
                claims = verified(token(signer, caller, request("GET", target)), keys.jwks,
                                  audience="orders", issuer="https://app.example")
                assert (claims["sub"], claims["req"]) == (
                    caller.subject, request_binding("GET", target.encode()))


def test_a_key_swap_signs_with_the_new_key_at_once(key_files: tuple[Path, Path]) -> None:
    clock = FakeClock(time.time())
    signer, old = make(key_files[0], clock)
    alice, req = principal(), request()
    before = token(signer, alice, req)
    new = load_keyring(AssertionSettings(key_file=key_files[1], audience="orders"))
    signer.use(new)
    after = token(signer, alice, req)
    assert jwt.get_unverified_header(before)["kid"] == old.signing.kid
    assert jwt.get_unverified_header(after)["kid"] == new.signing.kid != old.signing.kid
    assert signer.jwks() == new.jwks


def test_without_a_cache_every_request_is_signed(key_files: tuple[Path, Path]) -> None:
    signer, _ = make(key_files[0], FakeClock(time.time()), cache_size=0)
    alice, req = principal(), request()
    assert token(signer, alice, req) != token(signer, alice, req)  # ECDSA: a fresh nonce each


def test_the_header_name_is_the_configured_one(key_files: tuple[Path, Path]) -> None:
    signer, _ = make(key_files[0], FakeClock(time.time()), header="X-Identity-Assertion")
    assert signer.header(principal(), request())[0] == b"X-Identity-Assertion"
