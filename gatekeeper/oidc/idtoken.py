"""ID token checks of an OpenID Connect relying party (OIDC Core 1.0 §3.1.3.7, §12.2).

The signature is checked with the provider's keys from the JWKS machinery bearer tokens use
(authn/jwks.py: discovery, rotation, single-flight refetch on an unknown kid), with the
algorithm on the provider's allow-list only — never ``none``, never HMAC. Every refusal is a
``LoginFailed`` whose code names the check, so the error page and the log say what was wrong.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from gatekeeper.errors import GatekeeperError, KeysUnavailable, LoginFailed, ProviderUnavailable
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.tokens.jws import peek_token

# PyJWT's exception → (our code, what the page says). Order matters: subclasses first.
_CHECKS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "id_token_expired", "the ID token has expired"),
    (jwt.ImmatureSignatureError, "id_token_not_yet_valid", "the ID token is not valid yet"),
    (jwt.InvalidAudienceError, "id_token_audience", "the ID token was not issued for this client"),
    (jwt.InvalidIssuerError, "id_token_issuer", "the ID token comes from another issuer"),
    (jwt.InvalidIssuedAtError, "id_token_iat", "the ID token has an invalid iat"),
    (jwt.InvalidSignatureError, "id_token_signature", "the ID token's signature is invalid"),
    (jwt.InvalidAlgorithmError, "id_token_alg", "the ID token's algorithm is not allowed"),
)
_SAME_AFTER_REFRESH = ("iss", "sub", "aud", "azp")


@dataclass(frozen=True, slots=True)
class IdTokenRules:
    issuer: str
    client_id: str
    algorithms: tuple[str, ...]
    leeway_seconds: int


async def verify_id_token(
    token: str, keys: IssuerKeys, rules: IdTokenRules, *, nonce: str | None, now: float
) -> dict[str, Any]:
    """The ID token's claims once every check passed. ``nonce``: the login's nonce (code flow),
    or None for a refreshed ID token, which carries none to compare."""
    header, _ = _peek_or_fail(token)
    claims = await _verified(token, header, keys, rules, require=["iss", "sub", "aud", "exp", "iat"])
    _check_claims(claims, rules, nonce=nonce, now=now)
    return claims


def _peek_or_fail(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return peek_token(token)
    except GatekeeperError as exc:
        raise LoginFailed("the token from the provider is malformed", code="id_token_malformed") from exc


async def _verified(token: str, header: Mapping[str, Any], keys: IssuerKeys, rules: IdTokenRules,
                    *, require: list[str]) -> dict[str, Any]:
    """Signature (with an allowed alg and the provider's key), iss, aud, exp when present."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        raise LoginFailed(f"the ID token's algorithm {str(alg)[:20]!r} is not allowed",
                          code="id_token_alg")
    if "crit" in header:
        raise LoginFailed("the ID token has an unsupported critical header", code="id_token_crit")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise LoginFailed("the ID token's kid is malformed", code="id_token_malformed")
    try:
        key = await keys.key_for(kid, alg)
    except KeysUnavailable as exc:
        raise ProviderUnavailable("the provider's signing keys are not available",
                                  code="provider_keys_unavailable") from exc
    except GatekeeperError as exc:
        raise LoginFailed(f"no signing key of the provider fits the ID token ({exc.code})",
                          code="id_token_key") from exc
    try:
        claims: dict[str, Any] = jwt.PyJWT().decode(
            token, key.key, algorithms=[alg], audience=rules.client_id, issuer=rules.issuer,
            leeway=rules.leeway_seconds, options={"require": require, "strict_aud": False},
        )
    except jwt.MissingRequiredClaimError as exc:
        raise LoginFailed(f"the ID token has no {exc.claim} claim",
                          code=f"id_token_missing_{exc.claim}") from exc
    except jwt.InvalidTokenError as exc:
        for kind, code, description in _CHECKS:
            if isinstance(exc, kind):
                raise LoginFailed(description, code=code) from exc
        raise LoginFailed("the ID token is malformed", code="id_token_malformed") from exc
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise LoginFailed("the ID token is malformed", code="id_token_malformed") from exc
    return claims


def _check_claims(claims: Mapping[str, Any], rules: IdTokenRules, *, nonce: str | None,
                  now: float) -> None:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise LoginFailed("the ID token has no sub claim", code="id_token_missing_sub")
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or iat > now + rules.leeway_seconds:
        raise LoginFailed("the ID token has an invalid iat", code="id_token_iat")
    audience = claims.get("aud")
    azp = claims.get("azp")
    # §3.1.3.7 items 4-5: with several audiences azp must be there; when there, it must be us.
    if isinstance(audience, list) and len(audience) > 1 and azp is None:
        raise LoginFailed("the ID token has several audiences and no azp", code="id_token_azp")
    if azp is not None and azp != rules.client_id:
        raise LoginFailed("the ID token was authorized for another client", code="id_token_azp")
    if nonce is not None:
        found = claims.get("nonce")
        if not isinstance(found, str) or not hmac.compare_digest(found.encode(), nonce.encode()):
            raise LoginFailed("the ID token's nonce does not match this login", code="id_token_nonce")


def logout_token_acceptable_until(iat: float, rules: IdTokenRules, max_age_seconds: int) -> float:
    """The last moment ``verify_logout_token`` accepts a token issued at ``iat``."""
    return iat + max_age_seconds + rules.leeway_seconds


def check_refreshed(original: Mapping[str, Any], refreshed: Mapping[str, Any]) -> None:
    """OIDC Core §12.2: a refreshed ID token names the same iss, sub, aud (and azp) as the one
    the session started with; anything else is another login, not a refresh."""
    for claim in _SAME_AFTER_REFRESH:
        if _normalized(original.get(claim)) != _normalized(refreshed.get(claim)):
            raise LoginFailed(f"the refreshed ID token has a different {claim}",
                              code=f"refresh_changed_{claim}")


def _normalized(value: Any) -> Any:
    # aud may be a string or a one-element list for the same audience.
    if isinstance(value, list):
        return sorted(str(v) for v in value) if len(value) != 1 else str(value[0])
    return value


BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


async def verify_logout_token(
    token: str, keys: IssuerKeys, rules: IdTokenRules, *, now: float, max_age_seconds: int
) -> dict[str, Any]:
    """OpenID Connect Back-Channel Logout 1.0 §2.6: validated like an ID token (signature,
    alg, iss, aud, iat), plus a jti (§2.4: required; replays are refused by it), the logout
    event, a sub or a sid, and no nonce (so an ID token can never pass as a logout token).
    §2.6 item 5 lets the RP refuse a token whose iat is too far in the past: without that bound
    a captured token (exp is optional) would be good forever, outliving any replay memory."""
    header, payload = _peek_or_fail(token)
    if "nonce" in payload:
        raise LoginFailed("a logout token must not have a nonce", code="logout_token_nonce")
    if header.get("typ") not in (None, "JWT", "logout+jwt", "application/logout+jwt"):
        raise LoginFailed("the logout token has another type", code="logout_token_typ")
    claims = await _verified(token, header, keys, rules, require=["iss", "aud", "iat", "jti"])
    iat = claims.get("iat")
    if isinstance(iat, bool) or not isinstance(iat, int | float) or iat > now + rules.leeway_seconds:
        raise LoginFailed("the logout token has an invalid iat", code="logout_token_iat")
    if now > logout_token_acceptable_until(iat, rules, max_age_seconds):
        raise LoginFailed("the logout token was issued too long ago", code="logout_token_stale")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise LoginFailed("the logout token has no back-channel logout event", code="logout_token_events")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
        raise LoginFailed("the logout token names neither sub nor sid", code="logout_token_subject")
    return claims
