"""Which rules a request can match at all: the matcher's links from the request to rule fields.

When the matcher ties the request's subject to a rule field (``g(r.sub, p.sub)``, with domains
``g(r.sub, p.sub, r.dom)``, or ``r.sub == p.sub``) as the whole matcher or one top-level
operand of ``&&``, no rule matches unless its field names one of the request's subjects: rules
are indexed by that field, and a request evaluates only the lines of its subjects. When the
matcher also requires ``r.dom == p.dom``, rules are indexed by (subject, domain), so a role that
has rules in 10,000 tenants costs one tenant's rules. Under ``||`` or ``!`` a rule of any subject
can still match, so every rule is evaluated.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.policy.matcher import casbin_to_python
from gatekeeper.policy.rules import Rule


@dataclass(frozen=True, slots=True)
class IndexPlan:
    subject: int | None  # position of the rule field tied to the request's subject
    domain: int | None  # position of the rule field equal to the request's domain


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return [part for value in node.values for part in _conjuncts(value)]
    return [node]


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def plan_index(matcher: str, subject_field: str | None, domain_field: str | None,
               p_tokens: tuple[str, ...]) -> IndexPlan:
    """``subject_field``/``domain_field``: the r field (``r_sub``) fed by the subject/domain."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval").body
    except SyntaxError:
        return IndexPlan(None, None)
    subject: int | None = None
    domain: int | None = None
    for part in _conjuncts(tree):
        if isinstance(part, ast.Call) and _name(part.func) == "g" and not part.keywords:
            args = [_name(arg) for arg in part.args]
            if (len(args) in (2, 3) and subject_field is not None and args[0] == subject_field
                    and args[1] in p_tokens
                    and (len(args) == 2 or (domain_field is not None and args[2] == domain_field))):
                subject = p_tokens.index(str(args[1]))
        elif (isinstance(part, ast.Compare) and len(part.ops) == 1
              and isinstance(part.ops[0], ast.Eq)):
            pair = {_name(part.left), _name(part.comparators[0])}
            for field in p_tokens:
                if subject_field is not None and pair == {subject_field, field}:
                    subject = p_tokens.index(field) if subject is None else subject
                if domain_field is not None and pair == {domain_field, field}:
                    domain = p_tokens.index(field)
    return IndexPlan(subject, domain if subject is not None else None)


class RuleIndex:
    """The rules' positions by the field the plan ties to the request's subject (and domain);
    every rule when the plan ties none."""

    def __init__(self, plan: IndexPlan, rules: Sequence[Rule]) -> None:
        self.indexed = plan.subject is not None
        self._by_domain = plan.domain is not None
        self._by_key: dict[Any, list[int]] = {}
        for position, rule in enumerate(rules):
            key: Any = ""
            if plan.subject is not None:
                key = rule.values[plan.subject]
                if plan.domain is not None:
                    key = (key, rule.values[plan.domain])
            self._by_key.setdefault(key, []).append(position)
        self._all = list(range(len(rules)))

    def candidates(self, subjects: frozenset[str], domain: str | None) -> list[int]:
        """The positions of the rules that can match a request holding ``subjects``."""
        if not self.indexed:
            return self._all
        positions: list[int] = []
        for name in subjects:
            positions.extend(self._by_key.get((name, domain or "") if self._by_domain else name,
                                              ()))
        positions.sort()  # Casbin's order: the file's order
        return positions
