"""token_exchange: routes whose app gets a token of its own for a downstream API (RFC 8693).

Two halves, where users look for them: the client gatekeeper exchanges an issuer's tokens as
sits with that issuer (``auth.issuers[].token_exchange``: one client per provider, whatever the
route), and each route names what it needs (top-level ``token_exchange``: the audience, resource
and scope of the token its app gets, and the header it comes in).
"""

from __future__ import annotations

import re
from typing import Final, Literal

from pydantic import Field, field_validator, model_validator

from gatekeeper.settings.client_auth import ClientCredentials
from gatekeeper.settings.common import FrozenModel, check_http_url
from gatekeeper.settings.routes import check_methods, check_path_pattern

ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
DEFAULT_HEADER = "X-Auth-Request-Access-Token"
# RFC 6749 §3.3: a scope token is one or more NQCHAR (%x21 / %x23-5B / %x5D-7E).
TokenType = Literal["urn:ietf:params:oauth:token-type:access_token",
                    "urn:ietf:params:oauth:token-type:jwt"]
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]{0,63}")


class TokenExchangeClient(ClientCredentials):
    """The client gatekeeper authenticates as at one issuer's token endpoint for RFC 8693 (a
    secret or ``private_key_jwt``, as for introspection)."""

    token_endpoint: str | None = Field(
        default=None, description="Default: the issuer metadata's `token_endpoint` (discovery).")
    timeout_seconds: float = Field(
        default=2.0, gt=0.0, le=30.0,
        description="Total deadline of one exchange (connect to last byte); then 503.")
    max_bytes: int = Field(
        default=65536, ge=1024, le=1_048_576, description="Largest answer read; a larger one: 503.")
    cache_size: int = Field(
        default=10000, ge=0, le=1_000_000,
        description="Exchanged tokens kept per issuer (LRU, also bounded in bytes); 0 disables.")
    max_ttl_seconds: float = Field(
        default=300.0, ge=0.0, le=86400.0,
        description="An exchanged token is reused until its `expires_in` less "
        "`expiry_margin_seconds`, never past the caller's token's exp, and at most this long.")
    expiry_margin_seconds: float = Field(
        default=30.0, ge=0.0, le=3600.0,
        description="Taken off `expires_in`: the app's downstream call must not meet an "
        "expired token.")
    negative_ttl_seconds: float = Field(
        default=5.0, ge=0.0, le=300.0,
        description="A refusal (`invalid_grant`, `invalid_target`, …) is remembered this long, "
        "so one caller cannot make every request a call to the provider.")

    @field_validator("token_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class TokenExchangeRoute(FrozenModel):
    """One route's exchange: the first rule whose ``paths`` (and ``methods``) match applies."""

    paths: list[str] = Field(
        min_length=1, max_length=100,
        description="`/api/*` (prefix) or `/exact`, as in `public_paths`.")
    methods: list[str] = Field(default_factory=list, description="Default: every method.")
    audience: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="RFC 8693 `audience`: the downstream service's name at the provider (e.g. "
        "Keycloak's client id of the downstream API).")
    resource: str | None = Field(
        default=None, min_length=1, max_length=2048,
        description="RFC 8693/8707 `resource`: the downstream API's absolute URI.")
    scope: list[str] = Field(default_factory=list, max_length=64,
                             description="Scopes asked for; default: the provider's choice.")
    requested_token_type: TokenType = Field(
        default=ACCESS_TOKEN_TYPE, description="RFC 8693 §3 token type asked for.")
    header: str = Field(
        default=DEFAULT_HEADER,
        description="The request header that carries the exchanged token to the app; every "
        "client copy of it (any spelling) is dropped on every route.")

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [check_path_pattern(p) for p in value]

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        return check_methods(value)

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        # RFC 8707 §2: an absolute URI without a fragment.
        if value is not None and ("#" in value or not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", value)):
            raise ValueError(f"{value!r}: an absolute URI without a fragment")
        return value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("holds control characters")
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: list[str]) -> list[str]:
        for scope in value:
            if not _SCOPE_TOKEN.fullmatch(scope):
                raise ValueError(f"{scope!r} is not a scope token (RFC 6749 §3.3: no spaces, "
                                 "quotes or backslashes)")
        return value

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: a header name of letters, digits and '-'")
        return value

    @model_validator(mode="after")
    def _target(self) -> TokenExchangeRoute:
        if self.audience is None and self.resource is None:
            raise ValueError("give audience or resource (or both): the downstream API the token is for")
        return self
