"""How gatekeeper authenticates as an OAuth client: a secret, or a key (``private_key_jwt``).

``ClientCredentials`` is the block every client of a provider's back channel shares
(introspection, token exchange): ``client_id``, ``auth_method``, then a ``client_secret`` for the
secret methods or a ``private_key_jwt`` key for the key method — each required exactly when
its method needs it and refused when it would be ignored, with the key named. The login's
provider (settings/oidc.py) has the same checks under its own ``token_auth_method``.
The key file is checked here to be a readable file; what is in it (a private key of the type
``algorithm`` needs) is checked by ``gatekeeper.clients.client_auth`` before serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from gatekeeper.settings.common import AsymmetricAlgorithm, FrozenModel, readable_config_file

SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
MAX_ASSERTION_LIFETIME_SECONDS = 300  # Auth0 and Okta refuse longer-lived client assertions


class PrivateKeyJwtSettings(FrozenModel):
    """``private_key_jwt`` (RFC 7523 §2.2, OIDC Core §9): each call carries a fresh JWT signed
    with this key; the provider knows the public key (registered, or from a JWKS URL)."""

    key_file: Path = Field(
        description="PEM private key (RSA, EC or Ed25519; a mounted Kubernetes Secret); a "
        "relative path is read from the config file's directory. Never logged.")
    algorithm: AsymmetricAlgorithm = Field(
        default="RS256", description="Signing algorithm; the key's type must fit it (RS256/PS256: "
        "RSA of 2048 bits or more, ES256: EC P-256). Asymmetric only.")
    kid: str | None = Field(
        default=None, min_length=1, max_length=256,
        description="The `kid` header: the key's id as registered at the provider; default: the "
        "key's RFC 7638 thumbprint.")
    audience: Literal["issuer", "endpoint"] = Field(
        default="issuer",
        description="The assertion's `aud`: `issuer` (the provider's issuer identifier: Keycloak, "
        "Auth0, oidc-provider, RFC 7523bis) or `endpoint` (the URL called: Okta).")
    lifetime_seconds: int = Field(
        default=60, ge=5, le=MAX_ASSERTION_LIFETIME_SECONDS,
        description="`exp` - `iat` of each assertion (each has a fresh `jti`).")
    key_check_seconds: float = Field(
        default=10.0, ge=0, le=3600,
        description="How often the key file is checked for a change (a Secret update); a good "
        "new key is used from then on, a bad one refused and logged (the old key keeps "
        "signing). 0: never.")

    @field_validator("key_file")
    @classmethod
    def _key_file(cls, value: Path, info: ValidationInfo) -> Path:
        return readable_config_file(value, info)


def check_secret(method: object, secret: SecretStr | None, method_key: str) -> SecretStr | None:
    """A secret exactly for the secret methods (RFC 6749 §2.3.1)."""
    if method in SECRET_METHODS and secret is None:
        raise ValueError(f"required with {method_key} {method}")
    if method not in SECRET_METHODS and method is not None and secret is not None:
        raise ValueError(f"not used with {method_key} {method}: remove it (nothing would "
                         "send it)")
    return secret


def check_key(method: object, key: PrivateKeyJwtSettings | None,
              method_key: str) -> PrivateKeyJwtSettings | None:
    if method == "private_key_jwt" and key is None:
        raise ValueError(f"required with {method_key} private_key_jwt (its key_file at least)")
    if method != "private_key_jwt" and method is not None and key is not None:
        raise ValueError(f"set {method_key}: private_key_jwt to use it, or remove it")
    return key


class ClientCredentials(FrozenModel):
    """A confidential client at a provider's back channel (a base for a settings section)."""

    client_id: str = Field(min_length=1, description="Client gatekeeper authenticates as.")
    auth_method: ClientAuthMethod = Field(
        default="client_secret_basic",
        description="How the client authenticates: `client_secret_basic`, `client_secret_post` "
        "(RFC 6749 §2.3.1) or `private_key_jwt` (RFC 7523 §2.2).")
    client_secret: SecretStr | None = Field(
        default=None, validate_default=True,
        description="For the `client_secret_*` methods only. Never logged or echoed.")
    private_key_jwt: PrivateKeyJwtSettings | None = Field(
        default=None, validate_default=True, description="For `private_key_jwt` only: the key.")

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return check_secret(info.data.get("auth_method"), value, "auth_method")

    @field_validator("private_key_jwt")
    @classmethod
    def _key(cls, value: PrivateKeyJwtSettings | None,
             info: ValidationInfo) -> PrivateKeyJwtSettings | None:
        return check_key(info.data.get("auth_method"), value, "auth_method")
