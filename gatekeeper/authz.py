"""Authorization: a small typed interface with two implementations.

- ``AuthenticatedOnly`` (no ``policy`` configured): ``public_paths`` are open to anonymous
  callers, everything else needs an authenticated principal.
- ``PolicyAuthorizer`` (``policy`` configured): Casbin rules decide; anonymous callers are
  considered only on ``public_paths`` (as subject ``role:anonymous``), authenticated ones are
  their (issuer-namespaced) subject holding their token roles as ``role:NAME`` and the role
  ``role:authenticated``; a subject that names a role is refused (``subject_names_a_role``, see
  subjects.py). No active policy means deny (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gatekeeper.paths import PathPatterns
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.principal import Principal


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str  # machine code: why
    rule: str | None = None  # "policy.csv:12" when a policy rule decided


class Authorizer(Protocol):
    def authorize(self, principal: Principal, method: str, path: str) -> Verdict: ...


class PublicPaths(PathPatterns):
    """``public_paths``: served to anonymous callers (the policy, if any, still decides)."""


class AuthenticatedOnly:
    """Allow public paths to anyone and everything else to any authenticated principal."""

    def __init__(self, public_paths: PublicPaths) -> None:
        self._public = public_paths

    def authorize(self, principal: Principal, method: str, path: str) -> Verdict:
        if principal.via != "anonymous":
            return Verdict(True, "authenticated")
        if path in self._public:
            return Verdict(True, "public_path")
        return Verdict(False, "no_credentials")


class ActivePolicy(Protocol):
    """Where the authorizer finds the policy in force (a PolicyHolder, or a fixed one)."""

    @property
    def active(self) -> CompiledPolicy | None: ...


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    active: CompiledPolicy | None


class PolicyAuthorizer:
    def __init__(self, holder: ActivePolicy, public_paths: PublicPaths) -> None:
        self._holder = holder
        self._public = public_paths

    def authorize(self, principal: Principal, method: str, path: str) -> Verdict:
        anonymous = principal.via == "anonymous"
        if anonymous and path not in self._public:
            return Verdict(False, "no_credentials")
        policy = self._holder.active
        if policy is None:
            return Verdict(False, "no_policy")
        verdict = policy.decide(
            principal.subject, principal.roles, method, path,
            authenticated=not anonymous, claims=principal.claims, cache_key=principal,
        )
        return Verdict(verdict.allowed, verdict.reason,
                       verdict.rule.source if verdict.rule is not None else None)
