"""The one JWS compact reader (gatekeeper/tokens/jws.py): every segment must be canonical
unpadded base64url (RFC 7515 §2); other spellings of the same bytes are refused, not normalised.

End to end (a real gatekeeper, tokens signed by the real issuer key): tests/e2e/test_jwt.py.
"""

from __future__ import annotations

import base64
import json

import pytest

from gatekeeper.errors import InvalidToken
from gatekeeper.tokens.jws import b64url_decode, peek_token
from tests.support import forge

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def canonical(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _with_trailing_bits(segment: str) -> str:
    """The same bytes with a non-zero unused bit in the last character."""
    assert len(segment) % 4 in (2, 3)
    return segment[:-1] + ALPHABET[ALPHABET.index(segment[-1]) | 1]


# Two bytes (len % 4 == 3) whose encoding holds both "-" and "_".
SAMPLE = bytes([0xFB, 0xFF])
assert canonical(SAMPLE) == "-_8"

NON_CANONICAL = [
    pytest.param(canonical(SAMPLE) + "=", id="with one padding character"),
    pytest.param(canonical(b"\x01") + "==", id="with two padding characters"),
    pytest.param(canonical(b"\x01\x02\x03") + "=", id="padding on a whole quantum"),
    pytest.param("+_8", id="plus instead of minus"),
    pytest.param("-/8", id="slash instead of underscore"),
    pytest.param(_with_trailing_bits(canonical(SAMPLE)), id="non-zero trailing bits, 3 chars"),
    pytest.param(_with_trailing_bits(canonical(b"\x01")), id="non-zero trailing bits, 2 chars"),
    pytest.param("-_ 8", id="a space inside"),
    pytest.param("-_8\n", id="a trailing newline"),
    pytest.param("\t-_8", id="a leading tab"),
    pytest.param("-_\r\n8", id="a CRLF inside"),
    pytest.param("-_8A" + "B", id="a length of 4n+1"),
    pytest.param("-_8!", id="a character outside the alphabet"),
    pytest.param("-_\uff18", id="a full-width digit"),
    pytest.param("-_8\x00", id="a NUL byte"),
]


@pytest.mark.parametrize("segment", NON_CANONICAL)
def test_a_non_canonical_segment_is_refused(segment: str) -> None:
    with pytest.raises(ValueError, match="canonical"):
        b64url_decode(segment)


@pytest.mark.parametrize("data", [b"", b"\x00", b"ab", b"abc", SAMPLE, bytes(range(256))],
                         ids=["empty", "one NUL", "two bytes", "three bytes", "minus and underscore",
                              "all byte values"])
def test_canonical_segments_decode_to_their_bytes(data: bytes) -> None:
    assert b64url_decode(canonical(data)) == data


def _token(header: str, payload: str, signature: str) -> str:
    return f"{header}.{payload}.{signature}"


HEADER = forge.segment({"alg": "RS256", "kid": "k1"})
PAYLOAD = forge.segment({"iss": "https://issuer.example", "sub": "alice"})
SIGNATURE = canonical(b"\x00" * 255 + b"\x01")  # 342 chars: len % 4 == 2


def _spellings(segment: str) -> dict[str, str]:
    spellings = {"padded": segment + "=" * (-len(segment) % 4 or 4)}
    if len(segment) % 4:
        spellings["trailing bits"] = _with_trailing_bits(segment)
    spellings["a space inside"] = segment[:4] + " " + segment[4:]
    return spellings


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_peek_token_refuses_any_segment_spelled_non_canonically(part: int) -> None:
    parts = [HEADER, PAYLOAD, SIGNATURE]
    assert peek_token(_token(*parts))[1]["sub"] == "alice"
    for name, spelling in _spellings(parts[part]).items():
        changed = list(parts)
        changed[part] = spelling
        with pytest.raises(InvalidToken) as caught:
            peek_token(_token(*changed))
        assert caught.value.code == "malformed_token", name


def test_a_header_that_is_json_but_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidToken):
        peek_token(_token(canonical(json.dumps(["RS256"]).encode()), PAYLOAD, SIGNATURE))
