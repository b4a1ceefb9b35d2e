"""The policy tool behind ``gatekeeper policy test`` (``policy check`` is check.py).

    gatekeeper policy test --config FILE --sub alice --role viewer GET /api/p1/items
    gatekeeper policy test --config FILE --anonymous GET /public/logo.png
    gatekeeper policy test --config FILE --sub u-7 --host acme.example.com PUT /docs/a
    gatekeeper policy test --config FILE --cases policies/policy_test.yaml

A request is decided exactly as the proxy decides it: the target goes through
``canonical_path`` (the query takes no part), the method is upper-cased, roles also come from
the claims named by ``auth.roles_claims``, and the proxy's own ``PolicyAuthorizer`` gives the
verdict over the loaded policy and ``public_paths``. Exit codes: 0 allow / every case passed /
no problems; 1 deny / a case failed / problems; 2 usage or configuration error.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from gatekeeper.authz import FixedPolicy, PolicyAuthorizer, PublicPaths
from gatekeeper.errors import BadRequest, ConfigError
from gatekeeper.paths import canonical_path
from gatekeeper.policy.engine import CompiledPolicy, Rule
from gatekeeper.policy.explain import made_up_request
from gatekeeper.policy.inputs import NoDomain
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.principal import ANONYMOUS, Principal
from gatekeeper.settings import PolicySettings, Settings
from gatekeeper.settings.file import load_settings
from gatekeeper.settings.routes import HTTP_METHOD
from gatekeeper.subjects import SubjectClash, SubjectNamespaces
from gatekeeper.tokens.claims import roles_from_claims

ALLOW, DENY, USAGE = 0, 1, 2
_RULE_REF = re.compile(r"[^:\s]+:[0-9]+")


class UsageError(Exception):
    """Bad arguments, config or cases file: exit 2 with these lines."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = list(lines)


# ---------------------------------------------------------------- requests and cases


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseRequest(_Strict):
    """One request: a user with roles and claims, or an anonymous caller."""

    sub: str | None = Field(default=None, min_length=1)
    iss: str | None = Field(default=None, description="A configured issuer: sub gets its prefix.")
    roles: list[str] = Field(default_factory=list)
    claims: dict[str, Any] = Field(default_factory=dict)
    anonymous: bool = False
    method: str
    path: str = Field(min_length=1, description="The target: a path, with a query if any.")
    host: str = Field(default="localhost", min_length=1, description="The Host header.")
    client: str = Field(default="127.0.0.1", min_length=1, description="The client address.")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not HTTP_METHOD.fullmatch(value):
            raise ValueError(f"{value!r} is not an HTTP method")
        return value

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        for role in value:
            if not role or "," in role:
                raise ValueError(f"{role!r}: a role is non-empty and holds no ',' "
                                 "(the proxy never grants such a role)")
        return value

    @model_validator(mode="after")
    def _who(self) -> CaseRequest:
        if self.anonymous and (self.sub is not None or self.roles or self.claims):
            raise ValueError("an anonymous request has no sub, roles or claims")
        if not self.anonymous and self.sub is None:
            raise ValueError("give sub (a user) or anonymous: true (--sub or --anonymous)")
        if self.iss is not None and self.sub is None:
            raise ValueError("iss goes with sub")
        return self


class Case(_Strict):
    name: str | None = None
    request: CaseRequest
    expect: Literal["allow", "deny"]
    rule: str | None = Field(default=None, description="'policy.csv:22': the deciding rule.")
    reason: str | None = Field(default=None, description="e.g. no_matching_rule, no_credentials.")

    @field_validator("rule")
    @classmethod
    def _rule(cls, value: str | None) -> str | None:
        if value is not None and not _RULE_REF.fullmatch(value):
            raise ValueError(f"{value!r}: a rule is FILE:LINE, e.g. policy.csv:22")
        return value

    def title(self, index: int) -> str:
        if self.name:
            return self.name
        who = "anonymous" if self.request.anonymous else self.request.sub
        return f"case {index}: {who} {self.request.method} {self.request.path}"


_CASES = TypeAdapter(list[Case])


@dataclass(frozen=True, slots=True)
class Outcome:
    allowed: bool
    reason: str
    rule: Rule | None
    subjects: frozenset[str]
    method: str
    path: str  # the canonical path that was decided


class Decider:
    """The proxy's authorizer over one loaded policy, plus what the CLI prints about it."""

    def __init__(self, policy: CompiledPolicy, *, public_paths: Sequence[str],
                 roles_claims: Sequence[str], subject_prefixes: Mapping[str, str]) -> None:
        self._authorizer = PolicyAuthorizer(FixedPolicy(policy), PublicPaths(public_paths))
        self._policy = policy
        self._roles_claims = list(roles_claims)
        self._namespaces = SubjectNamespaces(dict(subject_prefixes))
        self.rules = {rule.source: rule for rule in policy.rules}

    def principal(self, request: CaseRequest) -> Principal:
        if request.anonymous or request.sub is None:
            return ANONYMOUS
        claims = {**request.claims, "sub": request.sub}  # a token's sub claim is its subject
        roles = dict.fromkeys([*request.roles, *roles_from_claims(claims, self._roles_claims)])
        subject = request.sub
        if request.iss is not None:  # as the proxy names a token of that issuer
            if not self._namespaces.knows(request.iss):
                raise UsageError([f"iss {request.iss!r} is not a configured issuer"])
            try:
                subject = self._namespaces.subject(request.iss, request.sub)
            except SubjectClash as exc:
                raise UsageError([f"sub {request.sub!r}: {exc} (the proxy refuses it: 401)"]) from None
        return Principal(subject=subject, roles=tuple(roles), claims=claims, via="bearer",
                         issuer=request.iss or "")

    def decide(self, request: CaseRequest) -> Outcome:
        """Raise BadRequest for a target the proxy would answer with 400."""
        path = canonical_path(request.path.encode("utf-8").partition(b"?")[0])
        view = made_up_request(request.method, path, request.path, host=request.host,
                               client=request.client)
        method = view.method  # upper-cased as the proxy does
        principal = self.principal(request)
        verdict = self._authorizer.authorize(principal, method, path, view)
        authenticated = principal.via != "anonymous"
        try:
            domain = self._policy.request_domain(principal.claims, path, view)
        except NoDomain:
            domain = None
        subjects = self._policy.subjects(principal.subject, principal.roles, authenticated, domain)
        rule = self.rules.get(verdict.rule) if verdict.rule is not None else None
        return Outcome(verdict.allowed, verdict.reason, rule, subjects, method, path)


def _settings(config_path: str | None) -> tuple[Settings, PolicySettings]:
    if config_path is None:
        raise UsageError(["no configuration: pass --config FILE or set GATEKEEPER_CONFIG"])
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise UsageError([f"invalid configuration ({config_path}):", *exc.problems]) from exc
    if settings.policy is None:
        raise UsageError([f"{config_path} has no 'policy:' section: add policy.model and "
                          "policy.policy (the Casbin files to use)"])
    return settings, settings.policy


def _decider(config_path: str | None) -> Decider:
    settings, policy = _settings(config_path)
    try:
        report = load_policy(policy.model, policy.policy, cache_size=0, settings=policy)
    except PolicyError as exc:
        raise UsageError(["the policy cannot be loaded (details: gatekeeper policy check):",
                          *exc.problems]) from exc
    _print_warnings(report.warnings)
    return Decider(report.policy, public_paths=settings.public_paths,
                   roles_claims=settings.auth.roles_claims,
                   subject_prefixes=settings.subject_prefixes())


def parse_claims(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value``; a value starting with ``[`` or ``{`` is JSON (as in GATEKEEPER_* overrides)."""
    claims: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError([f"--claim {pair!r}: expected KEY=VALUE"])
        parsed: Any = value
        if value[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise UsageError([f"--claim {key}: the value is not valid JSON ({exc})"]) from exc
        claims[key] = parsed
    return claims


def _validation_lines(exc: ValidationError, prefix: str) -> list[str]:
    lines = []
    for error in exc.errors(include_input=False):
        loc = list(error["loc"])
        where = prefix
        if loc and isinstance(loc[0], int):
            where += f"case {int(loc.pop(0)) + 1}: "
        message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
        key = ".".join(str(part) for part in loc)
        lines.append(f"{where}{key + ': ' if key else ''}{message.removeprefix('Value error, ')}")
    return lines


# ---------------------------------------------------------------- policy test


def policy_test(
    config_path: str | None,
    *,
    sub: str | None,
    roles: Sequence[str],
    iss: str | None = None,
    claims: Sequence[str],
    anonymous: bool,
    method: str | None,
    path: str | None,
    cases: str | None,
    host: str = "localhost",
    client: str = "127.0.0.1",
) -> int:
    try:
        if cases is not None:
            if sub is not None or iss is not None or roles or claims or anonymous or method is not None:
                raise UsageError(["--cases runs a file of requests: give either --cases FILE "
                                  "or [--sub/--role/--claim/--anonymous] METHOD PATH"])
            cases_list = read_cases(Path(cases))
            return run_cases(_decider(config_path), cases_list)
        if method is None or path is None:
            raise UsageError(["give METHOD PATH (e.g. GET /api/p1/items), or --cases FILE"])
        try:
            request = CaseRequest(sub=sub, iss=iss, roles=list(roles), claims=parse_claims(claims),
                                  anonymous=anonymous, method=method, path=path, host=host,
                                  client=client)
        except ValidationError as exc:
            raise UsageError(_validation_lines(exc, "")) from None
        return decide_one(_decider(config_path), request)
    except UsageError as exc:
        for line in exc.lines:
            print(f"gatekeeper: {line}", file=sys.stderr)
        return USAGE


def decide_one(decider: Decider, request: CaseRequest) -> int:
    try:
        outcome = decider.decide(request)
    except BadRequest as exc:
        print(f"400 {exc.description} (the proxy refuses this target before any policy)")
        return USAGE
    print("allow" if outcome.allowed else "deny")
    print(f"  rule:     {_describe_rule(outcome)}")
    print(f"  reason:   {outcome.reason}")
    print(f"  subjects: {', '.join(sorted(outcome.subjects))}")
    note = "" if outcome.path == request.path else f"  (canonical form of {request.path})"
    print(f"  request:  {outcome.method} {outcome.path}{note}")
    return ALLOW if outcome.allowed else DENY


def _describe_rule(outcome: Outcome) -> str:
    if outcome.rule is not None:
        return str(outcome.rule)
    if outcome.reason == "no_credentials":
        return "none: anonymous callers are considered only on public_paths (the proxy answers 401)"
    return "no allow rule matched: default deny"


def read_cases(path: Path) -> list[Case]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError([f"{path}: cannot read ({exc.strerror})"]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        raise UsageError([f"{path}:{where} invalid YAML"]) from exc
    if not isinstance(raw, list) or not raw:
        raise UsageError([f"{path}: expected a non-empty YAML list of cases "
                          "(- request: {...}, expect: allow|deny)"])
    try:
        return _CASES.validate_python(raw)
    except ValidationError as exc:
        raise UsageError(_validation_lines(exc, f"{path}: ")) from None


def run_cases(decider: Decider, cases: Sequence[Case]) -> int:
    failed = 0
    for index, case in enumerate(cases, start=1):
        problem = check_case(decider, case)
        failed += problem is not None
        print(f"PASS  {case.title(index)}" if problem is None
              else f"FAIL  {case.title(index)}: {problem}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return DENY if failed else ALLOW


def check_case(decider: Decider, case: Case) -> str | None:
    """None when the case holds; else why not. A 400 target counts as deny (never proxied)."""
    try:
        outcome = decider.decide(case.request)
    except BadRequest as exc:
        got, reason, rule, decided = "deny", exc.code, None, f"refused with 400: {exc.description}"
    else:
        got, reason, rule = ("allow" if outcome.allowed else "deny"), outcome.reason, outcome.rule
        decided = f"{outcome.method} {outcome.path}: {_describe_rule(outcome)}"
    if got != case.expect:
        return f"expected {case.expect}, got {got} ({decided})"
    if case.rule is not None and (rule is None or rule.source != case.rule):
        known = "" if case.rule in decider.rules else f"; {case.rule} is not a rule"
        return f"expected rule {case.rule}, decided by {rule or 'no rule'}{known}"
    if case.reason is not None and reason != case.reason:
        return f"expected reason {case.reason}, got {reason} ({decided})"
    return None


def _print_warnings(warnings: Sequence[str], file: TextIO | None = None) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=file or sys.stderr)
