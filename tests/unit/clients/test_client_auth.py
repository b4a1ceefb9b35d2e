"""Client authentication (gatekeeper/clients/client_auth.py): what each method adds to one call,
the private_key_jwt assertion verified with the public key, its key refused at start when it
cannot sign and reloaded when its file changes, and no secret or key in any repr, message or
log line. Through introspection: tests/unit/tokens/test_introspect.py; with the real provider:
tests/e2e/test_private_key_jwt.py."""

from __future__ import annotations

import asyncio
import base64
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from gatekeeper.clients.client_auth import ASSERTION_TYPE, ClientAuth, load_client_key
from gatekeeper.errors import ConfigError
from gatekeeper.pemkeys import public_jwk
from gatekeeper.settings import IntrospectionSettings, PrivateKeyJwtSettings, ProviderSettings
from gatekeeper.types import Check
from tests.support.assertion import new_key, private_pem, public_pem, write_private_key

ISSUER = "https://idp.example"
ENDPOINT = "https://idp.example/oauth2/introspect"
SECRET = "s3cr:t/with+odd&chars"


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def keyed(path: Path, clock: Clock | None = None, **settings: Any) -> ClientAuth:
    return ClientAuth(client_id="gk", method="private_key_jwt", issuer=ISSUER, key_name="x",
                      private_key_jwt=PrivateKeyJwtSettings(key_file=path, **settings),
                      clock=clock or Clock())


def decoded(assertion: str, public: bytes, algorithm: str, audience: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        assertion, public, algorithms=[algorithm], audience=audience, issuer="gk",
        options={"require": ["iss", "sub", "aud", "jti", "iat", "exp"], "verify_exp": False,
                 "verify_iat": False})
    return claims


@pytest.mark.parametrize(("method", "headers", "form"), [
    ("client_secret_basic",
     {"authorization": "Basic " + base64.b64encode(b"g%20k:s3cr%3At%2Fwith%2Bodd%26chars").decode()},
     {}),
    ("client_secret_post", {}, {"client_id": "g k", "client_secret": SECRET}),
    ("none", {}, {"client_id": "g k"}),
], ids=["basic: each part form-encoded, then Base64 (RFC 6749 §2.3.1)",
        "post: both in the form", "none: the client_id alone (a public client)"])
def test_each_secret_method_adds_what_the_rfc_says(method: Any, headers: dict[str, str],
                                                     form: dict[str, str]) -> None:
    client = ClientAuth(client_id="g k", method=method, issuer=ISSUER, key_name="x",
                        secret=None if method == "none" else SecretStr(SECRET))
    parts = asyncio.run(client.parts(ENDPOINT))
    assert (parts.headers, parts.form) == (headers, form)


def test_basic_decodes_back_to_the_id_and_the_secret() -> None:
    client = ClientAuth(client_id="g:k", method="client_secret_basic", issuer=ISSUER, key_name="x",
                        secret=SecretStr(SECRET))
    value = client.parts_now(ENDPOINT).headers["authorization"].removeprefix("Basic ")
    user, _, password = base64.b64decode(value).decode().partition(":")
    assert (unquote(user), unquote(password)) == ("g:k", SECRET)


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
def test_the_assertion_is_signed_by_the_key_and_says_who_to_whom(tmp_path: Path, algorithm: str) -> None:
    key = write_private_key(tmp_path / "client.pem", algorithm)
    clock = Clock()
    parts = keyed(tmp_path / "client.pem", clock, algorithm=algorithm).parts_now(ENDPOINT)
    assert parts.headers == {}
    assert set(parts.form) == {"client_id", "client_assertion_type", "client_assertion"}
    assert (parts.form["client_id"], parts.form["client_assertion_type"]) == ("gk", ASSERTION_TYPE)
    claims = decoded(parts.form["client_assertion"], public_pem(key), algorithm, ISSUER)
    assert (claims["iss"], claims["sub"], claims["aud"]) == ("gk", "gk", ISSUER)  # aud: one string
    assert (claims["iat"], claims["exp"]) == (int(clock.now), int(clock.now) + 60)
    header = jwt.get_unverified_header(parts.form["client_assertion"])
    assert (header["alg"], header["kid"]) == (algorithm, public_jwk(key.public_key(), algorithm)["kid"])


def test_the_audience_may_be_the_endpoint_and_the_kid_and_lifetime_configured(tmp_path: Path) -> None:
    key = write_private_key(tmp_path / "client.pem", "RS256")
    client = keyed(tmp_path / "client.pem", algorithm="RS256", audience="endpoint", kid="okta-kid-1",
                   lifetime_seconds=30)
    assertion = client.parts_now(ENDPOINT).form["client_assertion"]
    claims = decoded(assertion, public_pem(key), "RS256", ENDPOINT)
    assert claims["aud"] == ENDPOINT and claims["exp"] - claims["iat"] == 30
    assert jwt.get_unverified_header(assertion)["kid"] == "okta-kid-1"


def test_every_assertion_has_a_fresh_jti(tmp_path: Path) -> None:
    write_private_key(tmp_path / "client.pem", "ES256")
    client = keyed(tmp_path / "client.pem", algorithm="ES256")
    jtis = {jwt.decode(client.assertion(ENDPOINT), options={"verify_signature": False})["jti"]
            for _ in range(200)}
    assert len(jtis) == 200 and all(len(jti) >= 32 for jti in jtis)


def _pem(kind: str, tmp_path: Path) -> bytes:
    if kind == "public key":
        return public_pem(new_key("RS256"))
    if kind == "EC key for RS256":
        return private_pem(new_key("ES256"))
    if kind == "RSA of 1024 bits":
        from cryptography.hazmat.primitives.asymmetric import rsa
        return private_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    if kind == "encrypted":
        from cryptography.hazmat.primitives import serialization
        return new_key("RS256").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"))
    if kind == "garbage inside PEM":
        return b"-----BEGIN PRIVATE KEY-----\nTUlJQ0lU-not-a-key\n-----END PRIVATE KEY-----\n"
    return b"just some text, no PEM here\n"


@pytest.mark.parametrize(("kind", "reason"), [
    ("public key", "not a PEM private key"),
    ("EC key for RS256", "the key is EC secp256r1; x.private_key_jwt.algorithm RS256 needs an RSA key"),
    ("RSA of 1024 bits", "RSA of 1024 bits; at least 2048"),
    ("encrypted", "an encrypted private key"),
    ("garbage inside PEM", "not a readable PEM private key"),
    ("not PEM", "not PEM"),
], ids=lambda value: value if " " in value or value == "encrypted" else None)
def test_a_key_that_cannot_sign_is_refused_naming_the_key_path_and_reason(
    tmp_path: Path, kind: str, reason: str,
) -> None:
    path = tmp_path / "client.pem"
    path.write_bytes(_pem(kind, tmp_path))
    with pytest.raises(ConfigError) as caught:
        keyed(path, algorithm="RS256")
    (problem,) = caught.value.problems
    assert problem.startswith(f"x.private_key_jwt.key_file: {path}: "), problem
    assert reason in problem
    assert "TUlJ" not in problem and "some text" not in problem  # never what the file holds


def test_a_missing_key_file_is_refused_by_the_settings_naming_the_key(tmp_path: Path) -> None:
    from gatekeeper.settings.file import load_settings

    config = tmp_path / "gatekeeper.yaml"
    config.write_text("upstream: http://127.0.0.1:9\nauth:\n  issuers:\n  - issuer: https://idp.example\n"
                      "    audience: [api]\n    introspection:\n      client_id: gk\n"
                      "      auth_method: private_key_jwt\n      private_key_jwt: {key_file: nope.pem}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    (problem,) = caught.value.problems
    assert "auth.issuers.0.introspection.private_key_jwt.key_file" in problem
    assert f"{tmp_path / 'nope.pem'}: no such file" in problem


@pytest.mark.parametrize(("extra", "key", "reason"), [
    ({"auth_method": "private_key_jwt"}, "private_key_jwt", "required with auth_method private_key_jwt"),
    ({"client_secret": SECRET, "auth_method": "private_key_jwt", "private_key_jwt": {"key_file": "k"}},
     "client_secret", "not used with auth_method private_key_jwt"),
    ({"auth_method": "client_secret_post"}, "client_secret", "required with auth_method client_secret_post"),
], ids=["the key method without a key", "a secret nothing would send", "a secret method without it"])
def test_each_method_requires_what_it_uses_and_the_secret_is_never_echoed(
    extra: dict[str, Any], key: str, reason: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        IntrospectionSettings(client_id="gk", **extra)
    (error,) = caught.value.errors()
    assert error["loc"] == (key,) and reason in error["msg"]
    assert SECRET not in str(caught.value.errors(include_input=False))  # as load_settings reports


def test_the_login_provider_takes_private_key_jwt_and_refuses_it_half_set(tmp_path: Path) -> None:
    write_private_key(tmp_path / "k.pem", "RS256")
    base = {"issuer": ISSUER, "client_id": "gk"}
    provider = ProviderSettings(**base, token_auth_method="private_key_jwt",
                                private_key_jwt={"key_file": tmp_path / "k.pem"})
    assert provider.private_key_jwt is not None
    cases: list[tuple[dict[str, Any], str]] = [
                        ({"token_auth_method": "private_key_jwt"}, "private_key_jwt: required"),
                        ({"token_auth_method": "private_key_jwt", "client_secret": SECRET,
                          "private_key_jwt": {"key_file": "k"}}, "client_secret is not used"),
                        ({"client_secret": SECRET, "private_key_jwt": {"key_file": "k"}},
                         "set token_auth_method: private_key_jwt")]
    for bad, reason in cases:
        with pytest.raises(ValidationError) as caught:
            ProviderSettings(**base, **bad)
        shown = str(caught.value.errors(include_input=False))
        assert reason in shown and SECRET not in shown


def test_no_secret_or_key_in_any_repr(tmp_path: Path) -> None:
    pem = private_pem(write_private_key(tmp_path / "client.pem", "RS256"))
    keyed_client = keyed(tmp_path / "client.pem", algorithm="RS256")
    secret_client = ClientAuth(client_id="gk", method="client_secret_post", issuer=ISSUER,
                               key_name="x", secret=SecretStr(SECRET))
    loaded = load_client_key(PrivateKeyJwtSettings(key_file=tmp_path / "client.pem"), "x")
    shown = " ".join(repr(x) for x in (keyed_client, secret_client, secret_client.parts_now(ENDPOINT),
                                       keyed_client.parts_now(ENDPOINT), loaded))
    assert SECRET not in shown and "client_assertion" not in shown
    assert pem.decode().splitlines()[1][:24] not in shown
    assert "kid=" in repr(keyed_client)


def test_a_changed_key_file_signs_from_the_next_check_and_a_bad_one_is_refused_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "client.pem"
    first = write_private_key(path, "ES256")
    clock = Clock()
    client = keyed(path, clock, algorithm="ES256", key_check_seconds=10)
    old_kid = client.kid
    second = write_private_key(path, "ES256")

    def signed_by() -> str:
        assertion = asyncio.run(client.parts(ENDPOINT)).form["client_assertion"]
        for name, key in (("first", first), ("second", second)):
            try:
                decoded(assertion, public_pem(key), "ES256", ISSUER)
                return name
            except jwt.InvalidSignatureError:
                continue
        return "neither"

    assert signed_by() == "first"  # not yet due
    clock.now += 10
    assert signed_by() == "second" and client.kid != old_kid
    bad = private_pem(new_key("RS256"))
    path.write_bytes(bad)
    with caplog.at_level(logging.ERROR, logger="gatekeeper.client_auth"):
        for _ in range(3):
            clock.now += 10
            assert signed_by() == "second"  # the old key keeps signing
    assert client.last_error is not None and "needs an EC P-256 key" in client.last_error
    refused = [r for r in caplog.records if r.getMessage().startswith("client key not reloaded")]
    assert len(refused) == 1
    assert bad.decode().splitlines()[1][:24] not in caplog.text


def test_gatekeeper_check_refuses_a_bad_client_key_before_serving(tmp_path: Path) -> None:
    pem = private_pem(new_key("ES256"))
    (tmp_path / "client.pem").write_bytes(pem)
    config = tmp_path / "gatekeeper.yaml"
    config.write_text("upstream: http://127.0.0.1:9\nauth:\n  issuers:\n  - issuer: https://idp.example\n"
                      "    audience: [api]\n    introspection:\n      client_id: gk\n"
                      "      auth_method: private_key_jwt\n      private_key_jwt: {key_file: client.pem}\n")
    result = subprocess.run([sys.executable, "-m", "gatekeeper", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"auth.issuers.0.introspection.private_key_jwt.key_file: {tmp_path / 'client.pem'}: the key "
            "is EC secp256r1; auth.issuers.0.introspection.private_key_jwt.algorithm RS256 needs an RSA "
            "key") in result.stderr
    assert pem.decode().splitlines()[1][:24] not in result.stdout + result.stderr


def test_every_unusable_key_of_a_config_is_reported_at_once_and_readiness_names_the_kids(
    tmp_path: Path,
) -> None:
    from gatekeeper.clients.client_auth import build_clients, client_key_problems, key_readiness
    from gatekeeper.settings import Settings

    good = write_private_key(tmp_path / "good.pem", "ES256")
    (tmp_path / "bad.pem").write_bytes(public_pem(new_key("RS256")))
    issuers = [{"issuer": f"https://idp{n}.example", "audience": ["api"],
                "introspection": {"client_id": f"gk{n}", "auth_method": "private_key_jwt",
                                  "token_prefixes": [f"idp{n}_"],
                                  "private_key_jwt": {"key_file": tmp_path / name,
                                                      "algorithm": "ES256"}}}
               for n, name in ((0, "good.pem"), (1, "bad.pem"))]
    oidc = {"issuer": "https://login.example", "client_id": "web", "redirect_url":
            "https://app.example/oauth2/callback", "token_auth_method": "private_key_jwt",
            "private_key_jwt": {"key_file": tmp_path / "bad.pem", "algorithm": "RS256"}}
    settings = Settings(upstream="http://127.0.0.1:9", auth={"issuers": issuers}, oidc=oidc,
                        session={"secret": "x" * 40})
    problems = client_key_problems(settings)
    assert [p.split(":")[0] for p in problems] == [
        "auth.issuers.1.introspection.private_key_jwt.key_file", "oidc.private_key_jwt.key_file"]
    issuers[1]["introspection"]["private_key_jwt"]["key_file"] = tmp_path / "good.pem"  # type: ignore[index]
    oidc["private_key_jwt"] = {"key_file": tmp_path / "good.pem", "algorithm": "ES256"}
    clients = build_clients(Settings(upstream="http://127.0.0.1:9", auth={"issuers": issuers},
                                     oidc=oidc, session={"secret": "x" * 40}))
    assert sorted(clients.introspection) == ["https://idp0.example", "https://idp1.example"]
    kid = public_jwk(good.public_key(), "ES256")["kid"]
    readiness = key_readiness(clients.all)

    async def ask() -> Check:
        return await readiness()

    check = asyncio.run(ask())
    assert check.ok and check.detail == "; ".join(
        f"{client}: signing with {kid}" for client in ("gk0", "gk1", "web"))
