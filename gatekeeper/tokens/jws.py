"""The one JWS Compact Serialization reader: bearer tokens, ID tokens and logout tokens all come
through ``peek_token`` before any key work.

RFC 7515 §2 and §7.1: each of the three segments is base64url *without* padding. Decoders are
lenient in different ways — Python's ``urlsafe_b64decode`` (which PyJWT uses) adds padding,
accepts ``+`` and ``/``, skips characters outside the alphabet and ignores non-zero trailing
bits — so one token could have many spellings: a cache, a revocation list or a log keyed on the
text would see different tokens where the verifier sees one. Every segment must therefore be in
the canonical form, the one and only text that re-encoding its bytes gives; anything else is
refused, never normalised.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from gatekeeper.errors import InvalidToken

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")  # RFC 4648 §5, no "=" (RFC 7515 §2)


def b64url_decode(segment: str) -> bytes:
    """The bytes of a canonical unpadded base64url segment; ``ValueError`` for any other."""
    if not _ALPHABET.fullmatch(segment) or len(segment) % 4 == 1:
        raise ValueError("not canonical base64url")
    decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    # The last character may carry unused bits: only the spelling with those bits zero counts.
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != segment:
        raise ValueError("not canonical base64url")
    return decoded


def peek_token(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload before verification: only to pick the issuer, alg and key.

    Raises ``InvalidToken`` (code ``malformed_token``) unless the token is exactly three
    canonical base64url segments whose first two are JSON objects."""
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        payload = json.loads(b64url_decode(payload_b64))
        b64url_decode(signature_b64)
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidToken("malformed token", code="malformed_token") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise InvalidToken("malformed token", code="malformed_token")
    return header, payload
