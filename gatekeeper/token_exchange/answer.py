"""What an RFC 8693 token-exchange answer may say, and what gatekeeper believes of it.

A successful answer (§2.2.1) is believed only when it is exactly one: HTTP 200, a JSON object
(served as JSON), ``access_token`` a non-empty string of visible ASCII that is not the caller's
own token, ``issued_token_type`` an access token or a JWT (never a refresh or ID token, never a
SAML assertion: the app would send it on as a bearer token), ``token_type`` ``Bearer`` (``N_A``
says it is no access token; ``DPoP`` needs a key the app does not hold), and ``expires_in``, when
present, a positive number. Anything else is the provider answering badly: 503, nothing cached.

An error answer (§2.2.2, RFC 6749 §5.2) is a refusal with a code from a fixed set:
``invalid_grant`` (the caller's token is no good there: revoked, expired) → 401;
``invalid_target``, ``invalid_scope``, ``access_denied`` (this caller may not have a token for
that audience) → 403; the client's own faults (``invalid_client``, ``unauthorized_client``,
``unsupported_grant_type``, ``invalid_request``) are gatekeeper's misconfiguration → 503.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.errors import Forbidden, GatekeeperError, InvalidToken, TokenExchangeUnavailable
from gatekeeper.settings.token_exchange import ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE
from gatekeeper.tokens.claims import is_finite_number

ISSUED_TYPES = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")  # a header value: no space, no control character
_CALLER_REFUSALS = frozenset({"invalid_target", "invalid_scope", "access_denied"})
_CLIENT_FAULTS = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type",
                            "invalid_request"})


@dataclass(frozen=True, slots=True)
class Issued:
    """The token the provider issued for the app, and how long it says it lives."""

    token: str = ""
    expires_in: float | None = None


class Hostile(TokenExchangeUnavailable):
    """The answer is not one gatekeeper can believe; its code names why (logged, fixed set)."""


def issued(status: int, content_type: str | None, body: Any, subject_token: str) -> Issued:
    """The issued token of a 200 answer; raises the refusal of an error answer, or
    ``TokenExchangeUnavailable`` for anything it cannot believe."""
    if not isinstance(body, Mapping):
        raise Hostile("the provider's answer is not a JSON object", code="token_exchange_not_json")
    if status != 200:
        raise refusal(status, body)
    if not _is_json(content_type):
        raise Hostile("the provider's answer is not served as JSON", code="token_exchange_not_json")
    token = body.get("access_token")
    if not isinstance(token, str) or not _VISIBLE_ASCII.fullmatch(token):
        raise Hostile("the provider's answer holds no usable token", code="token_exchange_no_token")
    if token == subject_token:
        # The caller's own token, meant for gatekeeper's audience: never the app's to send on.
        raise Hostile("the provider answered with the caller's own token",
                      code="token_exchange_same_token")
    if body.get("issued_token_type") not in ISSUED_TYPES:
        raise Hostile("the provider issued another kind of token",
                      code="token_exchange_wrong_token_type")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise Hostile("the provider's token is not a bearer token",
                      code="token_exchange_wrong_token_type")
    expires_in = body.get("expires_in")
    if expires_in is not None and (not is_finite_number(expires_in) or expires_in <= 0):
        raise Hostile("the provider's expires_in is not a positive number",
                      code="token_exchange_bad_expiry")
    return Issued(token, None if expires_in is None else float(expires_in))


def refusal(status: int, body: Mapping[str, Any]) -> GatekeeperError:
    """An error answer as gatekeeper's error: 401, 403, or 503 (ours to fix, or not an answer)."""
    error = body.get("error")
    if 400 <= status < 500 and error == "invalid_grant":
        return InvalidToken("the provider would not exchange this token",
                            code="token_exchange_invalid_grant")
    if 400 <= status < 500 and error in _CALLER_REFUSALS:
        return Forbidden("the provider would not issue a token for this route's audience",
                         code=f"token_exchange_{error}")
    if 400 <= status < 500 and error in _CLIENT_FAULTS:
        return Hostile("the provider refused gatekeeper's exchange request",
                       code="token_exchange_client_refused")
    return Hostile("the provider's token endpoint failed", code="token_exchange_unavailable")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
