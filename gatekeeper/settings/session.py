"""session: the browser session cookie, its lifetime, and where sessions are kept."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from gatekeeper.settings.common import MIN_SESSION_SECRET_BYTES, FrozenModel
from gatekeeper.settings.redis import check_redis_url
from gatekeeper.weborigin import parse_origin

SESSION_CHUNK_BYTES = 3800  # per session cookie, name=value (sessions/cookie.py)
HEADER_ROOM_BYTES = 8192  # the other headers of a browser request, the app's cookies included
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")  # RFC 6265 §4.1.1 token
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_COOKIE_DOMAIN = re.compile(rf"\.?{_LABEL}(?:\.{_LABEL})*")


class SessionSettings(FrozenModel):
    store: Literal["cookie", "redis"] = Field(
        default="cookie",
        description="`cookie` (sealed in the browser) or `redis` (shared by replicas: docs/scaling.md).",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Where `redis` sessions live (or `redis.url`).")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return check_redis_url(value)
    secret: list[SecretStr] = Field(
        default_factory=list,
        max_length=4,
        description="One string or a list (rotation: the first encrypts, all decrypt); "
        "each ≥ 32 bytes (`openssl rand -base64 32`). Never logged or echoed.",
    )
    cookie_name: str = Field(
        default="_gatekeeper",
        max_length=64,
        description="Chunks of a large session are NAME_1, NAME_2, …; `__Host-` prefix allowed.",
    )
    cookie_secure: bool = True
    cookie_domain: str | None = Field(default=None, description="Default: host-only cookie.")
    lifetime_seconds: int = Field(
        default=28800, ge=300, le=2_592_000, description="Absolute: log in again after this long.")
    idle_seconds: int = Field(
        default=3600, ge=120, le=2_592_000,
        description="Ends an unused session (measured to the minute); ≤ lifetime_seconds.",
    )
    max_chunks: int = Field(
        default=6, ge=1, le=16,
        description="Most cookies (~3.8 KB each) one session may use; must fit in max_header_bytes.")
    allowed_origins: list[str] = Field(
        default_factory=list, max_length=100,
        description="Other origins (`https://host[:port]`) whose pages may send session-cookie "
        "requests that change something (not GET/HEAD/OPTIONS) and open WebSockets; our own "
        "origin (the redirect URL's, the request's Host) always may, and so do a `cors` rule's "
        "origins with `allow_credentials` on its paths and methods. Others get 403.")
    redis_cache_seconds: float = Field(
        default=30.0, ge=0, le=300,
        description="Redis store: the longest a process reuses a session it read. Copies are "
        "dropped on every replica the moment any replica writes or deletes the session (Redis "
        "pub/sub on `<key_prefix>sessions`); while that subscription is down, or the ACL user "
        "may not use it, every request reads Redis. 0: read on every request.")

    @field_validator("secret", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        # A single string stays valid (the key existed before rotation did).
        if value is None:
            return []
        if isinstance(value, str | SecretStr):
            return [value]
        return value

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        for index, secret in enumerate(value):
            if len(secret.get_secret_value().encode("utf-8")) < MIN_SESSION_SECRET_BYTES:
                raise ValueError(f"item {index} is shorter than {MIN_SESSION_SECRET_BYTES} bytes "
                                 "(generate one with: openssl rand -base64 32)")
        return value

    @field_validator("cookie_name")
    @classmethod
    def _cookie_name(cls, value: str) -> str:
        if not _COOKIE_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid cookie name")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            if parse_origin(item) is None:
                raise ValueError(f"{item!r} is not an origin: scheme://host[:port], http or https, "
                                 "no path (not even '/'), no '*' or 'null'")
        return value

    @field_validator("cookie_domain")
    @classmethod
    def _cookie_domain(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 253 or not _COOKIE_DOMAIN.fullmatch(value)):
            raise ValueError("must be a host name such as example.com (no scheme, port or path)")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SessionSettings:
        if self.idle_seconds > self.lifetime_seconds:
            raise ValueError("idle_seconds must not exceed lifetime_seconds")
        # Cookie prefixes (RFC 6265bis §4.1.3): browsers drop such cookies otherwise.
        if self.cookie_name.startswith(("__Host-", "__Secure-")) and not self.cookie_secure:
            raise ValueError("a __Host- or __Secure- cookie_name needs cookie_secure: true")
        if self.cookie_name.startswith("__Host-") and self.cookie_domain is not None:
            raise ValueError("a __Host- cookie_name cannot have a cookie_domain")
        return self
