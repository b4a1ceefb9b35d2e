"""Sealing session bytes: AES-256-GCM (NIST SP 800-38D), keys from HKDF-SHA256 (RFC 5869).

Sealed form, then base64url without padding (RFC 4648 §5)::

    version (1 byte) ‖ nonce (12 random bytes, new per seal) ‖ ciphertext ‖ tag (16 bytes)

The associated data binds the purpose, the version and the cookie name, so a value sealed for one
cookie (or one purpose, e.g. a login-state cookie) never opens as another. Rotation: every
configured secret yields a key; the first seals, all open. Any failure — bad encoding,
truncation, unknown version, a key no longer configured, a flipped bit, another cookie's name —
is one ``SessionInvalid`` whose description says which check failed and nothing else.

Random 96-bit nonces keep the collision risk under 2^-32 for up to 2^32 seals per key
(SP 800-38D §8.3); each login and each idle refresh (at most once a minute per active
session) is one seal, so rotate ``session.secret`` long before that.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gatekeeper.errors import ConfigError, SessionInvalid
from gatekeeper.settings import MIN_SESSION_SECRET_BYTES, SessionSettings

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
_BASE64URL = re.compile(r"[A-Za-z0-9_\-]+")


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 256-bit AES key per (secret, purpose); the secret is high-entropy, so no salt is needed
    (RFC 5869 §3.1) and ``info`` keeps the purposes' keys independent (§3.2)."""
    info = f"gatekeeper {purpose} aes-256-gcm v{VERSION}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


class SessionCipher:
    __slots__ = ("_keys", "_purpose")

    def __init__(self, secrets: Sequence[str | bytes], *, purpose: str = "session") -> None:
        if not secrets:
            raise ValueError("at least one secret is needed")
        raw = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in secrets]
        if any(len(s) < MIN_SESSION_SECRET_BYTES for s in raw):
            raise ValueError(f"each secret needs at least {MIN_SESSION_SECRET_BYTES} bytes")
        self._purpose = purpose.encode("utf-8")
        self._keys = tuple(AESGCM(derive_key(s, purpose)) for s in raw)

    @classmethod
    def from_settings(cls, settings: SessionSettings, *, purpose: str = "session") -> SessionCipher:
        if not settings.secret:
            raise ConfigError(["session.secret: required for browser sessions"])
        return cls([s.get_secret_value() for s in settings.secret], purpose=purpose)

    def seal(self, plaintext: bytes, *, name: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        body = self._keys[0].encrypt(nonce, plaintext, self._associated_data(name))
        sealed = bytes([VERSION]) + nonce + body
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, token: str, *, name: str) -> bytes:
        raw = _decode(token)
        if len(raw) < _OVERHEAD:
            raise SessionInvalid("sealed session is truncated")
        if raw[0] != VERSION:
            raise SessionInvalid("sealed session has an unknown format version")
        nonce, body = raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :]
        associated_data = self._associated_data(name)
        for key in self._keys:
            try:
                return key.decrypt(nonce, body, associated_data)
            except InvalidTag:
                continue  # maybe sealed with an older secret: try the next one
        raise SessionInvalid("sealed session failed authentication (altered, another cookie's, "
                             "or sealed with a secret no longer configured)")

    def _associated_data(self, name: str) -> bytes:
        # Length-prefixed parts: no two (purpose, name) pairs give the same bytes.
        name_bytes = name.encode("utf-8")
        return b"".join([b"gatekeeper", bytes([VERSION]), len(self._purpose).to_bytes(2, "big"),
                         self._purpose, len(name_bytes).to_bytes(2, "big"), name_bytes])


def _decode(token: str) -> bytes:
    # Strict: the stdlib decoder skips foreign characters, and the spare low bits of the last
    # character decode to the same bytes; either would let an altered cookie count as ours.
    if not _BASE64URL.fullmatch(token) or len(token) % 4 == 1:
        raise SessionInvalid("sealed session is not base64url")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SessionInvalid("sealed session is not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise SessionInvalid("sealed session is not canonical base64url")
    return raw
