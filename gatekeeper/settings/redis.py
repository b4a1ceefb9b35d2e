"""redis and revocation: the shared Redis (any topology) and the revocation list on it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gatekeeper.settings.common import MIN_SESSION_SECRET_BYTES, FrozenModel

_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")


class RedisSettings(FrozenModel):
    """The Redis that replicas share: sessions, refresh locks, revocations (docs/scaling.md)."""

    url: str | None = Field(
        default=None,
        description="`redis://`, `rediss://` (TLS), `unix:///path`, `redis+sentinel://h1:26379,h2/"
        "MASTER`; default: `session.redis_url`.",
    )
    cluster: bool = Field(default=False, description="Redis Cluster: `url` names any node.")
    username: str | None = Field(default=None, description="ACL user.")
    password: SecretStr | None = Field(default=None, description="Or in the URL; never logged.")
    password_file: Path | None = Field(
        default=None, description="Absolute path of a file holding the password (a mounted Secret).")
    tls_ca_file: Path | None = Field(
        default=None,
        description="Absolute path of the CA bundle (PEM) that verifies the server's certificate "
        "(`rediss://`); default: the system's CAs.",
    )
    timeout_seconds: float = Field(
        default=0.5, gt=0, le=10, description="Every Redis call: past this, Redis counts as down.")
    key_prefix: str = Field(default="gatekeeper:", max_length=64, description="Namespace of every key.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @field_validator("password_file", "tls_ca_file")
    @classmethod
    def _readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        example = "/etc/redis/ca.pem" if info.field_name == "tls_ca_file" else "/etc/redis/password"
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path (a mounted Secret, e.g. {example})")
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _one_password(self) -> RedisSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        return self


def is_tls(url: str) -> bool:
    return urlsplit(url).scheme in ("rediss", "rediss+sentinel")


def check_redis_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError("must start with " + ", ".join(f"{s}://" for s in _REDIS_SCHEMES))
    if parts.scheme == "unix" and not parts.path:
        raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis.sock")
    if parts.scheme.endswith("+sentinel") and not parts.path.strip("/"):
        raise ValueError("a sentinel URL names the master after the hosts: .../mymaster")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("needs a host")
    return value


class RevocationSettings(FrozenModel):
    """Revoked token ids and subjects, shared through Redis, checked without a Redis round trip."""

    enabled: bool = Field(default=False, description="Serve POST /revoke on the admin listener.")
    admin_secret: SecretStr | None = Field(
        default=None, description="Bearer secret for POST /revoke (≥ 32 bytes); never logged.")
    resync_seconds: float = Field(
        default=10.0, ge=1, le=3600, description="Full reload period (a missed message heals).")
    max_stale_seconds: float = Field(
        default=60.0, ge=5, le=86400,
        description="Longer without a good sync: authenticated requests get 503 (fail closed).")

    @model_validator(mode="after")
    def _secret(self) -> RevocationSettings:
        if self.enabled:
            if self.admin_secret is None:
                raise ValueError("enabled needs admin_secret (openssl rand -base64 32)")
            if len(self.admin_secret.get_secret_value().encode()) < MIN_SESSION_SECRET_BYTES:
                raise ValueError(f"admin_secret must be at least {MIN_SESSION_SECRET_BYTES} bytes")
        if self.max_stale_seconds <= self.resync_seconds:
            raise ValueError("max_stale_seconds must exceed resync_seconds")
        return self
