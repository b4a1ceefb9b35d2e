"""The one configuration model and all its validation (settings/file.py reads it from YAML).

Everything a component needs is validated here, once, at start; components receive their own
frozen sub-model and never read ``os.environ`` themselves. Every problem is reported together,
each with its dotted key path and reason, and no secret value is ever echoed back.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gatekeeper.headernames import fold
from gatekeeper.settings.admin import AdminSettings
from gatekeeper.settings.assertion import AssertionSettings
from gatekeeper.settings.auth import AuthSettings, IntrospectionSettings, IssuerSettings
from gatekeeper.settings.client_auth import ClientCredentials, PrivateKeyJwtSettings
from gatekeeper.settings.common import (
    ENV_PREFIX,
    MIN_SESSION_SECRET_BYTES,
    AsymmetricAlgorithm,
    FrozenModel,
    check_host_port,
    check_networks,
    same_socket,
    split_host_port,
)
from gatekeeper.settings.cors import CorsRule
from gatekeeper.settings.forward_auth import ForwardAuthSettings
from gatekeeper.settings.headers import (
    DEFAULT_HEADERS,
    HeaderSettings,
    check_assertion_header,
    check_exchange_headers,
    check_identity_headers,
)
from gatekeeper.settings.oidc import OidcSettings, ProviderSettings
from gatekeeper.settings.redis import RedisSettings, RevocationSettings, check_redis_url, is_tls
from gatekeeper.settings.routes import PolicySettings, RateLimitRule, check_path_pattern, check_pattern_shape
from gatekeeper.settings.server import ServerSettings
from gatekeeper.settings.session import HEADER_ROOM_BYTES, SESSION_CHUNK_BYTES, SessionSettings
from gatekeeper.settings.subjects import IssuerEntry, resolve_prefixes
from gatekeeper.settings.tls import CERTIFICATE_ISSUER, TlsSettings
from gatekeeper.settings.token_exchange import TokenExchangeClient, TokenExchangeRoute
from gatekeeper.settings.tracing import TracingSettings

__all__ = [
    "ENV_PREFIX", "HEADER_ROOM_BYTES", "MIN_SESSION_SECRET_BYTES", "SESSION_CHUNK_BYTES",
    "AdminSettings", "AssertionSettings", "AsymmetricAlgorithm", "AuthSettings",
    "ClientCredentials", "CorsRule", "ForwardAuthSettings", "HeaderSettings",
    "IntrospectionSettings", "IssuerSettings", "OidcSettings", "PolicySettings",
    "PrivateKeyJwtSettings", "ProviderSettings", "RateLimitRule", "RedisSettings",
    "RevocationSettings", "ServerSettings", "SessionSettings", "Settings", "TlsSettings",
    "TokenExchangeClient", "TokenExchangeRoute", "TracingSettings",
    "check_path_pattern",
    "check_pattern_shape",
    "check_redis_url", "split_host_port",
]

class Settings(FrozenModel):
    """The whole configuration. Field names are the public config keys (see README)."""

    listen: str = Field(default="0.0.0.0:4180", description="Public listener, HOST:PORT.")
    admin_listen: str = Field(default="0.0.0.0:9901",
                              description="/healthz /readyz /metrics, and the policy page (`admin`).")
    upstream: str = Field(default="http://127.0.0.1:8080", description="The app, http://HOST:PORT.")
    upstream_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Wait for the app's headers (and each body read): 504."
    )
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Connect: 504.")
    max_header_bytes: int = Field(
        default=32768, ge=4096, le=1_048_576, description="Larger request headers in total: 431.")
    max_request_line_bytes: int = Field(
        default=8192, ge=256, le=1_048_576,
        description="Longer request line (method, target, version): 414, checked as it arrives.")
    max_header_count: int = Field(
        default=100, ge=8, le=10_000, description="More request header fields: 431.")
    request_head_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600,
        description="The whole request head must arrive within this, from its first byte (or "
        "from the connection's opening): a slow client gets 408 and is closed.")
    request_body_timeout_seconds: float = Field(
        default=20.0, gt=0, le=3600,
        description="Grace for a request body; after it the body must average "
        "request_body_min_bytes_per_second, or 408 and closed (a slow POST holds a connection "
        "to the app).")
    request_body_min_bytes_per_second: int = Field(
        default=500, ge=1, le=1_048_576,
        description="Slowest average pace of a request body after request_body_timeout_seconds.")
    send_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600,
        description="A client that takes no byte of an answer for this long is cut off (it "
        "would hold the connection to the app the answer comes from).")
    keep_alive_timeout_seconds: float = Field(
        default=75.0, gt=0, le=3600,
        description="An idle keep-alive client connection is closed after this.")
    max_connections: int = Field(
        default=1024, ge=1, le=1_000_000,
        description="Open client connections per worker (WebSockets too); one more: 503, closed.")
    websocket_max_message_bytes: int = Field(
        default=1_048_576, ge=1024, le=256 * 1_048_576,
        description="Largest WebSocket message either way, after decompression: the "
        "connection is closed with 1009.")
    upstream_max_connections: int = Field(default=256, ge=1, le=65536, description="Pool cap per worker.")
    websocket_recheck_seconds: float = Field(
        default=10.0, ge=1, le=3600,
        description="An open WebSocket is checked again this often, and at its token's expiry: "
        "closed (1008) once expired, revoked or no longer allowed by the policy.")
    public_paths: list[str] = Field(
        default_factory=list,
        description="No login needed (`/public/*` prefix or exact); subject `role:anonymous`.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Peers (IPs or CIDRs) whose X-Forwarded-* values are kept.",
    )
    drain_seconds: float = Field(
        default=15.0, ge=0, le=600, description="On SIGTERM, finish in-flight requests."
    )
    workers: int = Field(default=1, ge=1, le=64, description="Processes sharing the listeners.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="JSON logs.")
    access_log: bool = Field(default=True, description="One JSON line per request on stdout.")
    server: ServerSettings = Field(default_factory=ServerSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    tls: TlsSettings | None = Field(
        default=None,
        description="TLS on `listen` (docs/tls.md): TLS 1.2+, Mozilla's intermediate ciphers, "
        "ALPN http/1.1, certificate files reloaded on change, optional client certificates.")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    forward_auth: ForwardAuthSettings = Field(default_factory=ForwardAuthSettings)
    oidc: OidcSettings | None = None
    session: SessionSettings = Field(default_factory=SessionSettings)
    policy: PolicySettings | None = None
    redis: RedisSettings = Field(default_factory=RedisSettings)
    revocation: RevocationSettings = Field(default_factory=RevocationSettings)
    admin: AdminSettings = Field(
        default_factory=AdminSettings,
        description="Who may open the policy page on `admin_listen` (docs/policy-page.md).")
    rate_limits: list[RateLimitRule] = Field(
        default_factory=list,
        max_length=100,
        description="Checked in order, the first matching rule applies; kept in Redis "
        "(`redis`), so limits hold across replicas. Over the limit: 429 with Retry-After.",
    )
    cors: list[CorsRule] = Field(
        default_factory=list,
        max_length=100,
        description="Cross-origin access per route (docs/cors.md): gatekeeper answers the "
        "preflights of these paths without authentication and sets the CORS headers of their "
        "answers; the real request is still authenticated and authorized. The first rule "
        "whose paths match applies.",
    )
    headers: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_HEADERS),
        description="Identity header → claim path (`roles` = the roles, comma-joined; `sub` = the "
        "subject, issuer-namespaced with several issuers; `iss` = the issuer that verified it).",
    )
    pass_access_token: bool = Field(default=False, description="Send X-Auth-Request-Access-Token.")
    pass_authorization_header: bool = Field(
        default=True, description="Forward Authorization, and a token cookie of `auth.token_sources`, "
        "as received.")
    assertion: AssertionSettings | None = Field(
        default=None,
        description="A signed, short-lived JWT for the app (`X-Auth-Request-Jwt`), bound to the "
        "request's method and target; its keys at `/.well-known/gatekeeper/jwks.json` "
        "(docs/identity-assertion.md).")

    token_exchange: list[TokenExchangeRoute] = Field(
        default_factory=list,
        max_length=100,
        description="Routes whose app gets a token of its own for a downstream API (RFC 8693, "
        "docs/providers.md): the caller's token is exchanged at its issuer (with that issuer's "
        "`auth.issuers[].token_exchange` client) and the answer sent in the rule's `header`. "
        "The first rule whose paths and methods match applies.",
    )

    @field_validator("listen", "admin_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_host_port(value)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str, info: ValidationInfo) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("must be http://HOST:PORT (the app on localhost)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not carry a path, query or fragment")
        try:
            port = parts.port or 80
        except ValueError:
            raise ValueError("has an invalid port") from None
        for key in ("listen", "admin_listen"):  # validated before upstream (field order)
            address = info.data.get(key)
            if address is not None and same_socket(address, parts.hostname, port):
                raise ValueError(f"is gatekeeper's own {key} ({address}): every request would "
                                 f"come back to gatekeeper; give the app its own port")
        return value

    @field_validator("public_paths")
    @classmethod
    def _public_paths(cls, value: list[str]) -> list[str]:
        for pattern in value:
            check_pattern_shape(pattern)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return check_networks(value)

    @field_validator("rate_limits")
    @classmethod
    def _reachable_rules(cls, value: list[RateLimitRule]) -> list[RateLimitRule]:
        for later, rule in enumerate(value):
            for earlier in range(later):
                if value[earlier].covers(rule):
                    raise ValueError(f"item {later} ({rule.path}) never applies: item {earlier} "
                                     f"({value[earlier].path}) matches first")
        return value

    @field_validator("cors")
    @classmethod
    def _reachable_cors_rules(cls, value: list[CorsRule]) -> list[CorsRule]:
        for later, rule in enumerate(value):
            for earlier in range(later):
                if value[earlier].covers(rule):
                    raise ValueError(f"item {later} ({', '.join(rule.paths)}) never applies: item "
                                     f"{earlier} ({', '.join(value[earlier].paths)}) matches first")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_identity_headers(value)

    @field_validator("assertion")
    @classmethod
    def _assertion_header(cls, value: AssertionSettings | None,
                          info: ValidationInfo) -> AssertionSettings | None:
        if value is None:
            return value
        # validated after `headers` (field order)
        check_assertion_header(value.header, info.data.get("headers") or {})
        return value

    @model_validator(mode="after")
    def _token_exchange_headers(self) -> Settings:
        # As for `headers`: the token's header is never one gatekeeper strips for another
        # reason or sets itself, nor an identity or assertion header (one would be dropped).
        others = {fold(n.encode("ascii")): f"headers ({n})" for n in self.headers}
        if self.assertion is not None:
            others[fold(self.assertion.header.encode("ascii"))] = "assertion.header"
        if self.auth.client_certificate_header is not None:
            others[fold(self.auth.client_certificate_header.encode("ascii"))] = (
                "auth.client_certificate_header")
        check_exchange_headers((rule.header for rule in self.token_exchange), others)
        return self

    @model_validator(mode="after")
    def _token_exchange_clients(self) -> Settings:
        if self.token_exchange and not any(i.token_exchange is not None for i in self.auth.issuers):
            raise ValueError("token_exchange: no issuer has a client to exchange tokens with; "
                             "set auth.issuers[].token_exchange (client_id, client_secret)")
        return self

    @model_validator(mode="after")
    def _listeners_differ(self) -> Settings:
        if split_host_port(self.listen)[1] == split_host_port(self.admin_listen)[1]:
            raise ValueError("listen and admin_listen must use different ports")
        return self

    @model_validator(mode="after")
    def _subject_namespaces(self) -> Settings:
        self.subject_prefixes()  # raises ValueError naming the keys in conflict
        return self

    def subject_prefixes(self) -> dict[str, str]:
        """issuer → the prefix of its subjects (see gatekeeper/subjects.py)."""
        entries = [IssuerEntry(f"auth.issuers.{i}", e.issuer, e.subject_prefix)
                   for i, e in enumerate(self.auth.issuers)]
        if self.oidc is not None:
            entries += [IssuerEntry(self.oidc.provider_key(i), p.issuer, p.subject_prefix)
                        for i, p in enumerate(self.oidc.providers)]
        if self.tls is not None and self.tls.client_auth == "principal":
            # Certificates are one more identity source: their subjects get a name space too.
            entries.append(IssuerEntry("tls", CERTIFICATE_ISSUER, self.tls.subject_prefix))
        return resolve_prefixes(entries)

    @property
    def uses_redis(self) -> bool:
        return (self.session.store == "redis" or self.revocation.enabled or bool(self.rate_limits)
                or (self.auth.dpop.enabled and self.auth.dpop.replay_store == "redis"))

    def redis_url(self) -> str:
        return self.redis.url or self.session.redis_url

    def redis_connection(self) -> RedisSettings:
        """The redis section with its url resolved (``redis.url``, else ``session.redis_url``)."""
        return self.redis.model_copy(update={"url": self.redis_url()})

    def header_section(self) -> HeaderSettings:
        """The keys that shape what the app receives (mutate.HeaderPolicy)."""
        return HeaderSettings(
            headers=dict(self.headers), pass_access_token=self.pass_access_token,
            pass_authorization_header=self.pass_authorization_header,
            trusted_proxies=tuple(self.trusted_proxies),
            session_cookie=self.session.cookie_name if self.oidc is not None else None,
            assertion_header=self.assertion.header if self.assertion is not None else None,
            certificate_header=self.auth.client_certificate_header,
            exchange_headers=tuple(sorted({rule.header for rule in self.token_exchange})),
            token_cookies=tuple(source.partition(":")[2] for source in self.auth.token_sources
                                if source.startswith("cookie:")),
            strip_foreign_traces=not self.tracing.continue_incoming)

    @model_validator(mode="after")
    def _certificate_header_needs_proxies(self) -> Settings:
        # Read only from a trusted front proxy: without one, the key would do nothing, and an
        # operator would believe forwarded certificates bind tokens.
        if self.auth.client_certificate_header is not None and not self.trusted_proxies:
            raise ValueError("auth.client_certificate_header needs trusted_proxies (the front "
                             "proxies allowed to forward the client certificate)")
        return self

    @model_validator(mode="after")
    def _redis_tls(self) -> Settings:
        # A CA for a plain connection would be silently unused: TLS would look on when it is off.
        if self.redis.tls_ca_file is not None and not is_tls(self.redis_url()):
            raise ValueError("redis.tls_ca_file needs a TLS url: rediss:// or rediss+sentinel://")
        return self

    @model_validator(mode="after")
    def _dpop_replay_shared_by_workers(self) -> Settings:
        # RFC 9449 §11.1: a jti remembered by one worker only could be replayed at another.
        dpop = self.auth.dpop
        if dpop.enabled and dpop.replay_store == "memory" and self.workers > 1:
            raise ValueError("auth.dpop.replay_store: memory is per process; with workers > 1 a "
                             "proof could be replayed at another worker: use redis")
        if dpop.require_nonce and dpop.nonce_secret_file is None and self.workers > 1:
            raise ValueError("auth.dpop.nonce_secret_file: workers > 1 must share a nonce secret "
                             "(each would refuse the others' nonces)")
        return self

    @model_validator(mode="after")
    def _sessions_for_login(self) -> Settings:
        if self.oidc is not None and not self.session.secret:
            raise ValueError("oidc needs session.secret (generate one with: openssl rand -base64 32)")
        # The largest session plus the rest of a browser's headers must pass the 431 check.
        largest = self.session.max_chunks * SESSION_CHUNK_BYTES + HEADER_ROOM_BYTES
        if self.oidc is not None and largest > self.max_header_bytes:
            raise ValueError(
                f"session.max_chunks {self.session.max_chunks} x {SESSION_CHUNK_BYTES} bytes needs "
                f"max_header_bytes >= {largest}: raise max_header_bytes or lower session.max_chunks")
        return self

