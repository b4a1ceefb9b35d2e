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

import json
from dataclasses import dataclass, field
from typing import Any

from gatekeeper.errors import ConfigError
from gatekeeper.pemkeys import (
    MAX_KEY_FILE_BYTES,
    PrivateKey,
    PublicKey,
    private_key,
    public_jwk,
    public_key,
    read_pem,
)
from gatekeeper.settings.assertion import AssertionSettings

__all__ = ["MAX_KEY_FILE_BYTES", "KeyRing", "PrivateKey", "PublicKey", "SigningKey", "load_keyring",
           "public_jwk"]


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
        private = private_key(read_pem(settings.key_file), algorithm, "assertion.algorithm")
        public = private.public_key()
        jwk = public_jwk(public, algorithm)
        signing = SigningKey(jwk["kid"], private)
        jwks[jwk["kid"]] = jwk
    except ValueError as exc:
        problems.append(f"assertion.key_file: {settings.key_file}: {exc}")
    for index, path in enumerate(settings.published_key_files):
        try:
            jwk = public_jwk(public_key(read_pem(path), algorithm, "assertion.algorithm"), algorithm)
            jwks.setdefault(jwk["kid"], jwk)  # listed twice, or the signing key itself: once
        except ValueError as exc:
            problems.append(f"assertion.published_key_files.{index}: {path}: {exc}")
    if problems or signing is None:
        raise ConfigError(problems)
    body = json.dumps({"keys": list(jwks.values())}, separators=(",", ":")).encode()
    return KeyRing(algorithm, signing, tuple(jwks), body)
