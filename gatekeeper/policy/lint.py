"""Lint warnings on a policy that loads: findings that are certain, never guesses.

Methods are linted the way the matcher compares them (methodMatch lists, exact ``==``, a
pattern for any other matcher function, judged by running that function); role cycles, grants
of roles that have no rules, and allow rules that a deny always overrides are reported with the
line that makes them so.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

from casbin.model import Model

from gatekeeper.policy.engine import ANONYMOUS_SUBJECT, AUTHENTICATED_ROLE, Rule
from gatekeeper.policy.functions import matcher_functions
from gatekeeper.policy.matcher import casbin_to_python

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def _act_usage(matcher: str) -> set[str]:
    """How the matcher reads p.act: 'methodMatch', 'regexMatch', '==' or 'other' per use."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval")
    except SyntaxError:
        return {"other"}
    uses: set[str] = set()
    for node in ast.walk(tree):
        children = list(ast.iter_child_nodes(node))
        if not any(isinstance(c, ast.Name) and c.id == "p_act" for c in children):
            continue
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                ast.unparse(node) == f"{node.func.id}(r_act, p_act)":
            uses.add(node.func.id)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and \
                isinstance(node.ops[0], ast.Eq) and \
                {ast.unparse(node.left), ast.unparse(node.comparators[0])} == {"r_act", "p_act"}:
            uses.add("==")
        else:
            uses.add("other")
    return uses


def _method_warning(usage: set[str], spec: str,
                    functions: Mapping[str, Callable[..., Any]]) -> str | None:
    """Lint a rule's methods the way the matcher compares them (nothing to say otherwise).

    A list for methodMatch, a method for ``==``; for any other matcher function called as
    ``f(r.act, p.act)`` (regexMatch, keyMatch, globMatch…) the rule's method is a pattern, judged
    by running that very function on every known method: a pattern none of them satisfies can
    never match, one any of them satisfies is fine, whatever it looks like (``^(GET|POST)$``).
    """
    if usage == {"methodMatch"}:
        listed = {m.strip().upper() for m in spec.split("|")}
        unknown = sorted(listed - {*_METHODS, "*"})
        return (f"unknown method(s) {unknown} (methods are matched upper-case and exactly)"
                if unknown else None)
    if usage == {"=="}:
        return (None if spec in _METHODS else f"method {spec!r} is compared exactly with the "
                f"upper-case request method: it matches no known method")
    if len(usage) == 1 and (name := next(iter(usage))) in functions:
        try:
            if any(_matched(functions[name](method, spec)) for method in _METHODS):
                return None
        except Exception:
            return None  # an invalid pattern: the load itself refuses it (pattern_problem)
        return f"method pattern {spec!r} matches no known (upper-case) method"
    return None


def _matched(result: Any) -> bool:
    return result is True or (isinstance(result, float) and result != 0)


def lint_rules(rules: list[Rule], model: Model,
               functions: Mapping[str, Callable[..., Any]] | None = None) -> list[str]:
    """``functions``: the matcher functions the policy is compiled with (default: the built-in
    ones), so that a method pattern is judged by the function the matcher calls."""
    tokens = model["p"]["p"].tokens
    warnings = []
    known = functions if functions is not None else matcher_functions()
    if "p_act" in tokens:
        index = tokens.index("p_act")
        usage = _act_usage(model["m"]["m"].value)
        for rule in rules:
            warning = _method_warning(usage, rule.values[index], known)
            if warning:
                warnings.append(f"{rule.source}: {warning}")
    # p.obj given to a role function (g2(r.obj, p.obj)) names a group of paths, not a path.
    if "p_obj" in tokens and not re.search(r"\bg[0-9]*\([^)]*\bp_obj\b", model["m"]["m"].value):
        index = tokens.index("p_obj")
        warnings += [f"{r.source}: path pattern {r.values[index]!r} does not start with '/' "
                     "(it can never match a request path)" for r in rules
                     if not r.values[index].startswith(("/", "*", "^"))]
    return warnings


def lint_roles_and_denies(
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
    if "p_sub" not in tokens:  # custom field names (r = user, thing, action): nothing certain
        return []
    by_role = _sole_conjunct(matcher, "p_sub", "g(r_sub, p_sub)")
    by_method = _sole_conjunct(matcher, "p_act", "methodMatch(r_act, p_act)")
    # No sub field: rules whose subject is an eval()'d expression (Casbin's abac_rule).
    subjects = ({rule.values[tokens.index("p_sub")] for rule in rules} if "p_sub" in tokens
                else set())
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
    if "p_eft" not in tokens or "p_sub" not in tokens or re.search(r"\bp_eft\b", matcher):
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
