"""Casbin's policy effect, settled over the rules a request can match, in the file's order.

The same walk as the stock Enforcer's, on fewer lines (index.py picks them): each rule's matcher
result feeds the effector until it settles the effect; a matcher that raises counts as a match
for a deny rule and as no match for any other, so a failure never switches a deny off. Given no
rules at all, Casbin evaluates the matcher once with empty rule fields, and so does this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from casbin.effect import Effector, effect_to_bool

from gatekeeper.policy.rules import PolicyVerdict, Rule, matched


def settle(effector: Any, rules: Sequence[Rule], candidates: Iterable[int],
           match: Callable[..., Any], request_values: tuple[Any, ...],
           eft_index: int | None, rule_width: int) -> PolicyVerdict:
    """``effector``: casbin's for the model's policy_effect; ``candidates``: positions in
    ``rules``; ``eft_index``: where a rule's effect sits (None: every rule allows);
    ``rule_width``: the number of rule fields."""
    effects: set[Effector] = set()
    # The rule named as the decider: the one at which the effect was settled, or, for an
    # allow settled only at the end (deny-override with no deny), a matching allow. Casbin's
    # explain names the last matching rule whatever its effect, so a deny that never
    # decides under some(where (p.eft == allow)) was named for a default deny.
    decided_by: int | None = None
    last_allow: int | None = None
    for position in candidates:
        rule = rules[position]
        try:
            result = matched(match(*request_values, *rule.values))
        except Exception:
            # A matcher function failing on odd input (a claim of another type, a missing
            # claim — Casbin's evaluator raises there): an allow rule does not apply, a deny
            # rule does — failing never switches a deny off.
            result = eft_index is not None and rule.values[eft_index] == "deny"
        if not result:
            effects.add(Effector.INDETERMINATE)
            continue
        if eft_index is None:
            effect = Effector.ALLOW
        else:
            eft = rule.values[eft_index]
            effect = (Effector.ALLOW if eft == "allow"
                      else Effector.DENY if eft == "deny" else Effector.INDETERMINATE)
        effects.add(effect)
        if effect == Effector.ALLOW:
            last_allow = position
        if effector.intermediate_effect(effects) != Effector.INDETERMINATE:
            decided_by = position
            break
    if not rules:
        # Casbin, given no rules at all, evaluates the matcher once with empty rule fields
        # (a matcher such as `… || r.sub == "root"` may still allow).
        try:
            empty = bool(match(*request_values, *("",) * rule_width))
        except Exception:
            empty = False
        effects.add(Effector.ALLOW if empty else Effector.INDETERMINATE)
    allowed = effect_to_bool(effector.final_effect(effects))
    if decided_by is None and allowed:
        decided_by = last_allow
    return PolicyVerdict(allowed, rules[decided_by] if decided_by is not None else None)
