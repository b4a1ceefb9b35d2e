"""Model + policy files → a validated CompiledPolicy, or every problem with its file and line.

Runs off the event loop (it reads files and builds indexes). Nothing here is partially applied:
a file with any problem produces no policy at all, so the caller keeps the one it has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casbin.model import Model
from casbin.persist.adapter import _extract_tokens
from casbin.rbac import default_role_manager

from gatekeeper.policy.engine import ANONYMOUS_SUBJECT, REQUEST_FIELDS, CompiledPolicy, Rule
from gatekeeper.policy.functions import matcher_functions
from gatekeeper.policy.matcher import MatcherError


class PolicyError(Exception):
    """The files cannot become a policy; ``problems`` are 'file:line: reason' strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class LoadReport:
    policy: CompiledPolicy
    warnings: list[str] = field(default_factory=list)  # lint: duplicates, unreachable rules


def load_policy(
    model_path: Path,
    policy_path: Path,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    cache_size: int = 65536,
) -> LoadReport:
    model_text = _read(model_path)
    policy_text = _read(policy_path)
    digest = hashlib.sha256(model_text.encode() + b"\0" + policy_text.encode()).hexdigest()[:16]
    model = _parse_model(model_path, model_text)
    rules, g_lines, warnings = _parse_policy(policy_path, policy_text, model)
    role_managers = _role_managers(model, g_lines)
    role_links: dict[str, list[str]] = {}
    for key, values, _ in g_lines:
        if key == "g" and len(values) == 2:
            role_links.setdefault(values[0], []).append(values[1])
    try:
        compiled = CompiledPolicy(model, role_managers, role_links, rules,
                                  functions or matcher_functions(),
                                  digest=digest, cache_size=cache_size)
    except MatcherError as exc:
        raise PolicyError([f"{model_path}: {exc}"]) from exc
    _dry_run(compiled, model_path)
    if not compiled.indexed:
        warnings.append(f"{model_path}: the matcher does not tie r.sub to p.sub "
                        "(g(r.sub, p.sub) or r.sub == p.sub): every rule is evaluated per "
                        "decision, so its cost grows with the policy")
    return LoadReport(compiled, warnings)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([f"{path}: cannot read ({exc})"]) from exc


def _parse_model(path: Path, text: str) -> Model:
    model = Model()
    try:
        model.load_model_from_text(text)
    except Exception as exc:  # pycasbin raises bare Exceptions for malformed files
        raise PolicyError([f"{path}: {exc}"]) from exc
    problems = [f"{path}: missing section [{name}]" for key, name in (
        ("r", "request_definition"), ("p", "policy_definition"), ("e", "policy_effect"),
        ("m", "matchers")) if key not in model.keys()]  # noqa: SIM118 - casbin Model has no __contains__
    if problems:
        raise PolicyError(problems)
    unknown = [t for t in model["r"]["r"].tokens if t.removeprefix("r_") not in REQUEST_FIELDS]
    if unknown:
        raise PolicyError([f"{path}: request_definition may use {', '.join(REQUEST_FIELDS)}; "
                           f"unknown: {', '.join(t.removeprefix('r_') for t in unknown)}"])
    if "p_sub" not in model["p"]["p"].tokens:
        raise PolicyError([f"{path}: policy_definition needs a 'sub' field"])
    return model


def _parse_policy(
    path: Path, text: str, model: Model
) -> tuple[list[Rule], list[tuple[str, list[str], str]], list[str]]:
    rules: list[Rule] = []
    g_lines: list[tuple[str, list[str], str]] = []
    problems: list[str] = []
    warnings: list[str] = []
    seen: dict[tuple[str, ...], str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{path.name}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tokens = _extract_tokens(line)
        except IndexError:
            problems.append(f"{where}: unbalanced brackets")
            continue
        if not tokens:
            continue
        key, values = tokens[0], tokens[1:]
        section = key[:1]
        if section not in ("p", "g") or section not in model.keys() or key not in model[section]:  # noqa: SIM118 - casbin Model has no __contains__
            problems.append(f"{where}: unknown rule type {key!r}")
            continue
        expected = len(model[section][key].tokens)
        if section == "g":
            expected = model[section][key].value.count("_")
        if len(values) != expected:
            problems.append(f"{where}: {key} takes {expected} fields, found {len(values)}")
            continue
        if any(v == "" for v in values):
            problems.append(f"{where}: empty field")
            continue
        if (key, *values) in seen:
            warnings.append(f"{where}: duplicate of {seen[(key, *values)]}")
            continue
        seen[(key, *values)] = where
        if section == "g":
            g_lines.append((key, values, where))
        else:
            rules.append(Rule(key, tuple(values), where))
    if problems:
        raise PolicyError(problems)
    warnings.extend(_lint_rules(rules, model))
    return rules, g_lines, warnings


def _lint_rules(rules: list[Rule], model: Model) -> list[str]:
    tokens = model["p"]["p"].tokens
    warnings = []
    if "p_eft" in tokens:
        index = tokens.index("p_eft")
        warnings += [f"{r.source}: effect {r.values[index]!r} is neither allow nor deny "
                     "(the rule can never decide)" for r in rules
                     if r.values[index] not in ("allow", "deny")]
    if "p_act" in tokens:
        index = tokens.index("p_act")
        methods = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "*"}
        for rule in rules:
            listed = {m.strip() for m in rule.values[index].split("|")}
            if not listed <= methods:
                warnings.append(f"{rule.source}: unknown method(s) {sorted(listed - methods)} "
                                "(methods are matched upper-case and exactly)")
    if "p_obj" in tokens:
        index = tokens.index("p_obj")
        warnings += [f"{r.source}: path pattern {r.values[index]!r} does not start with '/' "
                     "(it can never match a request path)" for r in rules
                     if not r.values[index].startswith(("/", "*", "^"))]
    return warnings


def _role_managers(model: Model, g_lines: list[tuple[str, list[str], str]]) -> dict[str, Any]:
    managers: dict[str, Any] = {}
    if "g" not in model.keys():  # noqa: SIM118 - casbin Model has no __contains__
        return managers
    for key in model["g"]:
        managers[key] = default_role_manager.RoleManager(10)
    for key, values, _ in g_lines:
        managers[key].add_link(*values)
    return managers


def _dry_run(policy: CompiledPolicy, model_path: Path) -> None:
    """Evaluate the matcher once against every rule: unknown names fail now, not per request."""
    for rule in policy.rules or (None,):
        try:
            policy.try_rule(rule, ANONYMOUS_SUBJECT, "GET", "/")
        except Exception as exc:  # simpleeval and matcher functions raise anything
            where = rule.source if rule is not None else str(model_path)
            raise PolicyError([f"{where}: the matcher fails on this rule "
                               f"({type(exc).__name__}: {exc})"]) from exc
