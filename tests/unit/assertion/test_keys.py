"""The assertion keys (gatekeeper/assertion/keys.py): kid = RFC 7638 thumbprint, the JWKS holds
the signing key and the published ones once each, and a key file that cannot serve is refused
with its config key and the reason — never its bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gatekeeper.assertion.keys import load_keyring, public_jwk
from gatekeeper.errors import ConfigError
from gatekeeper.settings.assertion import AssertionSettings
from tests.support.assertion import jwks_keys, new_key, private_pem, public_pem, write_private_key

# RFC 7638 §3.1: this RSA key's SHA-256 thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
RFC7638_N = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSo"
             "c_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
             "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQF"
             "h6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")


def settings(key_file: Path, *published: Path, **extra: Any) -> AssertionSettings:
    return AssertionSettings(key_file=key_file, published_key_files=list(published),
                             audience="orders", **extra)


def test_the_kid_is_the_rfc_7638_thumbprint() -> None:
    n = int.from_bytes(jwt.utils.base64url_decode(RFC7638_N), "big")
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    jwk = public_jwk(key, "RS256")
    assert jwk["kid"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert (jwk["kty"], jwk["e"], jwk["n"], jwk["alg"], jwk["use"]) == (
        "RSA", "AQAB", RFC7638_N, "RS256", "sig")


@pytest.mark.parametrize("kind", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_the_jwks_verifies_what_the_signing_key_signs(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path, kind)
    ring = load_keyring(settings(path, algorithm=kind))
    token = jwt.encode({"sub": "alice"}, ring.signing.private, algorithm=kind,
                       headers={"kid": ring.signing.kid})
    (jwk,) = json.loads(ring.jwks)["keys"]
    assert jwk["kid"] == ring.signing.kid and jwk["alg"] == kind
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk), "private members published"
    assert jwt.decode(token, jwt.PyJWK(jwk), algorithms=[kind]) == {"sub": "alice"}


def test_the_same_key_file_gives_the_same_kid_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path)
    assert load_keyring(settings(path)).kids == load_keyring(settings(path)).kids


def test_published_keys_follow_the_signing_key_each_once(tmp_path: Path) -> None:
    signing, previous, following = tmp_path / "new.pem", tmp_path / "old.pem", tmp_path / "next.pub"
    write_private_key(signing)
    write_private_key(previous)
    following.write_bytes(public_pem(new_key()))  # a public key alone is enough to publish
    ring = load_keyring(settings(signing, previous, following, previous, signing))
    assert len(ring.kids) == 3 and ring.kids[0] == ring.signing.kid
    assert list(jwks_keys(ring.jwks)) == list(ring.kids)


def test_the_key_ring_s_repr_names_no_key_material(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    key = write_private_key(path)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ring = load_keyring(settings(path))
    text = repr(ring)
    assert ring.signing.kid in text
    assert str(key.private_numbers().private_value) not in text
    assert "PRIVATE" not in text and "private=" not in text


def _pem(kind: str) -> bytes:
    return private_pem(new_key(kind))


ENCRYPTED = new_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"passphrase"))
NEEDS_P256 = "assertion.algorithm ES256 needs an EC P-256 key"
GARBAGE = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
SIGNING_PROBLEMS = [
    ("a public key", lambda: public_pem(new_key()), "not a PEM private key"),
    ("an RSA key for ES256", lambda: _pem("RS256"), f"the key is RSA; {NEEDS_P256}"),
    ("a P-384 key for ES256", lambda: _pem("ES384"), f"the key is EC secp384r1; {NEEDS_P256}"),
    ("an encrypted key", lambda: ENCRYPTED, "an encrypted private key"),
    ("garbage between the PEM lines", lambda: GARBAGE, "not a readable PEM private key"),
    ("no PEM at all", lambda: b"just text\n", "not PEM (no -----BEGIN line)"),
    ("a huge file", lambda: b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 70000, "larger than 65536 bytes"),
]


@pytest.mark.parametrize(("content", "reason"), [(c, r) for _, c, r in SIGNING_PROBLEMS],
                         ids=[f"{i}: refused" for i, _, _ in SIGNING_PROBLEMS])
def test_a_signing_key_that_cannot_serve_is_refused_naming_the_key_and_the_reason(
    tmp_path: Path, content: Any, reason: str,
) -> None:
    path = tmp_path / "key.pem"
    data: bytes = content()
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings(path))
    (problem,) = caught.value.problems
    assert problem.startswith(f"assertion.key_file: {path}: ")
    assert reason in problem
    for line in data.splitlines()[1:2]:  # the key's own bytes are never repeated
        assert line.decode("latin-1")[:40] not in problem


def test_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path.write_bytes(private_pem(small))
    with pytest.raises(ConfigError, match="RSA of 1024 bits; at least 2048"):
        load_keyring(settings(path, algorithm="RS256"))


def test_every_unusable_file_is_reported_together(tmp_path: Path) -> None:
    signing, wrong, missing = tmp_path / "key.pem", tmp_path / "rsa.pem", tmp_path / "gone.pem"
    signing.write_bytes(public_pem(new_key()))
    wrong.write_bytes(_pem("RS256"))
    with pytest.raises(ConfigError) as caught:
        load_keyring(settings(signing, wrong, missing))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "assertion.key_file", "assertion.published_key_files.0", "assertion.published_key_files.1"]
    assert "cannot be read (No such file or directory)" in caught.value.problems[2]
