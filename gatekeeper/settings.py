"""The one configuration model and all its validation (config_file.py reads it from YAML).

Everything a component needs is validated here, once, at start; components receive their own
frozen sub-model and never read ``os.environ`` themselves. Every problem is reported together,
each with its dotted key path and reason, and no secret value is ever echoed back.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

ENV_PREFIX = "GATEKEEPER_"

# Asymmetric algorithms only: an HMAC secret cannot come from a JWKS, and "none" is never valid.
AsymmetricAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:4180")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


class IssuerSettings(_Frozen):
    issuer: str = Field(description="Exact `iss` value of accepted tokens.")
    audience: list[str] = Field(min_length=1, description="Token `aud` must contain one of these.")
    jwks_uri: str | None = Field(default=None, description="Default: from discovery.")
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["RS256", "ES256"],
        min_length=1,
        description="Allow-list; asymmetric only (never `none` or HMAC).",
    )

    @field_validator("issuer", "jwks_uri")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class AuthSettings(_Frozen):
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
        default=5.0, gt=0, le=60, description="Per discovery/JWKS fetch."
    )

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


_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9\-]{0,31}")
_PROVIDER_KEYS = ("id", "display_name", "issuer", "client_id", "client_secret", "token_auth_method",
                  "scopes", "redirect_url", "hosts", "algorithms", "userinfo", "end_session")


class ProviderSettings(_Frozen):
    """One OpenID Provider a browser may log in with."""

    id: str = Field(default="default", description="Short name: `provider=ID`, in sessions and logs.")
    display_name: str | None = Field(
        default=None, description="On the chooser page; default: the issuer host.")
    issuer: str = Field(description="Exact issuer; endpoints come from its discovery document.")
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = Field(default=None, description="Never logged or echoed.")
    token_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = Field(
        default="client_secret_basic", description="`none` for a public client (PKCE only).")
    scopes: list[str] = Field(default=["openid", "profile", "email"])
    redirect_url: str | None = Field(default=None, description="Default: `oidc.redirect_url`.")
    hosts: list[str] = Field(default_factory=list, description="Requests for these hosts use this provider.")
    algorithms: list[AsymmetricAlgorithm] = Field(
        default=["RS256", "ES256"], min_length=1, description="ID token algorithms accepted.")
    userinfo: bool = Field(default=True, description="Fetch userinfo at login (its `sub` must match).")
    end_session: bool = Field(
        default=True, description="Continue sign-out at the provider's end_session_endpoint.")

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return _http_url(value)

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
        return None if value is None else _http_url(value)

    @model_validator(mode="after")
    def _secret_for_method(self) -> ProviderSettings:
        if self.token_auth_method != "none" and self.client_secret is None:
            raise ValueError(f"client_secret is required with token_auth_method {self.token_auth_method}"
                             " (or set token_auth_method: none for a public client)")
        return self


class OidcSettings(_Frozen):
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
        default=None, description="Registered at the provider; default: `/` on the redirect_url's host.")
    http_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="Provider calls.")

    @model_validator(mode="before")
    @classmethod
    def _inline_provider(cls, data: Any) -> Any:
        # The short form: one provider's keys directly under `oidc` (the documented shape).
        if isinstance(data, dict) and "issuer" in data:
            if "providers" in data:
                raise ValueError("give either `providers` or one provider's keys (issuer, …), not both")
            provider = {k: v for k, v in data.items() if k in _PROVIDER_KEYS}
            rest = {k: v for k, v in data.items() if k not in _PROVIDER_KEYS}
            return {**rest, "providers": [provider]}
        return data

    @field_validator("redirect_url", "post_logout_redirect_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

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
        assert url is not None  # _coherent
        return url


MIN_SESSION_SECRET_BYTES = 32
SESSION_CHUNK_BYTES = 3800  # per session cookie, name=value (sessions/cookie.py)
HEADER_ROOM_BYTES = 8192  # the other headers of a browser request, the app's cookies included
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")  # RFC 6265 §4.1.1 token
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_COOKIE_DOMAIN = re.compile(rf"\.?{_LABEL}(?:\.{_LABEL})*")


class SessionSettings(_Frozen):
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
    redis_cache_seconds: float = Field(
        default=1.0, ge=0, le=5,
        description="Redis store: a replica reuses a session it read for this long (one Redis read "
        "per session per interval, not per request); another replica's sign-out takes effect "
        "within it. 0: read on every request.")

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


_REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")


class RedisSettings(_Frozen):
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


def _is_tls(url: str) -> bool:
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


class RevocationSettings(_Frozen):
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


class PolicySettings(_Frozen):
    model: Path = Field(
        default=Path("policies/model.conf"),
        description="Casbin model; a relative path is read from the config file's directory.",
    )
    policy: Path = Field(default=Path("policies/policy.csv"), description="Casbin policy lines.")
    watch: bool = Field(default=True, description="Reload when the files change (and on SIGHUP).")
    decision_cache_size: int = Field(
        default=65536, ge=0, le=10_000_000, description="Decisions kept per policy (LRU).")


_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2 token


def check_pattern_shape(pattern: str) -> None:
    if not pattern.startswith("/"):
        raise ValueError(f"{pattern!r}: patterns start with '/'")
    if "*" in pattern[:-1]:
        raise ValueError(f"{pattern!r}: '*' is allowed only at the end")


def check_path_pattern(pattern: str) -> str:
    """``/prefix/*`` (a prefix) or ``/exact``, as in ``public_paths``; canonical, or it never matches."""
    from gatekeeper.errors import BadRequest  # settings stays import-light
    from gatekeeper.paths import canonical_path

    check_pattern_shape(pattern)
    literal = pattern.removesuffix("*")
    try:
        canonical: str | None = canonical_path(literal.encode("utf-8"))
    except BadRequest:
        canonical = None
    if canonical != literal:
        raise ValueError(f"{pattern!r}: not a canonical path (requests are matched after "
                         "canonicalization, so it would never match)")
    return pattern


class RateLimitRule(_Frozen):
    """One rate limit: at most ``limit`` requests per ``window_seconds`` (sliding), per caller."""

    path: str = Field(description="`/api/*` (prefix) or `/exact`, as in `public_paths`.")
    methods: list[str] = Field(default_factory=list, description="Default: every method.")
    per: Literal["subject", "client_ip"] = Field(
        default="subject",
        description="`subject` (anonymous callers: their client_ip) or `client_ip` (the peer, or "
        "the nearest untrusted X-Forwarded-For hop behind `trusted_proxies`; IPv6 per /64).",
    )
    limit: int = Field(ge=1, le=1_000_000_000, description="Requests allowed per window.")
    window_seconds: int = Field(ge=1, le=86400, description="The sliding window.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_path_pattern(value)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        for method in value:
            if not _METHOD.fullmatch(method):
                raise ValueError(f"{method!r} is not an HTTP method")
        upper = [m.upper() for m in value]
        if len(upper) != len(set(upper)):
            raise ValueError("each method may appear once")
        return upper

    def covers(self, other: RateLimitRule) -> bool:
        """Every request ``other`` matches, this rule matches too."""
        prefix = self.path.removesuffix("*")
        paths = other.path.startswith(prefix) if self.path.endswith("*") else other.path == self.path
        methods = not self.methods or (bool(other.methods) and set(other.methods) <= set(self.methods))
        return paths and methods


DEFAULT_HEADERS = {
    "X-Auth-Request-User": "sub",
    "X-Auth-Request-Email": "email",
    "X-Auth-Request-Groups": "roles",
}
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


class Settings(_Frozen):
    """The whole configuration. Field names are the public config keys (see README)."""

    listen: str = Field(default="0.0.0.0:4180", description="Public listener, HOST:PORT.")
    admin_listen: str = Field(default="0.0.0.0:9901", description="/healthz /readyz /metrics.")
    upstream: str = Field(default="http://127.0.0.1:8080", description="The app, http://HOST:PORT.")
    upstream_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Wait for the app's headers (and each body read): 504."
    )
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="Connect: 504.")
    max_header_bytes: int = Field(
        default=32768, ge=4096, le=1_048_576, description="Larger request headers in total: 431.")
    upstream_max_connections: int = Field(default=256, ge=1, le=65536, description="Pool cap per worker.")
    websocket_recheck_seconds: float = Field(
        default=10.0, ge=1, le=3600,
        description="An open WebSocket is checked again this often, and at its token's expiry: "
        "closed (1008) once expired, revoked or no longer allowed by the policy.")
    public_paths: list[str] = Field(
        default_factory=list,
        description="No login needed (`/public/*` prefix or exact); subject `anonymous`.",
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
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OidcSettings | None = None
    session: SessionSettings = Field(default_factory=SessionSettings)
    policy: PolicySettings | None = None
    redis: RedisSettings = Field(default_factory=RedisSettings)
    revocation: RevocationSettings = Field(default_factory=RevocationSettings)
    rate_limits: list[RateLimitRule] = Field(
        default_factory=list,
        max_length=100,
        description="Checked in order, the first matching rule applies; kept in Redis "
        "(`redis`), so limits hold across replicas. Over the limit: 429 with Retry-After.",
    )
    headers: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_HEADERS),
        description="Identity header → claim path (`roles` = the roles, comma-joined).",
    )
    pass_access_token: bool = Field(default=False, description="Send X-Auth-Request-Access-Token.")
    pass_authorization_header: bool = Field(default=True, description="Forward Authorization as received.")

    @field_validator("listen", "admin_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("must be http://HOST:PORT (the app on localhost)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not carry a path, query or fragment")
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
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @field_validator("rate_limits")
    @classmethod
    def _reachable_rules(cls, value: list[RateLimitRule]) -> list[RateLimitRule]:
        for later, rule in enumerate(value):
            for earlier in range(later):
                if value[earlier].covers(rule):
                    raise ValueError(f"item {later} ({rule.path}) never applies: item {earlier} "
                                     f"({value[earlier].path}) matches first")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        folded = [fold_header_name(name) for name in value]
        for name in value:
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid header name")
        if len(folded) != len(set(folded)):
            raise ValueError("two header names fold to the same name ('_', '.', '-' are alike)")
        return value

    @model_validator(mode="after")
    def _listeners_differ(self) -> Settings:
        if split_host_port(self.listen)[1] == split_host_port(self.admin_listen)[1]:
            raise ValueError("listen and admin_listen must use different ports")
        return self

    @property
    def uses_redis(self) -> bool:
        return self.session.store == "redis" or self.revocation.enabled or bool(self.rate_limits)

    def redis_url(self) -> str:
        return self.redis.url or self.session.redis_url

    @model_validator(mode="after")
    def _redis_tls(self) -> Settings:
        # A CA for a plain connection would be silently unused: TLS would look on when it is off.
        if self.redis.tls_ca_file is not None and not _is_tls(self.redis_url()):
            raise ValueError("redis.tls_ca_file needs a TLS url: rediss:// or rediss+sentinel://")
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


def fold_header_name(name: str) -> str:
    """Python, PHP and CGI apps fold '_', '.' and '-' together (CVE-2025-64484)."""
    return name.lower().replace("_", "-").replace(".", "-")
