"""A development OpenID token issuer: signing keys, token minting, the discovery and JWKS documents.

Used by ``gatekeeper demo`` and by the tests as a real issuer. It never verifies anything and keeps
its private keys in memory only: it is not an identity provider.

    issuer = DevIssuer("http://127.0.0.1:9000")
    token = issuer.mint("alice", audience="my-api", claims={"roles": ["admin"]})

Its HTTP face is ``gatekeeper.dev.issuer_http.create_issuer_app``, which also serves the login
side (gatekeeper/dev/login.py) when given one.

Every published key is bound to one algorithm through the JWK ``alg`` member (RFC 7517 §4.4), so a
strict verifier accepts a token only with the algorithm its key names. Keys for RS256, PS256, ES256
and EdDSA exist from the start; ``add_key``/``rotate`` create any other.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = [
    "DEFAULT_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "DevIssuer",
    "IssuerKey",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Family = Literal["RSA", "P-256", "P-384", "P-521", "Ed25519"]

# The key shape each JWS algorithm needs (RFC 7518 §3.3-3.5, RFC 8037 §3.1).
_FAMILY: dict[str, Family] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "ES512": "P-521",
    "EdDSA": "Ed25519",
}
SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(_FAMILY)
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")

_CURVES: dict[Family, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def _generate(family: Family) -> PrivateKey:
    if family == "RSA":
        # 2048 bits: the common IdP default, and fast enough to generate per test.
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if family == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(_CURVES[family])


def _key_family(key: PrivateKey) -> Family:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    for family, curve in _CURVES.items():
        if curve.name == key.curve.name:
            return family
    raise ValueError(f"unsupported curve {key.curve.name}")


def _public_jwk(public_key: PublicKey) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(public_key, as_dict=True))
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(public_key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(public_key, as_dict=True))


@dataclass(frozen=True)
class IssuerKey:
    """One signing key, made for ``alg``; ``publish_alg`` puts that alg in its JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    publish_alg: bool = True

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, Any]:
        entry = _public_jwk(self.public_key)
        entry.update(kid=self.kid, use="sig")
        if self.publish_alg:
            entry["alg"] = self.alg
        return entry

    def public_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM: the bytes a key-confusion attacker would HMAC with."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class DevIssuer:
    """Signing keys plus the knobs tests turn on the HTTP side (see ``create_issuer_app``).

    Safe to use from a test thread while the app serves from a server thread: key changes happen
    under a lock and readers take snapshots.
    """

    def __init__(
        self,
        issuer: str = "http://127.0.0.1",
        *,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        jwks_max_age_seconds: int = 300,
    ) -> None:
        # Settable after construction: the URL is often known only once the server has a port.
        self.issuer = issuer.rstrip("/")
        self.jwks_max_age_seconds = jwks_max_age_seconds
        # HTTP-side test knobs, read per request by the app.
        self.fetch_counts: Counter[str] = Counter()
        self.down = False
        self.jwks_delay_seconds = 0.0
        self.jwks_in_flight = 0  # JWKS answers being served now, and the most at once
        self.jwks_most_in_flight = 0
        self.discovery_delay_seconds = 0.0
        self.jwks_override: Any = None  # served verbatim as the JWKS body when not None
        self.discovery_overrides: dict[str, Any] = {}

        self._lock = threading.Lock()
        self._keys: dict[str, IssuerKey] = {}
        self._current: dict[str, str] = {}  # alg -> kid that mint() uses by default
        for alg in algorithms:
            self.add_key(alg)

    # -- keys ---------------------------------------------------------------------------------

    def add_key(
        self,
        alg: str = "RS256",
        *,
        kid: str | None = None,
        private_key: PrivateKey | None = None,
        publish_alg: bool = True,
        make_current: bool = True,
    ) -> str:
        """Generate (or adopt) and publish a key for ``alg``; by default ``mint`` then uses it."""
        family = _family(alg)
        if private_key is None:
            private_key = _generate(family)
        elif _key_family(private_key) != family:
            raise ValueError(f"that private key cannot sign {alg}")
        kid = kid if kid is not None else f"{alg.lower()}-{secrets.token_hex(4)}"
        key = IssuerKey(kid=kid, alg=alg, private_key=private_key, publish_alg=publish_alg)
        with self._lock:
            if kid in self._keys:
                raise ValueError(f"kid {kid!r} already exists")
            self._keys[kid] = key
            if make_current or alg not in self._current:
                self._current[alg] = kid
        return kid

    def rotate(self, alg: str = "RS256", *, drop_old: bool = False) -> str:
        """A new current key for ``alg``; old keys stay published unless ``drop_old``."""
        with self._lock:
            old = [k.kid for k in self._keys.values() if k.alg == alg]
        kid = self.add_key(alg)
        if drop_old:
            for old_kid in old:
                self.remove_key(old_kid)
        return kid

    def remove_key(self, kid: str) -> None:
        """Unpublish a key. If it was current, another key for its alg (if any) takes over."""
        with self._lock:
            key = self._keys.pop(kid)
            if self._current.get(key.alg) == kid:
                others = [k.kid for k in self._keys.values() if k.alg == key.alg]
                if others:
                    self._current[key.alg] = others[-1]
                else:
                    del self._current[key.alg]

    def key(self, kid: str | None = None, *, alg: str = "RS256") -> IssuerKey:
        """The key named ``kid``, or the current key for ``alg``."""
        with self._lock:
            if kid is None:
                if alg not in self._current:
                    raise ValueError(f"no key for {alg}; call add_key({alg!r}) first")
                kid = self._current[alg]
            return self._keys[kid]

    @property
    def kids(self) -> list[str]:
        with self._lock:
            return list(self._keys)

    # -- documents ----------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            keys = list(self._keys.values())
        return {"keys": [k.jwk() for k in keys]}

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def discovery(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The discovery document; ``extra`` (a login side's endpoints) goes under the overrides."""
        with self._lock:
            algs = sorted({k.alg for k in self._keys.values()})
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "id_token_signing_alg_values_supported": algs,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
        }
        document.update(extra or {})
        document.update(self.discovery_overrides)
        return document

    # -- tokens -------------------------------------------------------------------------------

    def mint(
        self,
        subject: str,
        *,
        audience: str | Sequence[str],
        alg: str = "RS256",
        ttl_seconds: int = 300,
        claims: Mapping[str, Any] | None = None,
        omit: Iterable[str] = (),
        kid: str | None = None,
        include_kid: bool = True,
        headers: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """A signed JWT from this issuer.

        ``kid`` picks the signing key (default: the current key for ``alg``); it may name a key
        made for another alg of the same family, to mint alg/key mismatches on purpose.
        ``claims`` override the standard ones; ``omit`` drops claims (e.g. ``omit=["exp"]``);
        ``headers`` are added to the JOSE header (``{"typ": None}`` drops typ). A lying ``alg``
        header is not possible here: use ``tests/support/forge.py`` for that.
        """
        key = self.key(kid, alg=alg)
        if _family(alg) != _family(key.alg):
            raise ValueError(f"key {key.kid!r} ({key.alg}) cannot sign {alg}")
        if headers is not None and "alg" in headers:
            raise ValueError("headers may not set 'alg'; mint(alg=...) does")
        issued = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        payload.update(claims or {})
        for name in omit:
            payload.pop(name, None)
        header: dict[str, Any] = {"kid": key.kid} if include_kid else {}
        header.update(headers or {})
        return jwt.encode(payload, key.private_key, algorithm=alg, headers=header)


def _family(alg: str) -> Family:
    try:
        return _FAMILY[alg]
    except KeyError:
        raise ValueError(f"unsupported algorithm {alg!r}; one of {SUPPORTED_ALGORITHMS}") from None
