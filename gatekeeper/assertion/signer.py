"""Sign the assertion for one allowed request; reuse it for the same caller and target.

Claims (RFC 7519 §4.1 where registered):

    iss   assertion.issuer             aud    assertion.audience (the app)
    sub   the caller, as X-Auth-Request-User names it (issuer-namespaced with several issuers)
    iat   now (whole seconds)           nbf    = iat       exp    iat + assertion.ttl_seconds
    req   the request binding (binding.py)
    roles the caller's roles, as the policy saw them (a list; empty when none)
    email the caller's e-mail, only when the provider verified it (as X-Auth-Request-Email)
    ...   each ``assertion.claims`` entry whose value is a string, number, boolean or list of those

Header: ``alg``, ``kid`` (the key's RFC 7638 thumbprint), ``typ`` ``gatekeeper-assertion+jwt``
(RFC 8725 §3.11: explicit typing, so no other JWT gatekeeper's key might sign passes for it).

The cache. The binding makes an assertion specific to (caller, method, target), so that is the
cache key: the caller is the ``Principal`` object, compared by identity — the authenticators keep
one per token or per (session, access token), and a refreshed session is a new one — so an
assertion is never handed to another caller, nor for another method or target. An entry is
reused during the first half of its lifetime (the app always receives at least half of
``ttl_seconds``), and never after the wall clock went back before its ``iat``. A key swap
(``use``) starts an empty cache: nothing signed by the old key is handed out after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from gatekeeper.assertion.binding import request_binding, request_target
from gatekeeper.assertion.keys import KeyRing
from gatekeeper.lru import LRU
from gatekeeper.mutate import email_verified
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.assertion import AssertionSettings
from gatekeeper.tokens.claims import claim_at

TYP = "gatekeeper-assertion+jwt"
_CACHE_BYTES = 32 << 20

_Key = tuple[Principal, str, bytes]  # (caller, method, target)
# (the header, iat, reuse until)
_Entry = tuple[tuple[bytes, bytes], int, float]


@dataclass(frozen=True, slots=True)
class _Signing:
    """The keys and the assertions they signed: swapped together, in one assignment."""

    keys: KeyRing
    cache: LRU[_Key, _Entry]


class AssertionSigner:
    def __init__(self, settings: AssertionSettings, keys: KeyRing,
                 clock: Callable[[], float] = time.time) -> None:
        self._name = settings.header.encode("ascii")
        self._issuer = settings.issuer
        self._audience = settings.audience
        self._ttl = settings.ttl_seconds
        self._reuse_seconds = settings.ttl_seconds / 2
        self._claims = tuple(settings.claims.items())
        self._cache_size = settings.cache_size
        self._clock = clock
        self._signing = _Signing(keys, LRU(self._cache_size, max_bytes=_CACHE_BYTES))

    @property
    def keys(self) -> KeyRing:
        return self._signing.keys

    def jwks(self) -> bytes:
        """The JSON body of the published keys (``KeyRing.jwks``), as they are now."""
        return self._signing.keys.jwks

    def use(self, keys: KeyRing) -> None:
        """Sign with ``keys`` from now on (a reload); no assertion of the old key is reused."""
        self._signing = _Signing(keys, LRU(self._cache_size, max_bytes=_CACHE_BYTES))

    def header(self, principal: Principal, request: RequestView) -> tuple[bytes, bytes]:
        """(header name, assertion) for an authenticated ``principal`` making ``request``."""
        signing = self._signing
        now = self._clock()
        method = request.method
        target = request_target(request.path, request.query)
        key = (principal, method, target)
        entry = signing.cache.get(key)
        if entry is not None and entry[1] <= now < entry[2]:
            return entry[0]
        iat = int(now)
        header = (self._name, self._sign(signing.keys, principal, method, target, iat))
        signing.cache.put(key, (header, iat, iat + self._reuse_seconds))
        return header

    def claims(self, principal: Principal, method: str, target: bytes, iat: int) -> dict[str, Any]:
        """The payload of the assertion for ``principal`` making ``method target`` at ``iat``."""
        payload: dict[str, Any] = {
            "iss": self._issuer, "sub": principal.subject, "aud": self._audience,
            "iat": iat, "nbf": iat, "exp": iat + self._ttl,
            "req": request_binding(method, target), "roles": list(principal.roles),
        }
        email = principal.claims.get("email")
        if isinstance(email, str) and email_verified(principal.claims):
            payload["email"] = email
        for name, path in self._claims:
            value = _json_value(claim_at(principal.claims, path))
            if value is not None:
                payload[name] = value
        return payload

    def _sign(self, keys: KeyRing, principal: Principal, method: str, target: bytes,
              iat: int) -> bytes:
        payload = self.claims(principal, method, target, iat)
        token = jwt.encode(payload, keys.signing.private, algorithm=keys.algorithm,
                           headers={"kid": keys.signing.kid, "typ": TYP})
        return token.encode("ascii")


def _json_value(value: Any) -> Any:
    """A claim value passed on as it is: a string, number, boolean, or a list of those."""
    if isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
        return list(value)
    return None
