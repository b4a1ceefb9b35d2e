"""PEM key files → checked ``cryptography`` keys, and a public key as a JWK with its RFC 7638 kid.

Shared by the keys gatekeeper signs with: the identity assertion (assertion/keys.py) and the
``private_key_jwt`` client assertion (clients/client_auth.py). A file that cannot be used raises
``ValueError`` with the reason only — never the key's bytes, nor a library's message about them
(which may quote what it read); the caller adds its config key and the path.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

MAX_KEY_FILE_BYTES = 64 * 1024  # a 16,384-bit RSA key in PEM is ~13 KB
MIN_RSA_BITS = 2048  # NIST SP 800-57 Part 1 Rev. 5 §5.6.1
_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_CURVE_NAMES = {"ES256": "EC P-256", "ES384": "EC P-384", "ES512": "EC P-521"}
# RFC 7638 §3.2: the members of the thumbprint, per key type (their lexicographic order).
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


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


def read_pem(path: Path) -> bytes:
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


def private_key(data: bytes, algorithm: str, algorithm_key: str) -> PrivateKey:
    """The private key in ``data``, of the type ``algorithm`` needs (``algorithm_key``: the
    config key that chose it, named in the reason)."""
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
        raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm, algorithm_key)}")
    _check_fits(key.public_key(), algorithm, algorithm_key)
    return key


def public_key(data: bytes, algorithm: str, algorithm_key: str) -> PublicKey:
    """A public key, or the public half of a private one."""
    if b"PRIVATE KEY-----" in data:
        return private_key(data, algorithm, algorithm_key).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a readable PEM public or private key") from None
    if not isinstance(key, PublicKey):
        raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm, algorithm_key)}")
    _check_fits(key, algorithm, algorithm_key)
    return key


def _check_fits(key: PublicKey, algorithm: str, algorithm_key: str) -> None:
    """RFC 8725 §3.1: the key's type decides the algorithm, never the other way round."""
    if algorithm in _CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve,
                                                                            _CURVES[algorithm]):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm, algorithm_key)}")
    elif algorithm == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm, algorithm_key)}")
    else:
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError(f"the key is {_kind(key)}; {_needs(algorithm, algorithm_key)}")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"the key is RSA of {key.key_size} bits; at least {MIN_RSA_BITS}")


def _needs(algorithm: str, algorithm_key: str) -> str:
    kind = _CURVE_NAMES.get(algorithm) or ("Ed25519" if algorithm == "EdDSA" else "RSA")
    return f"{algorithm_key} {algorithm} needs an {kind} key"


def _kind(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    return type(key).__name__.removeprefix("_").removesuffix("PublicKey").removesuffix("PrivateKey")
