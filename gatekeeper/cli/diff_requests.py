"""The requests ``gatekeeper policy diff`` decides under both policies, from three sources.

- ``cases``: a ``policy test --cases`` file (policies/policy_test.yaml format), as written.
- ``traffic``: the access log gatekeeper writes (one JSON object per line, docs/operations.md
  "Access log"): each (method, path, subject) seen in its last lines, and each route seen asked
  by every role alone and by an anonymous caller. The log holds no roles: a subject from the log
  holds only what the policy's ``g`` lines give it.
- ``generated``: edge cases from both policies' rules: each path pattern instantiated, with and
  without a trailing slash, under every common method, asked by each role alone, each user the
  policies name, a user with no roles and an anonymous caller.

Every source is bounded (``limit`` requests each): a 100,000-rule policy gives a sample, and the
output says so.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.cli.policy import CaseRequest, UsageError, read_cases
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.subjects import BUILTIN_ROLES, ROLE_PREFIX

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
NO_ROLES_USER = "someone"  # an authenticated caller holding no token role
_PARAM = re.compile(r":[A-Za-z0-9_]+|\{[^/{}]*\}")
_REGEX = re.compile(r"[\^$()\[\]|+?\\]")


@dataclass(frozen=True, slots=True)
class Probe:
    source: str  # cases | traffic | generated
    who: str  # how the caller reads in the table
    request: CaseRequest

    def key(self) -> tuple[Any, ...]:
        r = self.request
        return (r.anonymous, r.sub, r.iss, tuple(r.roles),
                json.dumps(r.claims, sort_keys=True, default=str), r.method.upper(), r.path)


@dataclass(frozen=True, slots=True)
class Sampled:
    probes: list[Probe]
    notes: list[str]


def from_cases(path: Path) -> list[Probe]:
    probes = []
    for index, case in enumerate(read_cases(path), start=1):
        who = "anonymous" if case.request.anonymous else _who(case.request.sub or "", case.request.roles)
        probes.append(Probe("cases", f"{who} ({case.title(index)})" if case.name else who,
                            case.request))
    return probes


def from_traffic(path: Path, roles: Sequence[str], *, lines: int, limit: int) -> Sampled:
    """The last ``lines`` access-log lines: what was asked, by whom, and by every role alone."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            tail = deque(file, maxlen=lines)
    except OSError as exc:
        raise UsageError([f"--traffic {path}: cannot read ({exc.strerror})"]) from exc
    seen: dict[tuple[str, str, str], None] = {}
    skipped = 0
    for line in tail:
        entry = _access_entry(line)
        if entry is None:
            skipped += line.strip() != ""
            continue
        seen.setdefault(entry, None)
    routes = dict.fromkeys((method, route) for method, route, _ in seen)
    probes: list[Probe] = []
    for method, route, subject in seen:
        anonymous = subject == "anonymous"
        probes.append(Probe("traffic", "anonymous" if anonymous else f"{subject} (as logged: no token roles)",
                            _request(None if anonymous else subject, (), method, route)))
    for method, route in routes:
        probes += [Probe("traffic", who, _request(sub, held, method, route))
                   for who, sub, held in _callers(roles, ())]
    notes = []
    if skipped:
        notes.append(f"--traffic: {skipped} line(s) are not access-log lines (no method/path): skipped")
    return Sampled(*_bounded(probes, limit, "traffic", notes))


def _access_entry(line: str) -> tuple[str, str, str] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    method, path, subject = entry.get("method"), entry.get("path"), entry.get("subject")
    if not (isinstance(method, str) and isinstance(path, str) and path.startswith("/")
            and re.fullmatch(r"[A-Za-z]+", method)):
        return None
    return method.upper(), path, subject if isinstance(subject, str) and subject else "anonymous"


def names(policies: Iterable[CompiledPolicy]) -> tuple[list[str], list[str]]:
    """(token roles, users) the policies name, in file order: ``role:NAME`` subjects and ``g``
    names as roles (without the built-in ones), the other names as users."""
    roles: dict[str, None] = {}
    users: dict[str, None] = {}
    for policy in policies:
        view = policy.explain_view(NO_ROLES_USER, (), "GET", "/", authenticated=True, claims={})
        sub = view.rule_fields.index("sub")  # the loader refuses a model without one
        found = [rule.values[sub] for rule in policy.rules]
        found += [name for member, held in view.role_links.items() for name in (member, *held)]
        for name in found:
            if name.startswith(ROLE_PREFIX):
                roles.setdefault(name.removeprefix(ROLE_PREFIX), None)
            else:
                users.setdefault(name, None)
    return [r for r in roles if r not in BUILTIN_ROLES], list(users)


def generated(policies: Sequence[CompiledPolicy], *, limit: int) -> Sampled:
    paths: dict[str, None] = {}
    for policy in policies:
        view = policy.explain_view(NO_ROLES_USER, (), "GET", "/", authenticated=True, claims={})
        if "obj" not in view.rule_fields:
            continue
        obj = view.rule_fields.index("obj")
        for rule in policy.rules:
            paths.update(dict.fromkeys(instances(rule.values[obj])))
    callers = list(_callers(*names(policies)))
    probes = [Probe("generated", who, _request(sub, held, method, path))
              for path in paths for method in METHODS for who, sub, held in callers]
    return Sampled(*_bounded(probes, limit, "generated", []))


def instances(pattern: str) -> list[str]:
    """Paths a path pattern matches (keyMatch*/globMatch forms), each also with/without a
    trailing slash; none for a regular expression (it cannot be instantiated faithfully)."""
    if not pattern.startswith("/") or _REGEX.search(pattern):
        return []
    path = _PARAM.sub("x1", pattern).replace("*", "x1/x2")
    other = path.rstrip("/") if path.endswith("/") and path != "/" else path + "/"
    shortest = pattern.replace("/*", "/").replace("*", "")
    found = [path, other]
    if pattern.endswith("*") and not _PARAM.search(shortest):
        found.append(shortest)  # "/admin/*" matches "/admin/" itself too
    return list(dict.fromkeys(found))


def _callers(roles: Iterable[str], users: Iterable[str]
             ) -> Iterator[tuple[str, str | None, tuple[str, ...]]]:
    yield "anonymous", None, ()
    yield f"{NO_ROLES_USER} (no roles)", NO_ROLES_USER, ()
    for role in roles:
        yield f"role {role} alone", NO_ROLES_USER, (role,)
    for user in users:
        yield user, user, ()


def _request(sub: str | None, roles: Sequence[str], method: str, path: str) -> CaseRequest:
    if sub is None:
        return CaseRequest(anonymous=True, method=method, path=path)
    return CaseRequest(sub=sub, roles=list(roles), method=method, path=path)


def _bounded(probes: list[Probe], limit: int, source: str, notes: list[str]
             ) -> tuple[list[Probe], list[str]]:
    if len(probes) > limit:
        notes.append(f"{source}: {len(probes)} requests, the first {limit} compared "
                     "(raise --max-requests to compare more)")
        return probes[:limit], notes
    return probes, notes


def _who(sub: str, roles: Sequence[str]) -> str:
    return f"{sub} [{', '.join(roles)}]" if roles else sub
