"""policy and rate_limits: the Casbin files, and the per-path rules that share the path patterns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gatekeeper.settings.common import FrozenModel, readable_config_file

# The functions Casbin users register with add_named_matching_func / add_domain_matching_func,
# by the name their matcher function has (gatekeeper/policy/functions.py).
MatchingFunction = Literal["keyMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5",
                           "globMatch", "regexMatch"]
RequestSource = Literal["subject", "path", "method", "domain", "claims", "client"]


class DomainSource(FrozenModel):
    """Where the request's domain (tenant) comes from: exactly one of the three."""

    claim: str | None = Field(
        default=None, min_length=1,
        description="A token claim (dotted path, e.g. `org.id`) holding the tenant as a string; "
        "missing, empty or not a string: deny (`no_domain`).")
    path_segment: int | None = Field(
        default=None, ge=1, le=64,
        description="The Nth segment of the canonical path (`2` in `/orgs/acme/…` is `acme`).")
    host: bool = Field(
        default=False,
        description="The request's host, lower-cased, without port: a trusted proxy's "
        "X-Forwarded-Host, else Host (what the app is told; docs/policies.md, 'Tenants').")

    @model_validator(mode="after")
    def _one(self) -> DomainSource:
        given = [name for name, value in (("claim", self.claim), ("path_segment", self.path_segment),
                                          ("host", self.host or None)) if value is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of claim, path_segment, host "
                             f"(given: {', '.join(given) or 'none'})")
        return self


class PolicySettings(FrozenModel):
    model: Path = Field(
        default=Path("policies/model.conf"),
        description="Casbin model; a relative path is read from the config file's directory.",
    )
    policy: Path = Field(default=Path("policies/policy.csv"), description="Casbin policy lines.")
    watch: bool = Field(default=True, description="Reload when the files change (and on SIGHUP).")
    decision_cache_size: int = Field(
        default=65536, ge=0, le=10_000_000, description="Decisions kept per policy (LRU).")
    domain: DomainSource | None = Field(
        default=None, description="The source of the request field fed by `domain` (Casbin's "
        "`r.dom`, roles per tenant with `g = _, _, _`); required when the model reads one.")
    request: list[RequestSource] | None = Field(
        default=None, description="What feeds each field of the model's `r = …`, by position "
        "(e.g. `[client, path, method]` for `ipMatch(r.sub, p.sub)`). Default: by field name "
        "(sub, obj, act, dom, claims, client), else by position (docs/policies.md).")
    role_matching: dict[str, MatchingFunction] = Field(
        default_factory=dict, description="Role patterns: a role type (`g2`, `g3`…) whose "
        "names are patterns for this function, as Casbin's `add_named_matching_func`.")
    domain_matching: MatchingFunction | None = Field(
        default=None, description="Domain patterns in `g` lines (`g, alice, admin, *`) for "
        "this function, as Casbin's `add_named_domain_matching_func('g', …)`.")

    @field_validator("role_matching")
    @classmethod
    def _role_types(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key == "g":
                raise ValueError("'g': role patterns on users are not supported (the caller's "
                                 "token roles are links of the subject); use g2, g3… for "
                                 "roles of other things")
            if not re.fullmatch(r"g[2-9][0-9]*", key):
                raise ValueError(f"{key!r} is not a role type (g2, g3, …)")
        return value

    @field_validator("model", "policy")
    @classmethod
    def _file(cls, value: Path, info: ValidationInfo) -> Path:
        # Reported with its key and every other problem, not after them by the policy loader.
        return readable_config_file(value, info)


HTTP_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §9.1: a method is a token


def check_methods(value: list[str]) -> list[str]:
    """Methods as gatekeeper matches and forwards them: tokens, upper-cased, each once."""
    for method in value:
        if not HTTP_METHOD.fullmatch(method):
            raise ValueError(f"{method!r} is not an HTTP method")
    upper = [m.upper() for m in value]
    if len(upper) != len(set(upper)):
        raise ValueError("each method may appear once")
    return upper


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


class RateLimitRule(FrozenModel):
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
        return check_methods(value)

    def covers(self, other: RateLimitRule) -> bool:
        """Every request ``other`` matches, this rule matches too."""
        prefix = self.path.removesuffix("*")
        paths = other.path.startswith(prefix) if self.path.endswith("*") else other.path == self.path
        methods = not self.methods or (bool(other.methods) and set(other.methods) <= set(self.methods))
        return paths and methods
