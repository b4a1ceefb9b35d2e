"""Key files for the signed identity assertion (gatekeeper/assertion/), and reading one back.

    path = write_private_key(tmp_path / "key.pem")            # EC P-256, unencrypted PKCS#8
    claims = verified(token, jwks_body, audience="orders")     # PyJWT, as an app would
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def new_key(kind: str = "ES256") -> PrivateKey:
    """A fresh private key for the algorithm ``kind`` names (RS*/PS*: 2048-bit RSA)."""
    if kind == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[kind]
    return ec.generate_private_key(curve)


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(path: Path, kind: str = "ES256") -> PrivateKey:
    key = new_key(kind)
    path.write_bytes(private_pem(key))
    return key


def jwks_keys(body: bytes) -> dict[str, Any]:
    """kid → the key, from a JWKS body."""
    return {jwk["kid"]: jwk for jwk in json.loads(body)["keys"]}


def verified(token: str, jwks_body: bytes, *, audience: str, issuer: str = "gatekeeper",
             algorithms: tuple[str, ...] = ("ES256",)) -> dict[str, Any]:
    """The claims of ``token``, verified as an app verifies it: the key its ``kid`` names in
    the JWKS, the algorithm, ``aud``, ``iss``, ``exp`` (PyJWT's InvalidTokenError otherwise)."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(jwks_keys(jwks_body)[kid])
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=list(algorithms),
                                        audience=audience, issuer=issuer,
                                        options={"require": ["exp", "iat", "sub", "req"]})
    return claims
