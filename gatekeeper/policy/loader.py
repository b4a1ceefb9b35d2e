"""Model + policy files → a validated CompiledPolicy, or every problem with its file and line.

Runs off the event loop (it reads files and builds indexes). Nothing here is partially applied:
a file with any problem produces no policy at all, so the caller keeps the one it has.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casbin.model import Model
from casbin.persist.adapter import _extract_tokens
from casbin.rbac import default_role_manager

from gatekeeper.policy.engine import (
    ANONYMOUS_SUBJECT,
    AUTHENTICATED_ROLE,
    REQUEST_FIELDS,
    CompiledPolicy,
    ModelError,
    Rule,
)
from gatekeeper.policy.functions import matcher_functions
from gatekeeper.policy.matcher import MatcherError, casbin_to_python
from gatekeeper.policy.namespace import role_namespace_warnings


class PolicyError(Exception):
    """The files cannot become a policy; ``problems`` are 'file:line: reason' strings."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class LoadReport:
    policy: CompiledPolicy
    warnings: list[str] = field(default_factory=list)  # lint: duplicates, unreachable rules


def _digest(model_text: str, policy_text: str) -> str:
    return hashlib.sha256(model_text.encode() + b"\0" + policy_text.encode()).hexdigest()[:16]


def files_digest(model_path: Path, policy_path: Path) -> str:
    """The digest ``load_policy`` would give these files now, without compiling them."""
    return _digest(_read(model_path), _read(policy_path))


def load_policy(
    model_path: Path,
    policy_path: Path,
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    cache_size: int = 65536,
) -> LoadReport:
    model_text = _read(model_path)
    policy_text = _read(policy_path)
    digest = _digest(model_text, policy_text)
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
        raise PolicyError([f"{_line_of(model_path, model_text, 'matchers', 'm')}: {exc}"]) from exc
    except ModelError as exc:  # the effect, or the rules' priorities
        where = exc.where or _line_of(model_path, model_text, "policy_effect", "e")
        raise PolicyError([f"{where}: {exc}"]) from exc
    _dry_run(compiled, model_path)
    warnings.extend(role_namespace_warnings(rules, g_lines, model["p"]["p"].tokens))
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
        raise PolicyError([f"{_line_of(path, text, 'request_definition', 'r')}: "
                           f"request_definition may use {', '.join(REQUEST_FIELDS)}; "
                           f"unknown: {', '.join(t.removeprefix('r_') for t in unknown)}"])
    if "p_sub" not in model["p"]["p"].tokens:
        raise PolicyError([f"{_line_of(path, text, 'policy_definition', 'p')}: "
                           "policy_definition needs a 'sub' field"])
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
    warnings.extend(_lint_roles_and_denies(rules, g_lines, model))
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
            listed = {m.strip().upper() for m in rule.values[index].split("|")}
            if not listed <= methods:
                warnings.append(f"{rule.source}: unknown method(s) {sorted(listed - methods)} "
                                "(methods are matched upper-case and exactly)")
    if "p_obj" in tokens:
        index = tokens.index("p_obj")
        warnings += [f"{r.source}: path pattern {r.values[index]!r} does not start with '/' "
                     "(it can never match a request path)" for r in rules
                     if not r.values[index].startswith(("/", "*", "^"))]
    return warnings


def _lint_roles_and_denies(
    rules: list[Rule], g_lines: list[tuple[str, list[str], str]], model: Model
) -> list[str]:
    """Certain findings only: role cycles, grants of roles that have no rules, and allow rules
    that a deny always overrides (under deny-override, for every request the allow matches)."""
    graph: dict[str, set[str]] = {}
    for key, values, _ in g_lines:
        if key == "g" and len(values) == 2:
            graph.setdefault(values[0], set()).add(values[1])
    closure = _closures(graph)
    tokens = model["p"]["p"].tokens
    matcher = model["m"]["m"].value
    by_role = _sole_conjunct(matcher, "p_sub", "g(r_sub, p_sub)")
    by_method = _sole_conjunct(matcher, "p_act", "methodMatch(r_act, p_act)")
    subjects = {rule.values[tokens.index("p_sub")] for rule in rules}
    warnings = []
    for key, values, where in g_lines:
        if key != "g" or len(values) != 2:
            continue
        member, role = values
        if member in closure(role):
            warnings.append(f"{where}: role cycle: {role!r} already holds {member!r}")
        elif by_role and not closure(role) & subjects and f'"{role}"' not in matcher:
            warnings.append(f"{where}: role {role!r} has no rules and inherits none "
                            "(this grant changes nothing)")
    effect = "".join(model["e"]["e"].value.split())
    if "p_eft" not in tokens or re.search(r"\bp_eft\b", matcher):
        return warnings
    eft = tokens.index("p_eft")
    if effect == "some(where(p_eft==allow))":
        return warnings + [f"{r.source}: a deny rule never decides under policy_effect "
                           "some(where (p.eft == allow))" for r in rules if r.values[eft] == "deny"]
    if effect != "some(where(p_eft==allow))&&!some(where(p_eft==deny))":
        return warnings
    sub, act = tokens.index("p_sub"), tokens.index("p_act") if "p_act" in tokens else -1
    loose = {i for i, flag in ((sub, by_role), (act, by_method)) if flag}
    same = [i for i in range(len(tokens)) if i != eft and i not in loose]
    denies: dict[tuple[str, ...], list[Rule]] = {}
    for rule in rules:
        if rule.values[eft] == "deny":
            denies.setdefault(tuple(rule.values[i] for i in same), []).append(rule)
    everyone = closure(ANONYMOUS_SUBJECT)  # every caller holds "anonymous" (engine.subjects)
    logged_in = closure(AUTHENTICATED_ROLE)

    def overrides(deny: Rule, allow: Rule) -> bool:
        held, role = allow.values[sub], deny.values[sub]
        if sub in loose and not (role in closure(held) or role in everyone
                                 or (role in logged_in and held not in everyone)):
            return False
        return act not in loose or _methods_cover(deny.values[act], allow.values[act])

    for rule in rules:
        if rule.values[eft] != "allow":
            continue
        deny = next((d for d in denies.get(tuple(rule.values[i] for i in same), ())
                     if overrides(d, rule)), None)
        if deny is not None:
            warnings.append(f"{rule.source}: this allow never decides: {deny.source} denies "
                            "every request it matches (a deny wins over any allow)")
    return warnings


def _closures(graph: Mapping[str, set[str]]) -> Callable[[str], frozenset[str]]:
    memo: dict[str, frozenset[str]] = {}

    def closure(name: str) -> frozenset[str]:
        if name not in memo:
            seen, queue = {name}, [name]
            while queue:
                for parent in graph.get(queue.pop(), ()):
                    if parent not in seen:
                        seen.add(parent)
                        queue.append(parent)
            memo[name] = frozenset(seen)
        return memo[name]

    return closure


def _sole_conjunct(matcher: str, name: str, conjunct: str) -> bool:
    """True when ``name`` occurs in the matcher only as the top-level conjunct ``conjunct``."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval").body
    except SyntaxError:
        return False
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    texts = [ast.unparse(part) for part in parts]
    return conjunct in texts and not any(
        re.search(rf"\b{name}\b", text) for text in texts if text != conjunct)


def _methods_cover(deny: str, allow: str) -> bool:
    """methodMatch semantics: every method ``allow`` lists is also in ``deny``."""
    if deny.strip() == "*":
        return True
    listed = {m.strip().upper() for m in allow.split("|") if m.strip()}
    return allow.strip() != "*" and listed <= {m.strip().upper() for m in deny.split("|")}


def _line_of(path: Path, text: str, section: str, key: str) -> str:
    """``model.conf:31`` for the line defining ``key`` in ``[section]`` (the path alone if absent)."""
    current = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
        elif current == section and line.partition("=")[0].strip() == key:
            return f"{path}:{number}"
    return str(path)


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
