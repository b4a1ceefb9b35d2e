"""JWT bearer authentication (PyJWT): find the token, verify it against its issuer's keys.

Contract (as every authenticator): ``None`` = no token here, not mine; raise = a token was
presented and is bad; a Principal = success.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper.authn.certbound import CertificateBinding, bound_thumbprint
from gatekeeper.cookies import cookie_pairs
from gatekeeper.errors import BadRequest, GatekeeperError, InvalidToken
from gatekeeper.headernames import fold
from gatekeeper.lru import LRU
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings
from gatekeeper.subjects import SubjectClash, SubjectNamespaces
from gatekeeper.tokens.claims import roles_from_claims
from gatekeeper.tokens.jwks import IssuerKeys, SigningKey
from gatekeeper.tokens.verify import Check, ClaimRules, JwsVerifier, Refusal

_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token


def find_token(request: RequestView, sources: Sequence[str]) -> str | None:
    """The bearer token from the configured sources; never from the query string (RFC 6750 §2.3)."""
    for source in sources:
        if source == "header":
            values = request.header_values(b"authorization")
            if len(values) > 1:
                raise BadRequest("more than one Authorization header", code="duplicate_authorization")
            if values:
                token = _from_authorization(values[0])
                if token is not None:
                    return token
        else:
            token = _token_cookie(request.header_values(b"cookie"), source.partition(":")[2])
            if token:
                return token
    return None


def _token_cookie(headers: Sequence[bytes], name: str) -> str | None:
    """The one cookie ``name`` of the request, read by the one Cookie parser (cookies.py: split
    at every ``;``, names trimmed as the loosest app trims them), never unquoted. Which of two
    same-named cookies an app reads differs by framework (Werkzeug, PHP, Express: the first;
    Starlette, SimpleCookie: the last), a quoted value may hide another, and some read names
    loosely (ASP.NET ignores case, PHP turns ``.`` and space into ``_``): a second one, or one
    in a spelling that folds to ``name``, or one after white space (whose value apps read
    differently), could be a token the app reads and gatekeeper never verified — 400, like two
    Authorization headers."""
    wanted = name.encode("latin-1")
    folded = fold(wanted)
    found: bytes | None = None
    for key, value in cookie_pairs(headers):
        if fold(key) == folded:
            if key != wanted or found is not None or value is None:
                raise BadRequest(f"more than one {name} cookie, or one spelled otherwise",
                                 code="duplicate_token_cookie")
            found = value
    return found.decode("latin-1") if found is not None else None


def _from_authorization(value: bytes) -> str | None:
    words = value.split(None, 1)
    if not words or words[0].lower() != b"bearer":
        return None  # another scheme (Basic, …) is not ours to judge
    # Django REST framework and Flask-HTTPAuth split at any white space: "Bearer<TAB>token" is a
    # bearer token to them, so it is ours to check — and RFC 6750 §2.1 has a space there.
    scheme, _, rest = value.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raise InvalidToken("malformed bearer credentials", code="malformed_token")
    token = rest.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed bearer credentials", code="malformed_token")
    return token.decode("ascii")


class TokenCache:
    """Verified tokens → principal, bounded (LRU). An entry holds until the token's exp, and only
    while the issuer still publishes the key that verified it (``IssuerKeys.publishes``)."""

    def __init__(self, size: int) -> None:
        self._entries: LRU[str, tuple[Principal, float, IssuerKeys, SigningKey]] = LRU(size)

    def get(self, token: str, now: float) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, valid_until, keys, key = entry
        if now >= valid_until or not keys.publishes(key):
            self._entries.discard(token)
            return None
        return principal

    def put(self, token: str, principal: Principal, valid_until: float, keys: IssuerKeys,
            key: SigningKey) -> None:
        self._entries.put(token, (principal, valid_until, keys, key))

    def __len__(self) -> int:
        return len(self._entries)


# Each failed check of the shared verification (tokens/verify.py), in RFC 6750 words: the code
# is the JSON body's "error", the description the WWW-Authenticate error_description.
_REFUSALS: dict[Check, tuple[str, str]] = {
    "malformed": ("malformed_token", "malformed token"),
    "alg_none": ("alg_none", "unsigned tokens are not accepted"),
    "crit": ("unsupported_crit", "unsupported critical header"),
    "algorithm": ("bad_algorithm", "algorithm not allowed"),
    "kid": ("malformed_token", "malformed kid"),
    "signature": ("bad_signature", "signature verification failed"),
    "expired": ("expired", "token expired"),
    "not_yet_valid": ("not_yet_valid", "token not yet valid (nbf/iat)"),
    "audience": ("bad_audience", "audience not accepted"),
    "issuer": ("bad_issuer", "issuer not accepted"),
    "iat": ("bad_iat", "iat is not a number"),
}
_NUMERIC_DATES = frozenset({"exp", "nbf", "iat"})
_REQUIRED = ("exp", "iss", "aud", "sub")


def _refuse(refusal: Refusal) -> GatekeeperError:
    if refusal.key_error is not None:
        return refusal.key_error  # the JWKS cache's own 401 (unknown_kid, …) or 503
    if refusal.check == "missing_claim":
        return InvalidToken(f"missing claim {refusal.detail}", code="missing_claim")
    if refusal.check == "invalid_claim":
        kind = "is not a number" if refusal.detail in _NUMERIC_DATES else "must be a string"
        return InvalidToken(f"claim {refusal.detail} {kind}", code="invalid_claim")
    code, description = _REFUSALS.get(refusal.check, _REFUSALS["malformed"])
    return InvalidToken(description, code=code)


def _typed_as_another_kind(typ: Any) -> bool:
    """RFC 8725 §3.11: explicit typing keeps one kind of JWT from passing as another. A ``typ``
    naming a kind (``<kind>+jwt``, media type or short form, RFC 7515 §4.1.9) other than an
    access token (``at+jwt``, RFC 9068 §2.1) — a logout token, a DPoP proof, a security event —
    is refused; plain ``JWT`` or none says nothing and passes."""
    if typ is None:
        return False
    if not isinstance(typ, str):
        return True
    kind = typ.lower().removeprefix("application/")
    return kind.endswith("+jwt") and kind != "at+jwt"


class BearerAuthenticator:
    def __init__(
        self, auth: AuthSettings, keys: Mapping[str, IssuerKeys], metrics: Metrics,
        namespaces: SubjectNamespaces | None = None,
        binding: CertificateBinding | None = None,
    ) -> None:
        self._auth = auth
        # RFC 8705 §3: a cnf x5t#S256 token is checked against the presented certificate on
        # every request (the token cache holds the verified token, not the connection).
        self._binding = binding or CertificateBinding(None, "pem", lambda _client: False)
        self._keys = keys
        self._metrics = metrics
        self._namespaces = namespaces or SubjectNamespaces()
        self.cache = TokenCache(auth.token_cache_size)
        self._verifier = JwsVerifier(_refuse)

    async def authenticate(self, request: RequestView) -> Principal | None:
        token = find_token(request, self._auth.token_sources)
        if token is None:
            return None
        if len(token) > self._auth.max_token_bytes:
            raise InvalidToken("token too large", code="token_too_large")
        now = time.time()
        principal = self.cache.get(token, now)
        if principal is not None:
            self._metrics.token_cache_hits.inc()
        else:
            self._metrics.token_cache_misses.inc()
            principal, valid_until, keys, key = await self._verify(token, now)
            self.cache.put(token, principal, valid_until, keys, key)
        if "cnf" in principal.claims:  # shape checked in _verify; bound: prove the certificate
            thumbprint = bound_thumbprint(principal.claims)
            if thumbprint is not None:
                self._binding.check(request, thumbprint)
        return principal

    async def _verify(
        self, token: str, now: float
    ) -> tuple[Principal, float, IssuerKeys, SigningKey]:
        header, payload = self._verifier.read(token)
        if _typed_as_another_kind(header.get("typ")):
            raise InvalidToken("the token is typed for another use", code="wrong_token_type")
        # RFC 7800 §3.1 / RFC 9449 §6 / RFC 8705 §3: a key-bound token is good only with proof
        # of the bound key. Only cnf x5t#S256 (the client certificate, authn/certbound.py) is
        # checked here; any other cnf is refused before its signature costs anything: a stolen
        # sender-constrained token must not pass as a bearer token.
        bound_thumbprint(payload)
        issuer = payload.get("iss")
        keys = self._keys.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise InvalidToken("issuer not accepted", code="bad_issuer")
        rules = ClaimRules(issuer=keys.issuer.issuer, audience=keys.issuer.audience,
                           leeway_seconds=self._auth.leeway_seconds, require=_REQUIRED)
        claims, key = await self._verifier.verify(token, header, keys, keys.issuer.algorithms, rules)
        return (*self._principal(token, claims, keys.issuer.issuer, now), keys, key)

    def _principal(
        self, token: str, claims: dict[str, Any], issuer: str, now: float
    ) -> tuple[Principal, float]:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("missing claim sub", code="missing_claim")
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat > now + self._auth.leeway_seconds:
            raise InvalidToken("token not yet valid (nbf/iat)", code="not_yet_valid")
        expires_at = float(claims["exp"])
        try:
            # One identity per issuer (subjects.py): the partner's "alice" is not ours.
            subject = self._namespaces.subject(issuer, subject)
        except SubjectClash as exc:
            raise InvalidToken("subject not accepted", code="subject_namespace_clash") from exc
        principal = Principal(
            subject=subject,
            roles=roles_from_claims(claims, self._auth.roles_claims),
            claims=claims,
            via="bearer",
            issuer=issuer,
            expires_at=expires_at,
            token=token,
        )
        return principal, expires_at

