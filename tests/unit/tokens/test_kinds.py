"""One JWS verification (gatekeeper/tokens/verify.py) behind three doors: the same hostile token
shapes, built on a good bearer access token, a good ID token and a good back-channel logout
token, get the same verdict from each — in each door's own words (the bearer 401 codes of RFC
6750, the login error codes of the ID token checks, which logout tokens share).

Each kind runs through its real entry point (``BearerAuthenticator.authenticate``,
``verify_id_token``, ``verify_logout_token``) against one issuer whose JWKS is served in memory.
End to end: tests/e2e/test_jwt.py (bearer), test_oidc_conformance.py (ID tokens),
test_redis_sessions.py (logout tokens).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.errors import GatekeeperError
from gatekeeper.metrics import Metrics
from gatekeeper.oidc.idtoken import (
    BACKCHANNEL_LOGOUT_EVENT,
    IdTokenRules,
    verify_id_token,
    verify_logout_token,
)
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.jwks import IssuerKeys
from tests.support import forge

ISSUER = "https://issuer.test"
AUDIENCE = "gatekeeper"  # the API audience and the OpenID client id alike
KID = "key-1"
NONCE = "login-nonce"
LEEWAY = 30
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ACCEPTED = "accepted"


def _jwks() -> bytes:
    jwk = jwt.get_algorithm_by_name("RS256").to_jwk(KEY.public_key(), as_dict=True)
    return json.dumps({"keys": [{**jwk, "kid": KID, "use": "sig"}]}).encode()


@dataclass(frozen=True)
class Kind:
    """A token kind: its good header and claims, and its door (an error code, or ACCEPTED)."""

    name: str
    header: Mapping[str, Any]
    claims: Callable[[int], dict[str, Any]]


BEARER = Kind("bearer", {"typ": "at+jwt"}, lambda now: {
    "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300})
ID_TOKEN = Kind("id", {"typ": "JWT"}, lambda now: {
    "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, "nonce": NONCE})
LOGOUT_TOKEN = Kind("logout", {"typ": "logout+jwt"}, lambda now: {
    "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "jti": "logout-1",
    "events": {BACKCHANNEL_LOGOUT_EVENT: {}}})
KINDS = (BEARER, ID_TOKEN, LOGOUT_TOKEN)


async def _verdicts(make: Callable[[Mapping[str, Any], dict[str, Any]], str]) -> tuple[str, ...]:
    """Each kind's answer to the token ``make`` builds from its good header and claims."""
    issuer = IssuerSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_uri=ISSUER + "/jwks",
                            algorithms=["RS256"])
    auth = AuthSettings(issuers=[issuer], token_cache_size=0, leeway_seconds=LEEWAY)
    body = _jwks()
    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(body)))
    async with httpx.AsyncClient(transport=transport) as http:
        keys = IssuerKeys(issuer, auth, http, Metrics())
        assert await keys.refresh(), keys.last_error
        bearer = BearerAuthenticator(auth, {ISSUER: keys}, Metrics())
        rules = IdTokenRules(issuer=ISSUER, client_id=AUDIENCE, algorithms=("RS256",),
                             leeway_seconds=LEEWAY)
        now = int(time.time())
        verdicts: list[str] = []
        for kind in KINDS:
            token = make({**kind.header, "kid": KID}, kind.claims(now))
            try:
                if kind is BEARER:
                    request = RequestView({"type": "http", "method": "GET", "path": "/",
                                           "headers": [(b"authorization", f"Bearer {token}".encode())]},
                                          "/")
                    assert await bearer.authenticate(request) is not None
                elif kind is ID_TOKEN:
                    await verify_id_token(token, keys, rules, nonce=NONCE, now=now)
                else:
                    await verify_logout_token(token, keys, rules, now=now, max_age_seconds=120)
            except GatekeeperError as exc:
                verdicts.append(exc.code)
            else:
                verdicts.append(ACCEPTED)
        await keys.aclose()
        return tuple(verdicts)


def _good(header: Mapping[str, Any], claims: dict[str, Any]) -> str:
    return forge.signed(header, claims, KEY, "RS256")


def _hmac_with_public_key(header: Mapping[str, Any], claims: dict[str, Any]) -> str:
    secret = forge.public_key_encodings(KEY.public_key())["spki_pem"]
    return forge.hs256_with_public_key(secret, header, claims)


def _padded(header: Mapping[str, Any], claims: dict[str, Any]) -> str:
    """The same bytes, the signature spelled with base64 padding (RFC 7515 §2: none allowed)."""
    token = _good(header, claims)
    signature = token.rsplit(".", 1)[1]
    assert len(signature) % 4  # 256 bytes: there is padding to add
    return token + "=" * (-len(signature) % 4)


# Each door's words for one verdict: (bearer, ID token, logout token).
SIGNATURE = ("bad_signature", "id_token_signature", "id_token_signature")
ALGORITHM = ("bad_algorithm", "id_token_alg", "id_token_alg")
UNSIGNED = ("alg_none", "id_token_alg", "id_token_alg")
MALFORMED = ("malformed_token", "id_token_malformed", "id_token_malformed")
CLAIM_TYPE = ("invalid_claim", "id_token_malformed", "id_token_malformed")


@pytest.mark.parametrize(("make", "verdict"), [
    pytest.param(_good, (ACCEPTED,) * 3, id="the good token of each kind is accepted"),
    pytest.param(lambda h, c: forge.unsigned(h, c), UNSIGNED, id="alg none is refused as unsigned"),
    pytest.param(lambda h, c: forge.unsigned(h, c, alg="nOnE"), UNSIGNED,
                 id="alg nOnE is refused as unsigned"),
    pytest.param(lambda h, c: forge.unsigned({k: v for k, v in h.items()}, c, alg=None), UNSIGNED,
                 id="a header without alg is refused as unsigned"),
    pytest.param(_hmac_with_public_key, ALGORITHM,
                 id="HS256 keyed with the RSA public key is refused by the allow-list"),
    pytest.param(lambda h, c: forge.signed(h, c, KEY, "RS512"), ALGORITHM,
                 id="an alg off the allow-list is refused, the right key notwithstanding"),
    pytest.param(lambda h, c: _good({**h, "kid": "no-such-kid"}, c),
                 ("unknown_kid", "id_token_key", "id_token_key"),
                 id="an unknown kid is refused after one refetch"),
    pytest.param(lambda h, c: _good({**h, "kid": 7}, c), MALFORMED,
                 id="a kid that is not a string is refused as malformed"),
    pytest.param(lambda h, c: forge.garble(_good(h, c), part=2), SIGNATURE,
                 id="a garbled signature is refused"),
    pytest.param(lambda h, c: forge.signed(h, c, forge.attacker_key("RS256"), "RS256"), SIGNATURE,
                 id="another key signing under the real kid is refused"),
    pytest.param(lambda h, c: forge.tamper_payload(_good(h, c), sub="admin"), SIGNATURE,
                 id="a payload changed after signing is refused"),
    pytest.param(lambda h, c: _good({**h, "crit": ["urn:x"], "urn:x": True}, c),
                 ("unsupported_crit", "id_token_crit", "id_token_crit"),
                 id="a crit header is refused, even correctly signed"),
    pytest.param(_padded, MALFORMED, id="a signature with base64 padding is refused as malformed"),
    pytest.param(lambda h, c: _good(h, {**c, "exp": str(c["iat"] + 300)}), CLAIM_TYPE,
                 id="an exp written as a numeric string is refused, even correctly signed"),
    pytest.param(lambda h, c: _good(h, {**c, "nbf": True}), CLAIM_TYPE,
                 id="an nbf written as a boolean is refused, even correctly signed"),
    pytest.param(lambda h, c: _good(h, {**c, "exp": 10**400}), CLAIM_TYPE,
                 id="an exp of 400 digits is refused, not a 500, even correctly signed"),
    pytest.param(lambda h, c: forge.unsigned(h, {**c, "iat": -(10**400)}, alg="RS256"), CLAIM_TYPE,
                 id="an iat of minus 400 digits is refused before any signature"),
])
def test_every_kind_gives_the_same_verdict(
    make: Callable[[Mapping[str, Any], dict[str, Any]], str], verdict: tuple[str, str, str]
) -> None:
    assert asyncio.run(_verdicts(make)) == verdict
