"""Authorization: a small typed interface with two implementations.

- ``AuthenticatedOnly`` (no ``policy`` configured): ``public_paths`` are open to anonymous
  callers, everything else needs an authenticated principal.
- ``PolicyAuthorizer`` (``policy`` configured): Casbin rules decide; anonymous callers are
  considered only on ``public_paths`` (as subject ``role:anonymous``), authenticated ones are
  their (issuer-namespaced) subject holding their token roles as ``role:NAME`` and the role
  ``role:authenticated``; a subject that names a role is refused (``subject_names_a_role``, see
  subjects.py). No active policy means deny (fail closed). A ``HEAD`` needs the ``GET``
  too: the app runs the GET handler for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gatekeeper.paths import PathPatterns
from gatekeeper.policy.engine import CompiledPolicy, PolicyVerdict
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str  # machine code: why
    rule: str | None = None  # "policy.csv:12" when a policy rule decided


class Authorizer(Protocol):
    def authorize(self, principal: Principal, method: str, path: str,
                  request: RequestView | None = None) -> Verdict:
        """``request`` offers what a policy may read beyond subject, path and method (the Host
        header, the client address, the query); None where there is no request to read."""


class PublicPaths(PathPatterns):
    """``public_paths``: served to anonymous callers (the policy, if any, still decides)."""


# Verdicts are immutable values: the ones that name no rule are made once, not per request.
_AUTHENTICATED = Verdict(True, "authenticated")
_PUBLIC_PATH = Verdict(True, "public_path")
_NO_CREDENTIALS = Verdict(False, "no_credentials")
_NO_POLICY = Verdict(False, "no_policy")


class AuthenticatedOnly:
    """Allow public paths to anyone and everything else to any authenticated principal."""

    def __init__(self, public_paths: PublicPaths) -> None:
        self._public = public_paths

    def authorize(self, principal: Principal, method: str, path: str,
                  request: RequestView | None = None) -> Verdict:
        if principal.via != "anonymous":
            return _AUTHENTICATED
        if path in self._public:
            return _PUBLIC_PATH
        return _NO_CREDENTIALS


class ActivePolicy(Protocol):
    """Where the authorizer finds the policy in force (a PolicyHolder, or a fixed one)."""

    @property
    def active(self) -> CompiledPolicy | None: ...


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    active: CompiledPolicy | None


def _trust_nobody(_: str) -> bool:
    return False


class PolicyAuthorizer:
    """``is_trusted``: the ``trusted_proxies`` test (mutate.py ``HeaderPolicy.is_trusted``): a
    model that reads the client address (``ipMatch``) or a tenant from the host believes
    X-Forwarded-For / X-Forwarded-Host from those peers only (gatekeeper/peers.py)."""

    def __init__(self, holder: ActivePolicy, public_paths: PublicPaths,
                 is_trusted: Callable[[str], bool] = _trust_nobody) -> None:
        self._holder = holder
        self._public = public_paths
        self._is_trusted = is_trusted

    def authorize(self, principal: Principal, method: str, path: str,
                  request: RequestView | None = None) -> Verdict:
        anonymous = principal.via == "anonymous"
        if anonymous and path not in self._public:
            return _NO_CREDENTIALS
        policy = self._holder.active
        if policy is None:
            return _NO_POLICY
        verdict = self._decide(policy, principal, method, path, request)
        # The app answers HEAD by running its GET handler (Starlette, werkzeug, Django; RFC 9110
        # §9.3.2 lets it): a HEAD is allowed only where that GET is too.
        if verdict.allowed and method.upper() == "HEAD":
            get = self._decide(policy, principal, "GET", path, request)
            verdict = verdict if get.allowed else get
        return Verdict(verdict.allowed, verdict.reason,
                       verdict.rule.source if verdict.rule is not None else None)

    def _decide(self, policy: CompiledPolicy, principal: Principal, method: str, path: str,
                request: RequestView | None) -> PolicyVerdict:
        return policy.decide(principal.subject, principal.roles, method, path,
                             authenticated=principal.via != "anonymous", claims=principal.claims,
                             cache_key=principal, request=request, is_trusted=self._is_trusted)
