"""DPoP proofs (RFC 9449 §4.3): the checks a protected resource runs on each request that brings
``Authorization: DPoP <token>``, in order, each refused with its own code:

    one DPoP header, canonical compact JWS, no larger than max_proof_bytes
    typ dpop+jwt (§4.2; RFC 8725 §3.11)   alg on the allow-list, never none/HMAC (§4.3 step 5)
    jwk: a public EC/RSA/OKP key fitting the alg, no private members (§4.3 step 7), an RSA
    exponent of at most 256 bits (FIPS 186-5 §5.4: an e as long as n costs a private-key
    operation per verification)
    the key's RFC 7638 thumbprint = the token's cnf.jkt (§6.1, §7.1) — before the signature:
    a stolen token with a key of the thief's choosing never costs a signature check
    the signature, with that key (the one signature check a request costs; §4.3 step 6)
    htm = the method, htu = the request's URL (htu.py), iat in the window, jti present,
    ath = base64url(SHA-256(token)) (§4.3 steps 8-12), the nonce when required (§8; past
    half its life, the answer carries the next one in DPoP-Nonce, §8.2)
    the jti not seen within the window (§11.1; dpop_replay.py) — last, so a proof refused for
    another reason does not spend its jti.

The token itself is verified (and cached) by bearer.py; only the proof is checked per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from gatekeeper.authn.dpop_replay import Nonces, ReplayCache
from gatekeeper.authn.htu import normalise, request_url
from gatekeeper.errors import DpopRefused, GatekeeperError
from gatekeeper.lru import LRU
from gatekeeper.request import RequestView
from gatekeeper.settings.dpop import DpopSettings
from gatekeeper.tokens.claims import is_finite_number
from gatekeeper.tokens.jws import peek_token

# RFC 7638 §3.2: the required members of each key type, the only ones hashed.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"),
                       "OKP": ("crv", "kty", "x")}
# RFC 7517 §9.3 / RFC 7518 §6: a proof carries the public key only; any private member refuses it.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_MIN_RSA_BYTES = 256  # 2048-bit modulus
_MAX_RSA_EXPONENT_CHARS = 43  # base64url of 32 bytes: e < 2^256 (FIPS 186-5 §5.4)
_KEY_CACHE_SIZE = 10_000


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the value of ``cnf.jkt``."""
    members = _THUMBPRINT_MEMBERS[str(jwk["kty"])]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url(SHA-256(ASCII of the access token))."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DpopProofs:
    def __init__(self, settings: DpopSettings, replay: ReplayCache,
                 is_trusted: Callable[[str], bool], nonces: Nonces | None = None) -> None:
        self._settings = settings
        self._algs = tuple(settings.algorithms)
        self._replay = replay
        self._is_trusted = is_trusted
        self._nonces = nonces
        self._jws = jwt.PyJWS()
        self._keys: LRU[tuple[str, str], jwt.PyJWK] = LRU(_KEY_CACHE_SIZE)

    @property
    def algs(self) -> tuple[str, ...]:
        return self._algs

    def refused(self, description: str, code: str, error: str = "invalid_dpop_proof",
                nonce: str | None = None) -> DpopRefused:
        return DpopRefused(description, code=code, error=error, algs=self._algs, nonce=nonce)

    async def check(self, request: RequestView, token: str, jkt: str,
                    now: float | None = None) -> str | None:
        """Raise ``DpopRefused`` unless the request's one DPoP proof binds it to ``jkt``; return
        a fresh nonce for the answer's ``DPoP-Nonce`` when the proof's is past half its life
        (RFC 9449 §8.2), else None."""
        now = time.time() if now is None else now
        _header, claims = self._signed(request, jkt)
        self._claims(request, token, claims, now)
        window = self._settings.iat_window_seconds
        replay_key = hashlib.sha256(f"{jkt}\n{claims['jti']}".encode()).hexdigest()
        if not await self._replay.first_use(replay_key, 2 * window, now, holder=jkt):
            raise self.refused("the proof was used before", "dpop_replayed")
        if self._nonces is not None and self._nonces.expiring(claims.get("nonce"), now):
            return self._nonces.issue(now)
        return None

    def _signed(self, request: RequestView, jkt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        values = request.header_values(b"dpop")
        if len(values) != 1:
            raise self.refused("exactly one DPoP proof is required", "dpop_proof_count")
        if len(values[0]) > self._settings.max_proof_bytes:
            raise self.refused("DPoP proof too large", "dpop_proof_too_large")
        proof = values[0].decode("latin-1").strip()
        try:
            header, claims = peek_token(proof)
        except GatekeeperError as exc:
            raise self.refused("malformed DPoP proof", "dpop_malformed") from exc
        if header.get("typ") != "dpop+jwt":
            raise self.refused("the proof is not typed dpop+jwt", "dpop_wrong_type")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:
            raise self.refused("proof algorithm not allowed", "dpop_bad_algorithm")
        if "crit" in header:
            raise self.refused("unsupported critical header", "dpop_unsupported_crit")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise self.refused("the proof carries no public key", "dpop_bad_jwk")
        key = self._key(jwk, alg)
        if not hmac.compare_digest(thumbprint(jwk), jkt):
            raise self.refused("the proof's key is not the token's", "dpop_key_mismatch",
                               error="invalid_token")
        try:
            self._jws.decode(proof, key.key, algorithms=[alg])
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            raise self.refused("proof signature verification failed", "dpop_bad_signature") from exc
        return header, claims

    def _key(self, jwk: dict[str, Any], alg: str) -> jwt.PyJWK:
        if not isinstance(jwk.get("kty"), str):
            raise self.refused("the proof carries no public key", "dpop_bad_jwk")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise self.refused("the proof's jwk holds private key material", "dpop_private_jwk")
        kty = jwk["kty"]
        members = _THUMBPRINT_MEMBERS.get(kty)
        if members is None or not all(isinstance(jwk.get(m), str) for m in members):
            raise self.refused("the proof carries no public key", "dpop_bad_jwk")
        fits = ((alg in _CURVES and kty == "EC" and jwk["crv"] == _CURVES[alg])
                or (alg == "EdDSA" and kty == "OKP" and jwk["crv"] in ("Ed25519", "Ed448"))
                or (alg[:2] in ("RS", "PS") and kty == "RSA"
                    and len(jwk["n"]) * 3 // 4 >= _MIN_RSA_BYTES - 2
                    and len(jwk["e"]) <= _MAX_RSA_EXPONENT_CHARS))
        if not fits:
            raise self.refused("the proof's key does not fit its alg", "dpop_bad_jwk")
        cache_key = (thumbprint(jwk), alg)
        key = self._keys.get(cache_key)
        if key is None:
            public = {m: jwk[m] for m in members}
            try:
                key = jwt.PyJWK(public, algorithm=alg)
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
                raise self.refused("the proof carries no usable key", "dpop_bad_jwk") from exc
            self._keys.put(cache_key, key)
        return key

    def _claims(self, request: RequestView, token: str, claims: dict[str, Any], now: float) -> None:
        if claims.get("htm") != request.method:
            raise self.refused("htm is not the request's method", "dpop_wrong_htm")
        htu = claims.get("htu")
        expected = request_url(request, self._is_trusted)
        if not isinstance(htu, str) or expected is None or normalise(htu) != expected:
            raise self.refused("htu is not the request's URL", "dpop_wrong_htu")
        iat = claims.get("iat")
        if not is_finite_number(iat):
            raise self.refused("iat missing or not a number", "dpop_bad_iat")
        if abs(now - iat) > self._settings.iat_window_seconds:
            raise self.refused("the proof is too old or from the future", "dpop_iat_window")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise self.refused("jti missing", "dpop_bad_jti")
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(token)):
            raise self.refused("ath is not the access token's hash", "dpop_wrong_ath")
        if self._nonces is not None and not self._nonces.valid(claims.get("nonce"), now):
            raise self.refused("a DPoP nonce is required", "use_dpop_nonce",
                               error="use_dpop_nonce", nonce=self._nonces.issue(now))
