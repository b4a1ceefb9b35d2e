"""The OAuth 2.0 wire rules the dev login checks (login.py) and answers by (login_http.py): the
error with its code, a request's parameters, client credentials, PKCE, the redirect's query.
For demos and tests, as the rest of gatekeeper/dev/.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

__all__ = ["CHALLENGE", "NO_STORE", "OAuthError", "basic_credentials", "parse_params",
           "pkce_matches", "secret_matches", "with_query"]

# The S256 challenge is an unpadded base64url SHA-256: exactly 43 characters (RFC 7636 §4.2).
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 §4.1
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error with its OAuth code (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1) and HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, colon, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError both are
        raise OAuthError("invalid_client", "Malformed Basic credentials.", status=401) from exc
    if not colon:
        raise OAuthError("invalid_client", "Malformed Basic credentials.", status=401)
    # RFC 6749 §2.3.1: each half is form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def secret_matches(expected: str | None, given: str | None) -> bool:
    if expected is None or given is None:
        return expected is None and given is None  # a public client sends none, the others must
    return secrets.compare_digest(expected.encode(), given.encode())


def pkce_matches(verifier: str, challenge: str) -> bool:
    if not _VERIFIER.fullmatch(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return secrets.compare_digest(base64.urlsafe_b64encode(digest).rstrip(b"=").decode(), challenge)


def parse_params(raw: str) -> dict[str, str]:
    """Query or form parameters: empty ones count as absent and none may repeat (RFC 6749 §3.1)."""
    try:
        values = parse_qs(raw, max_num_fields=64)
    except ValueError as exc:
        raise OAuthError("invalid_request", "Too many parameters.") from exc
    for name, found in values.items():
        if len(found) > 1:
            raise OAuthError("invalid_request", f"Repeated parameter: {name}.")
    return {name: found[0] for name, found in values.items()}


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    extra = urlencode({name: value for name, value in params.items() if value is not None})
    parts = urlsplit(uri)
    query = f"{parts.query}&{extra}" if parts.query and extra else parts.query or extra
    return parts._replace(query=query).geturl()
