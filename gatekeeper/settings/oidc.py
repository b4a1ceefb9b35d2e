"""oidc: browser login, one provider inline or several under `providers`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from gatekeeper.errors import ConfigError
from gatekeeper.settings.client_auth import SECRET_METHODS, PrivateKeyJwtSettings, check_key
from gatekeeper.settings.common import AsymmetricAlgorithm, FrozenModel, check_http_url
from gatekeeper.settings.subjects import SUBJECT_PREFIX_DESCRIPTION, check_issuer_url, check_prefix

_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9\-]{0,31}")
_PROVIDER_KEYS = ("id", "display_name", "issuer", "client_id", "client_secret", "token_auth_method",
                  "private_key_jwt",
                  "scopes", "redirect_url", "hosts", "algorithms", "userinfo", "end_session",
                  "subject_prefix", "extra_auth_params")
# The authorization request's own parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1):
# gatekeeper sets them for each login, and the login's checks rely on their values (state and
# PKCE against login CSRF and code injection, nonce against ID token replay). ``request`` and
# ``request_uri`` (RFC 9101) would replace them all; ``response_mode`` would move the answer away
# from the GET callback.
PROTOCOL_AUTH_PARAMS = frozenset({
    "state", "nonce", "code_challenge", "code_challenge_method", "redirect_uri", "client_id",
    "response_type", "scope", "response_mode", "request", "request_uri"})
_AUTH_PARAM = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ProviderSettings(FrozenModel):
    """One OpenID Provider a browser may log in with."""

    id: str = Field(default="default", description="Short name: `provider=ID`, in sessions and logs.")
    display_name: str | None = Field(
        default=None, description="On the chooser page; default: the issuer host.")
    issuer: str = Field(description="Exact issuer; endpoints come from its discovery document.")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = Field(default=None, description="Never logged or echoed.")
    token_auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt",
                               "none"] = Field(
        default="client_secret_basic",
        description="At the token endpoint (code exchange, refresh): `client_secret_basic`, "
        "`client_secret_post`, `private_key_jwt` (a JWT signed with `private_key_jwt.key_file`) "
        "or `none` for a public client (PKCE only).")
    private_key_jwt: PrivateKeyJwtSettings | None = Field(
        default=None, description="The key, with `token_auth_method: private_key_jwt` only.")
    scopes: list[str] = Field(default=["openid", "profile", "email"])
    redirect_url: str | None = Field(default=None, description="Default: `oidc.redirect_url`.")
    hosts: list[str] = Field(default_factory=list, description="Requests for these hosts use this provider.")
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["RS256", "ES256"], min_length=1, description="ID token algorithms accepted.")
    userinfo: bool = Field(
        default=True,
        description="Fetch userinfo at login and at every refresh (its `sub` must match).")
    end_session: bool = Field(
        default=True, description="Continue sign-out at the provider's end_session_endpoint.")
    subject_prefix: str | None = Field(default=None, description=SUBJECT_PREFIX_DESCRIPTION)
    extra_auth_params: dict[str, str] = Field(
        default_factory=dict, max_length=16,
        description="Added to the authorization request, e.g. Google's refresh token: "
        "`{prompt: consent, access_type: offline}`. The protocol's own (state, nonce, "
        "code_challenge*, redirect_uri, client_id, response_type, scope, response_mode, "
        "request*) are refused.")

    @field_validator("extra_auth_params")
    @classmethod
    def _extra_auth_params(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _AUTH_PARAM.fullmatch(name):
                raise ValueError(f"{name[:40]!r} is not a parameter name (letters, digits, _ . -)")
            lowered = name.lower()
            if lowered in PROTOCOL_AUTH_PARAMS or lowered.startswith("code_challenge"):
                raise ValueError(f"{name!r} is set by gatekeeper for each login (the protocol's "
                                 "own parameter, which its checks rely on); remove it")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return check_issuer_url(check_http_url(value))

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return check_prefix(value)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _PROVIDER_ID.fullmatch(value):
            raise ValueError("lower-case letters, digits and '-', at most 32")
        return value

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError("must include 'openid'")
        return value

    @field_validator("redirect_url")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _secret_for_method(self) -> ProviderSettings:
        method = self.token_auth_method
        if method in SECRET_METHODS and self.client_secret is None:
            raise ValueError(f"client_secret is required with token_auth_method {method}"
                             " (or set token_auth_method: none for a public client)")
        if method == "private_key_jwt" and self.client_secret is not None:
            raise ValueError("client_secret is not used with token_auth_method private_key_jwt: "
                             "remove it (nothing would send it)")
        try:
            check_key(method, self.private_key_jwt, "token_auth_method")
        except ValueError as exc:
            raise ValueError(f"private_key_jwt: {exc}") from None
        return self


class OidcSettings(FrozenModel):
    """Browser login (authorization code + PKCE). One provider inline, or several in `providers`."""

    providers: list[ProviderSettings] = Field(
        min_length=1, description="Several providers; or give one provider's keys directly under `oidc`.")
    redirect_url: str | None = Field(
        default=None, description="`https://HOST/oauth2/callback`, registered at the provider.")
    prefix: str = Field(default="/oauth2", description="Where the login routes live.")
    browser_login: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="No credentials: `auto` = 302 to login for browser navigations (GET/HEAD "
        "preferring text/html), 401 for the rest; `always` / `never` = always 302 / 401.",
    )
    allowed_redirect_domains: list[str] = Field(
        default_factory=list,
        description="Hosts `rd` may name besides same-origin paths: `host`, `.domain` (dot boundary).")
    refresh_margin_seconds: int = Field(
        default=60, ge=0, le=3600, description="Refresh this long before the access token expires.")
    login_timeout_seconds: int = Field(
        default=600, ge=60, le=3600, description="A started login must come back within this.")
    post_logout_redirect_url: str | None = Field(
        default=None,
        description="Where the provider's logout returns, registered there; default: "
        "`{prefix}/signed_out` on the redirect_url's host, which goes on to the sign-out's `rd`.")
    http_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60,
        description="Total deadline of one provider call (discovery, token, userinfo).")
    http_max_bytes: int = Field(
        default=1_048_576, ge=4096, le=67_108_864,
        description="Largest provider answer read (discovery, token, userinfo); larger fails.")
    backchannel_logout_max_age_minutes: int = Field(
        default=5, ge=1, le=60,
        description="A back-channel logout token issued (`iat`) longer ago than this is refused; "
        "its `jti` is remembered as long as it could be accepted.")

    _short_form: bool = PrivateAttr(default=False)  # written as one provider's keys under oidc

    @model_validator(mode="wrap")
    @classmethod
    def _inline_provider(cls, data: Any, handler: ModelWrapValidatorHandler[OidcSettings]
                         ) -> OidcSettings:
        # The short form: one provider's keys directly under `oidc` (the documented shape).
        short = isinstance(data, dict) and "issuer" in data
        if short:
            if "providers" in data:
                raise ValueError("give either `providers` or one provider's keys (issuer, …), not both")
            provider = {k: v for k, v in data.items() if k in _PROVIDER_KEYS}
            rest = {k: v for k, v in data.items() if k not in _PROVIDER_KEYS}
            data = {**rest, "providers": [provider]}
        settings = handler(data)
        settings._short_form = short
        return settings

    def provider_key(self, index: int, key: str = "") -> str:
        """A provider's config key as the user wrote it: ``oidc.redirect_url`` in the short
        form, ``oidc.providers.1.redirect_url`` in the list."""
        where = "oidc" if self._short_form else f"oidc.providers.{index}"
        return f"{where}.{key}" if key else where

    @field_validator("redirect_url", "post_logout_redirect_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"(/[A-Za-z0-9._\-]+)+", value):
            raise ValueError("a path such as /oauth2 (no trailing '/')")
        return value

    @field_validator("allowed_redirect_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        from gatekeeper.redirects import parse_allowed_domains  # settings stays import-light

        parse_allowed_domains(value)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> OidcSettings:
        ids = [p.id for p in self.providers]
        if len(ids) != len(set(ids)):
            raise ValueError("each provider id may appear once")
        hosts = [h.lower() for p in self.providers for h in p.hosts]
        if len(hosts) != len(set(hosts)):
            raise ValueError("a host may select one provider only")
        for provider in self.providers:
            if provider.redirect_url is None and self.redirect_url is None:
                raise ValueError(f"provider {provider.id!r}: set redirect_url (e.g. "
                                 f"https://app.example.com{self.prefix}/callback)")
        return self

    def redirect_url_of(self, provider: ProviderSettings) -> str:
        url = provider.redirect_url or self.redirect_url
        if url is None:  # refused by _coherent; a real error, not an assert (gone under -O)
            raise ConfigError([f"oidc.redirect_url: not set, nor the redirect_url of provider "
                               f"{provider.id!r}"])
        return url
