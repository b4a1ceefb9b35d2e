"""What gatekeeper believes of an RFC 8693 answer (gatekeeper/token_exchange/answer.py): the
hostile answers table (each → 503, never cached), and what each refusal becomes (401 / 403 / 503)."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.errors import Forbidden, GatekeeperError, InvalidToken, TokenExchangeUnavailable
from gatekeeper.token_exchange.answer import issued

SUBJECT = "caller-token"
JSON = "application/json"
GOOD = {"access_token": "app-token", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer", "expires_in": 300}


def _with(**changes: Any) -> dict[str, Any]:
    answer = {**GOOD, **changes}
    return {k: v for k, v in answer.items() if v is not None}


def test_a_good_answer_gives_the_token_and_its_lifetime() -> None:
    result = issued(200, "application/json; charset=utf-8", GOOD, SUBJECT)
    assert (result.token, result.expires_in) == ("app-token", 300.0)


@pytest.mark.parametrize(("changes", "content_type"), [
    ({"issued_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_type": "bearer"}, JSON),
    ({"expires_in": None}, JSON),
    ({"expires_in": 0.5}, "application/token-exchange+json"),
], ids=["a JWT typed token with a lower-case bearer type", "no expires_in", "a +json media type"])
def test_answers_within_the_rfc_are_believed(changes: dict[str, Any], content_type: str) -> None:
    assert issued(200, content_type, _with(**changes), SUBJECT).token == "app-token"


HOSTILE: list[tuple[str, int, str | None, Any, str]] = [
    ("no access_token", 200, JSON, _with(access_token=None), "token_exchange_no_token"),
    ("an empty access_token", 200, JSON, _with(access_token=""), "token_exchange_no_token"),
    ("an access_token that is a number", 200, JSON, _with(access_token=12345), "token_exchange_no_token"),
    ("a token with a space", 200, JSON, _with(access_token="a b"), "token_exchange_no_token"),
    ("a token with a line break (header splitting)", 200, JSON, _with(access_token="a\r\nX-Evil: 1"),
     "token_exchange_no_token"),
    ("a token outside ASCII", 200, JSON, _with(access_token="tökén"), "token_exchange_no_token"),
    ("the caller's own token echoed back", 200, JSON, _with(access_token=SUBJECT),
     "token_exchange_same_token"),
    ("no issued_token_type", 200, JSON, _with(issued_token_type=None), "token_exchange_wrong_token_type"),
    ("a refresh token issued", 200, JSON,
     _with(issued_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
     "token_exchange_wrong_token_type"),
    ("an ID token issued", 200, JSON, _with(issued_token_type="urn:ietf:params:oauth:token-type:id_token"),
     "token_exchange_wrong_token_type"),
    ("a SAML assertion issued", 200, JSON, _with(issued_token_type="urn:ietf:params:oauth:token-type:saml2"),
     "token_exchange_wrong_token_type"),
    ("token_type N_A (not an access token)", 200, JSON, _with(token_type="N_A"),
     "token_exchange_wrong_token_type"),
    ("token_type DPoP (a key the app lacks)", 200, JSON, _with(token_type="DPoP"),
     "token_exchange_wrong_token_type"),
    ("no token_type", 200, JSON, _with(token_type=None), "token_exchange_wrong_token_type"),
    ("expires_in as a string", 200, JSON, _with(expires_in="300"), "token_exchange_bad_expiry"),
    ("expires_in true", 200, JSON, _with(expires_in=True), "token_exchange_bad_expiry"),
    ("expires_in negative", 200, JSON, _with(expires_in=-5), "token_exchange_bad_expiry"),
    ("expires_in zero", 200, JSON, _with(expires_in=0), "token_exchange_bad_expiry"),
    ("expires_in infinite", 200, JSON, _with(expires_in=float("inf")), "token_exchange_bad_expiry"),
    ("expires_in of 400 digits", 200, JSON, _with(expires_in=10**400), "token_exchange_bad_expiry"),
    ("a JSON list", 200, JSON, [GOOD], "token_exchange_not_json"),
    ("a JSON string", 200, JSON, "app-token", "token_exchange_not_json"),
    ("served as HTML", 200, "text/html", GOOD, "token_exchange_not_json"),
    ("served with no content type", 200, None, GOOD, "token_exchange_not_json"),
    ("a token with status 201", 201, JSON, GOOD, "token_exchange_unavailable"),
    ("a token with status 500", 500, JSON, GOOD, "token_exchange_unavailable"),
    ("an error object with status 200", 200, JSON, {"error": "invalid_grant"}, "token_exchange_no_token"),
    ("invalid_grant with status 500", 500, JSON, {"error": "invalid_grant"}, "token_exchange_unavailable"),
    ("an unknown error code", 400, JSON, {"error": "<script>"}, "token_exchange_unavailable"),
    ("invalid_client (our credentials)", 401, JSON, {"error": "invalid_client"},
     "token_exchange_client_refused"),
    ("unsupported_grant_type", 400, JSON, {"error": "unsupported_grant_type"},
     "token_exchange_client_refused"),
]


@pytest.mark.parametrize(("status", "content_type", "body", "code"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
def test_a_hostile_answer_is_unavailable_never_a_token(status: int, content_type: str | None, body: Any,
                                                       code: str) -> None:
    with pytest.raises(TokenExchangeUnavailable) as raised:
        issued(status, content_type, body, SUBJECT)
    assert (raised.value.status, raised.value.code) == (503, code)


@pytest.mark.parametrize(("error", "kind", "status", "code"), [
    ("invalid_grant", InvalidToken, 401, "token_exchange_invalid_grant"),
    ("invalid_target", Forbidden, 403, "token_exchange_invalid_target"),
    ("invalid_scope", Forbidden, 403, "token_exchange_invalid_scope"),
    ("access_denied", Forbidden, 403, "token_exchange_access_denied"),
], ids=["the caller's token refused: 401", "audience not for this caller: 403",
        "scope not for this caller: 403", "access denied: 403"])
def test_a_refusal_about_the_caller_is_a_401_or_403(error: str, kind: type[GatekeeperError], status: int,
                                                     code: str) -> None:
    with pytest.raises(kind) as raised:
        issued(400, JSON, {"error": error, "error_description": "secret detail"}, SUBJECT)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert "secret detail" not in raised.value.description  # the provider's words stay out
