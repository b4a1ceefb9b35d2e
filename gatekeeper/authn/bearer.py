"""JWT bearer authentication (PyJWT): find the token, verify it against its issuer's keys.

Contract (as every authenticator): ``None`` = no token here, not mine; raise = a token was
presented and is bad; a Principal = success.
"""

from __future__ import annotations

import binascii
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt

from gatekeeper.errors import BadRequest, InvalidToken
from gatekeeper.headernames import fold
from gatekeeper.lru import LRU
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings
from gatekeeper.subjects import SubjectClash, SubjectNamespaces
from gatekeeper.tokens.claims import roles_from_claims
from gatekeeper.tokens.jwks import IssuerKeys, SigningKey
from gatekeeper.tokens.jws import peek_token

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
    """The one cookie ``name`` of the request, split as the simplest app parser splits (at every
    ``;``, names trimmed), never unquoted. Which of two same-named cookies an app reads differs
    by framework (Werkzeug, PHP, Express: the first; Starlette, SimpleCookie: the last), a
    quoted value may hide another, and some read names loosely (ASP.NET ignores case, PHP turns
    ``.`` and space into ``_``): a second one, or one in a spelling that folds to ``name``, could
    be a token the app reads and gatekeeper never verified — 400, like two Authorization headers."""
    wanted = name.encode("latin-1")
    found: list[bytes] = []
    for header in headers:
        for segment in header.split(b";"):
            key, _, value = segment.partition(b"=")
            key = key.strip(b" \t")
            if fold(key) == fold(wanted):
                if key != wanted or found:
                    raise BadRequest(f"more than one {name} cookie, or one spelled otherwise",
                                     code="duplicate_token_cookie")
                found.append(value.strip(b" \t"))
    return found[0].decode("latin-1") if found else None


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


_JWT_ERRORS: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "expired", "token expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "token not yet valid (nbf/iat)"),
    (jwt.InvalidAudienceError, "bad_audience", "audience not accepted"),
    (jwt.InvalidIssuerError, "bad_issuer", "issuer not accepted"),
    (jwt.InvalidSignatureError, "bad_signature", "signature verification failed"),
    (jwt.InvalidAlgorithmError, "bad_algorithm", "algorithm not allowed"),
    (jwt.InvalidIssuedAtError, "bad_iat", "iat is not a number"),
    (jwt.exceptions.InvalidSubjectError, "invalid_claim", "claim sub must be a string"),
    (jwt.exceptions.InvalidJTIError, "invalid_claim", "claim jti must be a string"),
)
_NUMERIC_DATES = ("exp", "nbf", "iat")


def _check_numeric_dates(payload: Mapping[str, Any]) -> None:
    """RFC 7519 §2: exp/nbf/iat are JSON numbers. PyJWT runs ``int()`` on them, which takes
    ``"9999999999"`` (a string exp that passed) and ``true`` (== 1), and Python's JSON reader
    takes ``Infinity``/``NaN``: check the type here, before any key work."""
    for name in _NUMERIC_DATES:
        value = payload.get(name)
        if value is None:
            continue  # absent: the required-claims check names it
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidToken(f"claim {name} is not a number", code="invalid_claim")


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
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._metrics = metrics
        self._namespaces = namespaces or SubjectNamespaces()
        self.cache = TokenCache(auth.token_cache_size)
        self._jwt = jwt.PyJWT()

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
            return principal
        self._metrics.token_cache_misses.inc()
        principal, valid_until, keys, key = await self._verify(token, now)
        self.cache.put(token, principal, valid_until, keys, key)
        return principal

    async def _verify(
        self, token: str, now: float
    ) -> tuple[Principal, float, IssuerKeys, SigningKey]:
        header, payload = peek_token(token)
        _check_numeric_dates(payload)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise InvalidToken("unsigned tokens are not accepted", code="alg_none")
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no critical extension, so any is a reject.
            raise InvalidToken("unsupported critical header", code="unsupported_crit")
        if _typed_as_another_kind(header.get("typ")):
            raise InvalidToken("the token is typed for another use", code="wrong_token_type")
        if "cnf" in payload:
            # RFC 7800 §3.1 / RFC 9449 §6 / RFC 8705 §3: good only with proof of the bound key (a
            # DPoP proof, the TLS client certificate), which gatekeeper cannot check; a stolen
            # sender-constrained token must not pass as a bearer token.
            raise InvalidToken("a key-bound token needs a proof gatekeeper cannot check",
                               code="bound_token")
        issuer = payload.get("iss")
        keys = self._keys.get(issuer) if isinstance(issuer, str) else None
        if keys is None:
            raise InvalidToken("issuer not accepted", code="bad_issuer")
        if alg not in keys.issuer.algorithms:
            raise InvalidToken("algorithm not allowed", code="bad_algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed kid", code="malformed_token")
        key = await keys.key_for(kid, alg)
        try:
            claims = self._jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=keys.issuer.audience,
                issuer=keys.issuer.issuer,
                leeway=self._auth.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}", code="missing_claim") from exc
        except jwt.InvalidTokenError as exc:
            for kind, code, description in _JWT_ERRORS:
                if isinstance(exc, kind):
                    raise InvalidToken(description, code=code) from exc
            raise InvalidToken("malformed token", code="malformed_token") from exc
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise InvalidToken("malformed token", code="malformed_token") from exc
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
            # One identity per issuer (issue 11 §1.9): the partner's "alice" is not ours.
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

