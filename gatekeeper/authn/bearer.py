"""Bearer authentication: find the token, verify a JWT against its issuer's keys (PyJWT), or
ask an issuer about a token that is not a JWT (RFC 7662 introspection, tokens/introspect.py;
also its own JWTs with ``mode: always``). Either way the claims become a principal here.

Contract (as every authenticator): ``None`` = no token here, not mine; raise = a token was
presented and is bad; a Principal = success.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from gatekeeper.authn.certbound import CertificateBinding, bound_thumbprint
from gatekeeper.authn.dpop import DpopProofs
from gatekeeper.cookies import cookie_pairs
from gatekeeper.errors import BadRequest, GatekeeperError, IntrospectionUnavailable, InvalidToken
from gatekeeper.headernames import fold
from gatekeeper.lru import LRU
from gatekeeper.metrics import Metrics
from gatekeeper.peers import IsTrusted, forwarded_client
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings
from gatekeeper.subjects import SubjectClash, SubjectNamespaces
from gatekeeper.tokens.claims import roles_from_claims
from gatekeeper.tokens.introspect import Answer, Introspector
from gatekeeper.tokens.jwks import IssuerKeys, SigningKey
from gatekeeper.tokens.verify import Check, ClaimRules, JwsVerifier, Refusal

Scheme = Literal["bearer", "dpop"]
_B64TOKEN = re.compile(rb"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 §2.1 b64token


def find_token(request: RequestView, sources: Sequence[str]) -> str | None:
    """The bearer token from the configured sources; never from the query string (RFC 6750 §2.3)."""
    found = find_credentials(request, sources, dpop=False)
    return found[0] if found is not None else None


def find_credentials(
    request: RequestView, sources: Sequence[str], *, dpop: bool
) -> tuple[str, Scheme] | None:
    """The access token and its scheme: ``bearer``, or ``dpop`` (RFC 9449 §7.1) when ``dpop``."""
    for source in sources:
        if source == "header":
            values = request.header_values(b"authorization")
            if len(values) > 1:
                raise BadRequest("more than one Authorization header", code="duplicate_authorization")
            if values:
                found = _from_authorization(values[0], dpop)
                if found is not None:
                    return found
        else:
            token = _token_cookie(request.header_values(b"cookie"), source.partition(":")[2])
            if token:
                return token, "bearer"
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


def _from_authorization(value: bytes, dpop: bool) -> tuple[str, Scheme] | None:
    words = value.split(None, 1)
    ours = (b"bearer", b"dpop") if dpop else (b"bearer",)
    if not words or words[0].lower() not in ours:
        return None  # another scheme (Basic, …) is not ours to judge
    # Django REST framework and Flask-HTTPAuth split at any white space: "Bearer<TAB>token" is a
    # bearer token to them, so it is ours to check — and RFC 6750 §2.1 has a space there.
    scheme, _, rest = value.strip().partition(b" ")
    if scheme.lower() != words[0].lower():
        raise InvalidToken("malformed bearer credentials", code="malformed_token")
    token = rest.strip()
    if not _B64TOKEN.fullmatch(token):
        raise InvalidToken("malformed bearer credentials", code="malformed_token")
    return token.decode("ascii"), ("dpop" if scheme.lower() == b"dpop" else "bearer")


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
        introspectors: Sequence[Introspector] = (), dpop: DpopProofs | None = None,
        binding: CertificateBinding | None = None, is_trusted: IsTrusted = lambda _peer: False,
    ) -> None:
        self._dpop = dpop  # None: DPoP not enabled (auth.dpop.enabled)
        self._is_trusted = is_trusted  # trusted_proxies: whose X-Forwarded-For names the client
        self._auth = auth
        self._introspectors = tuple(introspectors)  # in the issuers' order
        # Which opaque tokens each issuer is shown (settings refuse overlaps, and several
        # issuers without prefixes): never a token another issuer handed out.
        self._prefixes = tuple((i, tuple(i.settings.token_prefixes)) for i in introspectors)
        self._unrouted = (self._introspectors if len(self._prefixes) == 1 and not self._prefixes[0][1]
                          else None)  # the one issuer, without prefixes: every opaque token
        self._always = {i.issuer: i for i in introspectors if i.always}
        # RFC 8705 §3: a cnf x5t#S256 token is checked against the presented certificate on
        # every request (the token cache holds the verified token, not the connection).
        self._binding = binding or CertificateBinding(None, "pem", lambda _client: False)
        self._keys = keys
        self._metrics = metrics
        self._namespaces = namespaces or SubjectNamespaces()
        self.cache = TokenCache(auth.token_cache_size)
        self._verifier = JwsVerifier(_refuse)

    async def authenticate(self, request: RequestView) -> Principal | None:
        found = find_credentials(request, self._auth.token_sources, dpop=self._dpop is not None)
        if found is None:
            return None
        token, scheme = found
        if len(token) > self._auth.max_token_bytes:
            raise InvalidToken("token too large", code="token_too_large")
        if self._introspectors:
            targets = self._introspected_by(token)
            if targets:
                introspected = await self._introspect(
                    token, targets, lambda: forwarded_client(request, self._is_trusted))
                # An answer with cnf is refused (introspect.py): under the DPoP scheme an
                # introspected token is unbound, and refused as such.
                await self._check_binding(request, token, scheme, introspected.claims)
                return introspected
        now = time.time()
        principal = self.cache.get(token, now)
        if principal is not None:
            self._metrics.token_cache_hits.inc()
        else:
            self._metrics.token_cache_misses.inc()
            principal, valid_until, keys, key = await self._verify(token, scheme, now)
            self.cache.put(token, principal, valid_until, keys, key)
        nonce = await self._check_binding(request, token, scheme, principal.claims)
        if nonce is not None:  # this request's own copy: the cached principal stays as it is
            return replace(principal, response_headers=((b"dpop-nonce", nonce.encode("ascii")),))
        return principal

    def _introspected_by(self, token: str) -> tuple[Introspector, ...]:
        """Who introspects this token: for a token that is not a JWT (it names no issuer), the
        issuer whose ``token_prefixes`` it starts with (the one issuer, when it has none); for a
        JWT, its own issuer when that one is ``always``."""
        if token.count(".") != 2:
            if self._unrouted is not None:
                return self._unrouted
            for owner, prefixes in self._prefixes:  # at most one: prefixes never overlap
                if token.startswith(prefixes):
                    return (owner,)
            return ()
        if not self._always:
            return ()
        try:
            issuer = self._verifier.read(token)[1].get("iss")
        except GatekeeperError:
            return ()  # the JWT path refuses it in its own words
        introspector = self._always.get(issuer) if isinstance(issuer, str) else None
        return () if introspector is None else (introspector,)

    async def _introspect(self, token: str, targets: tuple[Introspector, ...],
                          client: Callable[[], str]) -> Principal:
        """The first issuer that calls the token active (RFC 7662); each issuer's answer is
        cached by that issuer alone. Refused by all: the first refusal; an issuer that could not
        answer while none accepted: 503 (fail closed, and only for this token)."""
        digest = hashlib.sha256(token.encode()).digest()
        unavailable: IntrospectionUnavailable | None = None
        refused: Answer | None = None
        for introspector in targets:
            try:
                answer = await introspector.introspect(token, digest, self._principal, client)
            except IntrospectionUnavailable as exc:
                unavailable = exc
                continue
            if answer.principal is not None:
                return answer.principal
            refused = refused or answer
        if unavailable is not None:
            raise unavailable
        if refused is not None:
            refused.result()  # raises its refusal
        raise InvalidToken("token is not active", code="inactive_token")

    async def _check_binding(self, request: RequestView, token: str, scheme: Scheme,
                             claims: Mapping[str, Any]) -> str | None:
        """Checked on every request, cached token or not: the cache holds the token, never a
        proof, and a bound token verified once as DPoP must still fail as Bearer. Returns the
        next DPoP nonce for the answer when one is due (dpop.py), else None."""
        if scheme == "bearer":
            if "cnf" in claims:
                thumbprint = self._bearer_binding(claims)
                if thumbprint is not None:
                    self._binding.check(request, thumbprint)
            return None
        if self._dpop is None:  # find_credentials gives "dpop" only when enabled: fail closed
            raise InvalidToken("DPoP is not enabled", code="malformed_token")
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str) or not jkt:
            # RFC 9449 §7.1: the DPoP scheme is for DPoP-bound tokens; an unbound one is a bearer
            # token sent with a proof anyone could make.
            raise self._dpop.refused("the token is not DPoP-bound", "dpop_unbound_token",
                                     error="invalid_token")
        return await self._dpop.check(request, token, jkt)

    def _bearer_binding(self, claims: Mapping[str, Any]) -> bytes | None:
        """The certificate digest a Bearer token is bound to (None: unbound); a DPoP binding or
        any cnf but x5t#S256 raises."""
        cnf = claims.get("cnf")
        if isinstance(cnf, dict) and "jkt" in cnf:
            raise self._bound_as_bearer()
        return bound_thumbprint(claims)

    def _bound_as_bearer(self) -> InvalidToken:
        # RFC 7800 §3.1 / RFC 9449 §7.2 / RFC 8705 §3: good only with proof of the bound key; a
        # stolen sender-constrained token must not pass as a bearer token.
        if self._dpop is not None:
            return self._dpop.refused("a DPoP-bound token needs the DPoP scheme and a proof",
                                      "bound_token", error="invalid_token")
        return InvalidToken("a key-bound token needs a proof gatekeeper cannot check",
                            code="bound_token")

    async def _verify(
        self, token: str, scheme: Scheme, now: float
    ) -> tuple[Principal, float, IssuerKeys, SigningKey]:
        header, payload = self._verifier.read(token)
        if _typed_as_another_kind(header.get("typ")):
            raise InvalidToken("the token is typed for another use", code="wrong_token_type")
        # RFC 7800 §3.1 / RFC 9449 §7.2 / RFC 8705 §3: a key-bound token is good only with proof
        # of the bound key. As Bearer only a cnf x5t#S256 (the client certificate, checked per
        # request in _check_binding) may come; any other cnf is refused before its signature
        # costs anything: a stolen sender-constrained token must not pass as a bearer token.
        if scheme == "bearer" and "cnf" in payload:
            self._bearer_binding(payload)
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

