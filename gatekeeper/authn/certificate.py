"""mTLS: the verified client certificate as claims of the caller, and (``tls.client_auth:
principal``) as a caller of its own.

``CertificateClaims`` wraps each authenticator. The claim ``x509`` is gatekeeper's: a principal's
``claims["x509"]`` is the connection's verified certificate (peercert.py lists its fields) or
nothing — a token or session claim of that name is dropped, whether or not mTLS is configured,
so a policy rule on ``r.claims.x509.*`` never reads something an identity provider (or whoever
controls a claim there) wrote. A request without credentials stays anonymous with no claims.

``CertificateAuthenticator`` comes after the token and session authenticators: a request that
brings a token is the token's caller (with the certificate's claims); one that brings only a
verified certificate is the certificate's (``via: certificate``). Its subject is
``tls.subject_prefix`` + the field ``tls.client_principal`` names; a certificate with none, or
several, of that field is refused (401): guessing which of two SANs is the caller is not ours.

Principals are memoized per (principal, certificate): the decision and identity-header caches are
keyed by the principal object, so a new one per request would miss them every time.
"""

from __future__ import annotations

from typing import Protocol

from gatekeeper.errors import Unauthenticated
from gatekeeper.exchange import Exchange
from gatekeeper.lru import LRU
from gatekeeper.peercert import CLAIM, ClientCertificate
from gatekeeper.principal import Principal
from gatekeeper.settings.tls import CERTIFICATE_ISSUER, ClientPrincipal
from gatekeeper.subjects import SubjectClash, SubjectNamespaces

_CACHE_SIZE = 10_000


class Authenticator(Protocol):  # pipeline.Authenticator's shape (the pipeline sits above authn)
    async def authenticate(self, request: Exchange) -> Principal | None: ...


def with_certificate(principal: Principal, certificate: ClientCertificate | None) -> Principal:
    """``principal`` with ``claims["x509"]`` set to ``certificate``'s claims (or removed)."""
    claims = {k: v for k, v in principal.claims.items() if k != CLAIM}
    if certificate is not None:
        claims[CLAIM] = certificate.claims
    return Principal(subject=principal.subject, roles=principal.roles, claims=claims,
                     via=principal.via, issuer=principal.issuer,
                     expires_at=principal.expires_at, token=principal.token,
                     response_headers=principal.response_headers)


class CertificateClaims:
    """An authenticator whose principals carry the connection's certificate as ``x509``."""

    def __init__(self, inner: Authenticator) -> None:
        self._inner = inner
        self._cache: LRU[tuple[Principal, ClientCertificate | None], Principal] = LRU(_CACHE_SIZE)

    async def authenticate(self, request: Exchange) -> Principal | None:
        principal = await self._inner.authenticate(request)
        if principal is None:
            return None
        certificate = request.client_certificate
        if certificate is None and CLAIM not in principal.claims:
            return principal  # the common case: nothing to add, nothing to drop
        key = (principal, certificate)
        found = self._cache.get(key)
        if found is None:
            found = with_certificate(principal, certificate)
            self._cache.put(key, found)
        return found


class CertificateAuthenticator:
    """``None`` without a verified certificate; the certificate's principal otherwise."""

    def __init__(self, field: ClientPrincipal, namespaces: SubjectNamespaces) -> None:
        self._field = field
        self._namespaces = namespaces
        self._cache: LRU[ClientCertificate, Principal] = LRU(_CACHE_SIZE)

    async def authenticate(self, request: Exchange) -> Principal | None:
        certificate = request.client_certificate
        if certificate is None:
            return None
        principal = self._cache.get(certificate)
        if principal is None:
            principal = self._principal(certificate)
            self._cache.put(certificate, principal)
        return principal

    def _principal(self, certificate: ClientCertificate) -> Principal:
        name = self._name(certificate)
        try:
            subject = self._namespaces.subject(CERTIFICATE_ISSUER, name)
        except SubjectClash as exc:
            raise Unauthenticated("certificate subject not accepted",
                                  code="subject_namespace_clash") from exc
        return Principal(subject=subject, roles=(), claims={CLAIM: certificate.claims},
                         via="certificate", issuer=certificate.issuer,
                         expires_at=float(certificate.claims["not_after"]))

    def _name(self, certificate: ClientCertificate) -> str:
        field = self._field
        if field in ("subject", "subject_cn"):
            values: tuple[str, ...] = ((certificate.subject,) if field == "subject"
                                       else (certificate.subject_cn,))
        else:
            values = getattr(certificate, field)
        values = tuple(v for v in values if v)
        if len(values) != 1:
            raise Unauthenticated(
                f"the client certificate has {'no' if not values else 'more than one'} {field}",
                code="certificate_without_principal")
        return values[0]
