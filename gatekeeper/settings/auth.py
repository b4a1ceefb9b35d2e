"""auth: the issuers whose bearer tokens are accepted, and how roles are read from them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gatekeeper.settings.client_auth import ClientCredentials
from gatekeeper.settings.common import AsymmetricAlgorithm, FrozenModel, check_http_url
from gatekeeper.settings.dpop import DpopSettings
from gatekeeper.settings.subjects import SUBJECT_PREFIX_DESCRIPTION, check_issuer_url, check_prefix
from gatekeeper.settings.token_exchange import TokenExchangeClient


class IntrospectionSettings(ClientCredentials):
    """RFC 7662 token introspection at one issuer, for tokens that are not JWTs (or all); the
    client authenticates with any method (RFC 7662 §2.1): a secret or ``private_key_jwt``."""

    endpoint: str | None = Field(
        default=None, description="Default: the issuer metadata's `introspection_endpoint`.")
    mode: Literal["opaque_only", "always"] = Field(
        default="opaque_only",
        description="`opaque_only`: only tokens that are not JWTs; `always`: this issuer's JWTs "
        "too, and its keys are neither fetched nor waited for (an issuer of opaque tokens only "
        "need not publish a JWKS).")
    max_ttl_seconds: float = Field(
        default=60.0, ge=0.0, le=3600.0,
        description="An active answer is cached until the token's exp, at most this long; 0: never.")
    negative_ttl_seconds: float = Field(
        default=5.0, ge=0.0, le=300.0, description="An inactive answer is cached this long.")
    timeout_seconds: float = Field(
        default=2.0, gt=0.0, le=30.0, description="Total deadline of one introspection call; then 503.")
    max_bytes: int = Field(
        default=65536, ge=1024, le=1_048_576, description="Largest answer read; a larger one: 503.")
    cache_size: int = Field(
        default=10000, ge=0, le=1_000_000,
        description="Answers kept per issuer (LRU): this many active and this many refused "
        "(made-up tokens never evict a caller's answer); 0 disables.")
    calls_per_client_per_minute: int = Field(
        default=120, ge=0, le=1_000_000,
        description="Introspection calls (tokens in no cache) one client address may cause a "
        "minute, per worker; more: 429 with Retry-After. Bounds what made-up tokens make the "
        "issuer answer. 0: no bound.")
    token_prefixes: list[str] = Field(
        default_factory=list, max_length=16,
        description="Opaque tokens this issuer hands out start with one of these (e.g. GitHub's "
        "`gho_`): only those are sent to it. Required on each issuer when several introspect, "
        "and not overlapping: an issuer never sees another's tokens. Empty (one issuer): all.")

    @field_validator("token_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not re.fullmatch(r"[\x21-\x7e]{1,64}", prefix) or "." in prefix:
                raise ValueError(f"{prefix!r}: 1 to 64 visible ASCII characters, no '.' "
                                 "(a token with two dots is read as a JWT)")
        return value

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class IssuerSettings(FrozenModel):
    issuer: str = Field(description="Exact `iss` value of accepted tokens.")
    audience: list[str] = Field(min_length=1, description="Token `aud` must contain one of these.")
    jwks_uri: str | None = Field(default=None, description="Default: from discovery.")
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["RS256", "ES256"],
        min_length=1,
        description="Allow-list; asymmetric only (never `none` or HMAC).",
    )
    subject_prefix: str | None = Field(default=None, description=SUBJECT_PREFIX_DESCRIPTION)
    introspection: IntrospectionSettings | None = Field(
        default=None, description="RFC 7662 introspection of opaque (or all) tokens; default: off.")
    token_exchange: TokenExchangeClient | None = Field(
        default=None, description="The client gatekeeper exchanges this issuer's tokens as, on the "
        "routes of the top-level `token_exchange` (RFC 8693); default: none.")

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("issuer")
    @classmethod
    def _no_fragment(cls, value: str) -> str:
        return check_issuer_url(value)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return check_prefix(value)


class AuthSettings(FrozenModel):
    issuers: list[IssuerSettings] = Field(default_factory=list)
    leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed for exp/nbf/iat.")
    roles_claims: list[str] = Field(
        default=["roles", "groups", "realm_access.roles"],
        description="Dotted claim paths; roles are the union of what is found.",
    )
    token_sources: list[str] = Field(
        default=["header"],
        min_length=1,
        description="`header` (Authorization: Bearer) and/or `cookie:NAME`; never the query.",
    )
    max_token_bytes: int = Field(default=16384, ge=512, le=65536, description="Longer tokens: 401.")
    token_cache_size: int = Field(
        default=10000,
        ge=0,
        le=1_000_000,
        description="Verified tokens kept (LRU) until their exp; 0 disables.",
    )
    jwks_min_refresh_seconds: float = Field(
        default=10.0,
        ge=0.0,
        le=3600.0,
        description="At most one JWKS fetch per issuer per this many seconds on unknown kids.",
    )
    jwks_default_ttl_seconds: int = Field(
        default=300, ge=30, le=86400, description="Key refresh period when no Cache-Control max-age."
    )
    jwks_max_ttl_seconds: int = Field(default=3600, ge=30, le=86400, description="Upper bound on max-age.")
    jwks_min_ttl_seconds: int = Field(default=60, ge=5, le=86400, description="Lower bound on max-age.")
    jwks_fetch_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60,
        description="Total deadline of one discovery/JWKS fetch, connect to last byte.",
    )
    jwks_max_bytes: int = Field(
        default=1_048_576, ge=4096, le=67_108_864,
        description="Largest discovery/JWKS answer read; a larger one fails the fetch.",
    )
    dpop: DpopSettings = Field(default_factory=DpopSettings,
                               description="DPoP-bound access tokens (RFC 9449).")

    client_certificate_header: str | None = Field(
        default=None,
        description="Certificate-bound tokens (RFC 8705, docs/tls.md) behind a front proxy that "
        "terminates mTLS: the request header in which a peer on `trusted_proxies` forwards the "
        "client certificate (e.g. `X-SSL-Client-Cert`, `Client-Cert`, "
        "`X-Forwarded-Client-Cert`). Read only from those peers (and then it is the only "
        "certificate source); stripped from what the app receives in every spelling. Default: "
        "only the certificate of gatekeeper's own mTLS handshake binds.")
    client_certificate_header_format: Literal["pem", "rfc9440", "xfcc"] = Field(
        default="pem",
        description="How `client_certificate_header` is written: `pem` = URL-encoded PEM "
        "(nginx `$ssl_client_escaped_cert`); `rfc9440` = `:base64 DER:`; `xfcc` = Envoy "
        "`x-forwarded-client-cert` with exactly one element carrying `Hash=` and/or `Cert=`.")

    @model_validator(mode="after")
    def _introspection_is_routed(self) -> AuthSettings:
        """An opaque token names no issuer: with several introspecting issuers, each must say
        which tokens are its own, or each would be shown every other issuer's tokens (a bearer
        credential handed to a party that did not issue it)."""
        introspecting = [(index, issuer.introspection) for index, issuer in enumerate(self.issuers)
                         if issuer.introspection is not None]
        if len(introspecting) < 2:
            return self
        claimed: list[tuple[str, int]] = []
        for index, introspection in introspecting:
            key = f"auth.issuers[{index}].introspection.token_prefixes"
            if not introspection.token_prefixes:
                raise ValueError(f"{key}: required when several issuers introspect tokens (the "
                                 "prefix of the opaque tokens this issuer hands out)")
            for prefix in introspection.token_prefixes:
                for other, owner in claimed:
                    if owner != index and (prefix.startswith(other) or other.startswith(prefix)):
                        raise ValueError(f"{key}: {prefix!r} overlaps {other!r} of "
                                         f"auth.issuers[{owner}]: a token must have one issuer")
                claimed.append((prefix, index))
        return self

    @field_validator("client_certificate_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}", value):
            raise ValueError(f"{value!r}: a header name of letters, digits and '-'")
        if value is not None and value.lower() in ("authorization", "cookie", "host"):
            raise ValueError(f"{value!r} carries something else")
        return value

    @field_validator("token_sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        for source in value:
            if source == "header":
                continue
            kind, _, name = source.partition(":")
            if kind != "cookie" or not re.fullmatch(r"[A-Za-z0-9_\-.]+", name):
                raise ValueError(f"{source!r}: each source is 'header' or 'cookie:NAME'")
        return value

    @field_validator("issuers")
    @classmethod
    def _unique_issuers(cls, value: list[IssuerSettings]) -> list[IssuerSettings]:
        seen = [i.issuer for i in value]
        if len(seen) != len(set(seen)):
            raise ValueError("each issuer may appear once")
        return value
