"""The assertion keys: PEM files → a ``KeyRing`` (the key that signs, the keys published).

A key's ``kid`` is its RFC 7638 JWK thumbprint (SHA-256): the same key file gives the same kid
in every replica, worker and restart, with nothing to configure and nothing to keep in step.
The JWKS lists the signing key first, then ``published_key_files`` (the previous key while its
last assertions live, the next one ahead of a rotation), each once.

A file that cannot be used is refused with its config key and the reason — never its bytes,
nor a library's message about them (``ConfigError``). Private keys live in the ``KeyRing`` only;
its ``repr`` names the kids.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gatekeeper.errors import ConfigError
from gatekeeper.settings.assertion import AssertionSettings

MAX_KEY_FILE_BYTES = 64 * 1024  # a 16,384-bit RSA key in PEM is ~13 KB
MIN_RSA_BITS = 2048  # NIST SP 800-57 Part 1 Rev. 5 §5.6.1
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_CURVE_NAMES = {"ES256": "EC P-256", "ES384": "EC P-384", "ES512": "EC P-521"}
# RFC 7638 §3.2: the members of the thumbprint, per key type (their lexicographic order).
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private: PrivateKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """One consistent set: ``signing`` signs; ``jwks`` (the JSON body) publishes every key."""

    algorithm: str
    signing: SigningKey
    kids: tuple[str, ...]  # every published kid, the signing key's first
    jwks: bytes = field(repr=False)


def load_keyring(settings: AssertionSettings) -> KeyRing:
    """Read and check every key file; ``ConfigError`` with one line per unusable file."""
    problems: list[str] = []
    algorithm = settings.algorithm
    signing: SigningKey | None = None
    jwks: dict[str, dict[str, Any]] = {}
    try:
        private = _private_key(_read(settings.key_file), algorithm)
        public = private.public_key()
        jwk = public_jwk(public, algorithm)
        signing = SigningKey(jwk["kid"], private)
        jwks[jwk["kid"]] = jwk
    except ValueError as exc:
        problems.append(f"assertion.key_file: {settings.key_file}: {exc}")
    for index, path in enumerate(settings.published_key_files):
        try:
            jwk = public_jwk(_public_key(_read(path), algorithm), algorithm)
            jwks.setdefault(jwk["kid"], jwk)  # listed twice, or the signing key itself: once
        except ValueError as exc:
            problems.append(f"assertion.published_key_files.{index}: {path}: {exc}")
    if problems or signing is None:
        raise ConfigError(problems)
    body = json.dumps({"keys": list(jwks.values())}, separators=(",", ":")).encode()
    return KeyRing(algorithm, signing, tuple(jwks), body)


def public_jwk(key: PublicKey, algorithm: str) -> dict[str, Any]:
    """The key as a JWK (RFC 7517) with ``kid`` (its RFC 7638 thumbprint), ``alg`` and ``use``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    return {**members, "kid": kid, "alg": algorithm, "use": "sig"}


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ValueError(f"larger than {MAX_KEY_FILE_BYTES} bytes: not a PEM key")
    if b"-----BEGIN " not in data:
        raise ValueError("not PEM (no -----BEGIN line)")
    return data


def _private_key(data: bytes, algorithm: str) -> PrivateKey:
    if b"PRIVATE KEY-----" not in data:
        raise ValueError("not a PEM private key (the signing key must be private)")
    if b"ENCRYPTED" in data:
        raise ValueError("an encrypted private key: give it unencrypted (the Secret protects it)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The library's message may quote what it read: never repeated.
        raise ValueError("not a readable PEM private key") from None
    if not isinstance(key, PrivateKey):
        raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm)}")
    _check_fits(key.public_key(), algorithm)
    return key


def _public_key(data: bytes, algorithm: str) -> PublicKey:
    """A public key, or the public half of a private one."""
    if b"PRIVATE KEY-----" in data:
        return _private_key(data, algorithm).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a readable PEM public or private key") from None
    if not isinstance(key, PublicKey):
        raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm)}")
    _check_fits(key, algorithm)
    return key


def _check_fits(key: PublicKey, algorithm: str) -> None:
    """RFC 8725 §3.1: the key's type decides the algorithm, never the other way round."""
    if algorithm in _CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                            _CURVES[algorithm]):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm)}")
    elif algorithm == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm)}")
    else:
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm)}")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"the key is RSA of {key.key_size} bits; at least {MIN_RSA_BITS}")


def _needs(algorithm: str) -> str:
    kind = _CURVE_NAMES.get(algorithm) or ("Ed25519" if algorithm == "EdDSA" else "RSA")
    return f"assertion.algorithm {algorithm} needs an {kind} key"


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__.removeprefix("_").removesuffix("PublicKey").removesuffix("PrivateKey")
