"""assertion: the signed identity assertion gatekeeper sends the app (gatekeeper/assertion/).

The key files are checked here to be readable files; what is in them (a PEM key of the type
``algorithm`` needs) is checked by ``gatekeeper.assertion.keys.load_keyring`` before serving —
at ``gatekeeper check``, at ``gatekeeper run`` and in each worker's start — with the key and the
reason named, never the key's bytes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from gatekeeper.settings.common import FrozenModel, readable_config_file

DEFAULT_ASSERTION_HEADER = "X-Auth-Request-Jwt"
MAX_ASSERTION_TTL_SECONDS = 60

# The claims gatekeeper writes itself: a configured claim never replaces one of them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "req", "email",
                             "roles"})
_CLAIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-.:/]{0,63}")

SigningAlgorithm = Literal["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"]


class AssertionSettings(FrozenModel):
    """A short-lived JWT per request, signed by gatekeeper, bound to the request's method and
    target: an app that verifies it is safe even when its port is reached around gatekeeper
    (docs/identity-assertion.md)."""

    header: str = Field(
        default=DEFAULT_ASSERTION_HEADER,
        description="The request header that carries the assertion to the app; a client's own "
        "copy, in any spelling, is always removed.")
    key_file: Path = Field(
        description="PEM private key that signs (a mounted Kubernetes Secret); a relative path is "
        "read from the config file's directory. Its type must fit `algorithm`.")
    published_key_files: list[Path] = Field(
        default_factory=list, max_length=8,
        description="Other keys published in the JWKS but never used to sign (PEM, public or "
        "private): the previous key during a rotation, or the next one ahead of it.")
    algorithm: SigningAlgorithm = Field(
        default="ES256", description="Signing algorithm of every key (EC P-256 for ES256).")
    issuer: str = Field(
        default="gatekeeper", min_length=1, max_length=512,
        description="The `iss` claim, e.g. the app's external URL.")
    audience: str = Field(
        min_length=1, max_length=512, description="The `aud` claim: names the app behind this "
        "gatekeeper; the app refuses any other.")
    ttl_seconds: int = Field(
        default=MAX_ASSERTION_TTL_SECONDS, ge=2, le=MAX_ASSERTION_TTL_SECONDS,
        description="`exp` - `iat`. An assertion is reused for the same caller and request "
        "target during the first half of this.")
    claims: dict[str, str] = Field(
        default_factory=dict, max_length=32,
        description="Extra claim → claim path of the caller's token or session (e.g. `tenant: "
        "org.id`); a string, number, boolean or a list of those, else left out.")
    cache_size: int = Field(
        default=10000, ge=0, le=1_000_000,
        description="Assertions kept per (caller, method, target) for reuse (LRU); 0: sign each "
        "request.")
    key_check_seconds: float = Field(
        default=10.0, ge=0, le=3600,
        description="How often the key files are checked for a change (a Secret update); a "
        "changed set is loaded and swapped in, a broken one refused (the old keys keep "
        "signing). 0: never.")
    serve_jwks_on_listen: bool = Field(
        default=False,
        description="Also answer `/.well-known/gatekeeper/jwks.json` on `listen` (always on "
        "`admin_listen`): that path of the app is then no longer reachable.")

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-]*", value):
            raise ValueError(f"{value!r} is not a valid header name")
        return value

    @field_validator("key_file")
    @classmethod
    def _key_file(cls, value: Path, info: ValidationInfo) -> Path:
        return readable_config_file(value, info)

    @field_validator("published_key_files")
    @classmethod
    def _published(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        out: list[Path] = []
        for index, path in enumerate(value):
            try:
                out.append(readable_config_file(path, info))
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return out

    @field_validator("claims")
    @classmethod
    def _claims(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _CLAIM_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a claim name (letters, digits, _-.:/)")
            if name in RESERVED_CLAIMS:
                raise ValueError(f"{name!r} is a claim gatekeeper writes itself")
            if not path or path != path.strip():
                raise ValueError(f"the claim path for {name!r} is empty or has white space")
        return value
