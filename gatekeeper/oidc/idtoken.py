"""ID token checks of an OpenID Connect relying party (OIDC Core 1.0 §3.1.3.7, §12.2).

The signature is checked by the verification bearer tokens use (tokens/verify.py), with the
provider's keys from the same JWKS machinery (tokens/jwks.py: discovery, rotation, single-flight
refetch on an unknown kid) and the algorithm on the provider's allow-list only — never ``none``,
never HMAC. This module adds the ID token's own claim rules (sub, iat, azp, nonce) and the
logout token's (events, jti, no nonce, its typ). Every refusal is a ``LoginFailed`` whose code
names the check, so the error page and the log say what was wrong.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.errors import GatekeeperError, LoginFailed, ProviderUnavailable
from gatekeeper.tokens.jwks import IssuerKeys
from gatekeeper.tokens.verify import FORM, Check, ClaimRules, JwsVerifier, Refusal

# Each failed check of the shared verification (tokens/verify.py) → (our code, what the page
# says). Logout tokens are verified as ID tokens (Back-Channel Logout §2.6) and share these.
_REFUSALS: dict[Check, tuple[str, str]] = {
    "malformed": ("id_token_malformed", "the ID token is malformed"),
    "invalid_claim": ("id_token_malformed", "the ID token is malformed"),
    "crit": ("id_token_crit", "the ID token has an unsupported critical header"),
    "kid": ("id_token_malformed", "the ID token's kid is malformed"),
    "signature": ("id_token_signature", "the ID token's signature is invalid"),
    "expired": ("id_token_expired", "the ID token has expired"),
    "not_yet_valid": ("id_token_not_yet_valid", "the ID token is not valid yet"),
    "audience": ("id_token_audience", "the ID token was not issued for this client"),
    "issuer": ("id_token_issuer", "the ID token comes from another issuer"),
    "iat": ("id_token_iat", "the ID token has an invalid iat"),
}


def _refuse(refusal: Refusal) -> GatekeeperError:
    check, detail = refusal.check, refusal.detail
    if check == "keys_unavailable":
        return ProviderUnavailable("the provider's signing keys are not available",
                                   code="provider_keys_unavailable")
    if check == "key":
        return LoginFailed(f"no signing key of the provider fits the ID token ({detail})",
                           code="id_token_key")
    if check in ("alg_none", "algorithm"):
        named = f" {detail!r}" if detail else ""
        return LoginFailed(f"the ID token's algorithm{named} is not allowed", code="id_token_alg")
    if check == "missing_claim":
        return LoginFailed(f"the ID token has no {detail} claim", code=f"id_token_missing_{detail}")
    if check == "malformed" and detail == FORM:
        return LoginFailed("the token from the provider is malformed", code="id_token_malformed")
    code, description = _REFUSALS.get(check, _REFUSALS["malformed"])
    return LoginFailed(description, code=code)


_SAME_AFTER_REFRESH = ("iss", "sub", "aud", "azp")
_ID_TOKEN_CLAIMS = ("iss", "sub", "aud", "exp", "iat")
_LOGOUT_TOKEN_CLAIMS = ("iss", "aud", "iat", "jti")  # Back-Channel Logout §2.4: exp is optional


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
    verifier = JwsVerifier(_refuse)
    header, _ = verifier.read(token)
    claims, _key = await verifier.verify(token, header, keys, rules.algorithms,
                                         _claim_rules(rules, _ID_TOKEN_CLAIMS))
    _check_claims(claims, rules, nonce=nonce, now=now)
    return claims


def _claim_rules(rules: IdTokenRules, require: tuple[str, ...]) -> ClaimRules:
    return ClaimRules(issuer=rules.issuer, audience=rules.client_id,
                      leeway_seconds=rules.leeway_seconds, require=require)


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
    verifier = JwsVerifier(_refuse)
    header, payload = verifier.read(token)
    if "nonce" in payload:
        raise LoginFailed("a logout token must not have a nonce", code="logout_token_nonce")
    if header.get("typ") not in (None, "JWT", "logout+jwt", "application/logout+jwt"):
        raise LoginFailed("the logout token has another type", code="logout_token_typ")
    claims, _key = await verifier.verify(token, header, keys, rules.algorithms,
                                         _claim_rules(rules, _LOGOUT_TOKEN_CLAIMS))
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
