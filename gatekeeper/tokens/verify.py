"""The one JWS verification: bearer access tokens (authn/bearer.py), ID tokens and back-channel
logout tokens (oidc/idtoken.py) all pass the same checks, in the same order, through PyJWT
called in one place:

    read     canonical compact form (jws.py) → exp/nbf/iat are JSON numbers → an alg, not
             ``none`` → no ``crit``                                    (before any key work)
    (the caller's own header rules: typ, cnf, which issuer)
    verify   alg on the allow-list → kid a string → the issuer's key (JWKS cache) → signature,
             iss, aud, exp, nbf, iat and the required claims (PyJWT)

Each failed check is a ``Refusal`` naming it; the token kind's ``refuse`` turns it into its
own error (401 ``InvalidToken`` for a bearer token, ``LoginFailed`` for the OpenID ones), so a
hostile token gets the same verdict whichever door it comes through, in that door's words.
The claim rules a kind adds (nonce, azp, the logout ``events``, ...) stay with the caller.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from gatekeeper.errors import GatekeeperError, KeysUnavailable
from gatekeeper.tokens.claims import is_finite_number
from gatekeeper.tokens.jwks import IssuerKeys, SigningKey
from gatekeeper.tokens.jws import peek_token

Check = Literal[
    "malformed",         # not a canonical JWS, or PyJWT could not read it
    "invalid_claim",     # a registered claim of the wrong JSON type (detail: its name)
    "alg_none",          # no alg, or "none" in any case (RFC 8725 §3.1)
    "crit",              # a critical extension header: none is understood (RFC 7515 §4.1.11)
    "algorithm",         # an alg the issuer is not allowed (detail: the alg, cut short)
    "kid",               # a kid that is not a string
    "key",               # no key of the issuer fits (key_error: the JWKS cache's reason)
    "keys_unavailable",  # the issuer's keys could not be fetched (key_error: KeysUnavailable)
    "signature",
    "expired",
    "not_yet_valid",     # nbf (or, for the caller, iat) in the future beyond the leeway
    "audience",
    "issuer",
    "iat",
    "missing_claim",     # a required claim absent (detail: its name)
]


@dataclass(frozen=True, slots=True)
class Refusal:
    check: Check
    detail: str = ""
    key_error: GatekeeperError | None = None  # for "key" and "keys_unavailable"


Refuse = Callable[[Refusal], GatekeeperError]


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What the signature check verifies besides the signature (PyJWT's registered claims)."""

    issuer: str
    audience: str | Sequence[str]
    leeway_seconds: int
    require: tuple[str, ...]


# PyJWT's exceptions → the check that failed. The only such table: order matters (subclasses
# first); whatever else PyJWT raises is "malformed".
_PYJWT_CHECKS: tuple[tuple[type[Exception], Check, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", ""),
    (jwt.ImmatureSignatureError, "not_yet_valid", ""),
    (jwt.InvalidAudienceError, "audience", ""),
    (jwt.InvalidIssuerError, "issuer", ""),
    (jwt.InvalidSignatureError, "signature", ""),
    (jwt.InvalidAlgorithmError, "algorithm", ""),
    (jwt.InvalidIssuedAtError, "iat", ""),
    (jwt.exceptions.InvalidSubjectError, "invalid_claim", "sub"),
    (jwt.exceptions.InvalidJTIError, "invalid_claim", "jti"),
)
_NUMERIC_DATES = ("exp", "nbf", "iat")
FORM = "form"  # the detail of a "malformed" refusal before PyJWT: not a canonical compact JWS


class JwsVerifier:
    """Verifies tokens of one kind; ``refuse`` names each failed check in that kind's words."""

    __slots__ = ("_jwt", "_refuse")

    def __init__(self, refuse: Refuse) -> None:
        self._refuse = refuse
        self._jwt = jwt.PyJWT()

    def read(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and payload, unverified, once the token's form and header pass: only to pick
        the issuer, the key and the caller's own header rules."""
        try:
            header, payload = peek_token(token)
        except GatekeeperError as exc:
            raise self._refuse(Refusal("malformed", FORM)) from exc
        for name in _NUMERIC_DATES:
            # RFC 7519 §2: NumericDate is a JSON number. PyJWT runs int() on it, which takes
            # "9999999999" (a string exp that passes) and true (== 1), and Python's JSON reader
            # takes Infinity/NaN.
            value = payload.get(name)
            if value is not None and not is_finite_number(value):
                raise self._refuse(Refusal("invalid_claim", name))
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise self._refuse(Refusal("alg_none", str(alg)[:20]))
        if "crit" in header:
            raise self._refuse(Refusal("crit"))
        return header, payload

    async def verify(
        self, token: str, header: Mapping[str, Any], keys: IssuerKeys,
        algorithms: Sequence[str], rules: ClaimRules,
    ) -> tuple[dict[str, Any], SigningKey]:
        """The verified claims and the key that verified them. ``header`` is ``read``'s."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in algorithms:
            raise self._refuse(Refusal("algorithm", str(alg)[:20]))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise self._refuse(Refusal("kid"))
        try:
            key = await keys.key_for(kid, alg)
        except GatekeeperError as exc:
            check: Check = "keys_unavailable" if isinstance(exc, KeysUnavailable) else "key"
            error = self._refuse(Refusal(check, exc.code, exc))
            if error is exc:
                raise  # the kind passes the JWKS cache's own error on as is
            raise error from exc
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token, key.key, algorithms=[alg], audience=rules.audience, issuer=rules.issuer,
                leeway=rules.leeway_seconds,
                options={"require": list(rules.require), "strict_aud": False},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise self._refuse(Refusal("missing_claim", exc.claim)) from exc
        except jwt.InvalidTokenError as exc:
            for kind, check, detail in _PYJWT_CHECKS:
                if isinstance(exc, kind):
                    raise self._refuse(Refusal(check, detail)) from exc
            raise self._refuse(Refusal("malformed")) from exc
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise self._refuse(Refusal("malformed")) from exc
        return claims, key
