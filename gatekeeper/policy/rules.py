"""The values a compiled policy is made of and answers with, and Casbin's reading of rule order
and matcher results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class ModelError(ValueError):
    """The model asks for something this engine cannot do as Casbin does; ``where`` when known."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True, slots=True)
class Rule:
    ptype: str
    values: tuple[str, ...]
    source: str  # "policy.csv:12"

    def __str__(self) -> str:
        return f"{self.source}: {self.ptype}, {', '.join(self.values)}"


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    allowed: bool
    rule: Rule | None  # the rule that decided; None for the default deny (no allow matched)
    refused: str | None = None  # a reason code when the request was refused before any rule

    @property
    def reason(self) -> str:
        if self.refused is not None:
            return self.refused
        if self.rule is None:
            return "no_matching_rule"
        return "policy_allow" if self.allowed else "policy_deny"


class MatcherResultError(TypeError):
    """The matcher gave something other than true/false or a number (Casbin raises too)."""


def matched(result: Any) -> bool:
    """Casbin's reading of a matcher's result: a bool as it is, a float when not 0, anything
    else an error (``a && keyGet(…)`` gives a string; pycasbin raises rather than guess)."""
    if isinstance(result, bool):
        return result
    if isinstance(result, float):
        return result != 0
    raise MatcherResultError(f"the matcher gave a {type(result).__name__}, not true/false")


def casbin_order(rules: Sequence[Rule], p_tokens: Sequence[str]) -> tuple[Rule, ...]:
    """File order, or Casbin's stable sort by a ``priority`` field (numbers as numbers), so
    that the first matching rule is the one Casbin would find first."""
    if "p_priority" not in p_tokens:
        return tuple(rules)
    index = p_tokens.index("p_priority")
    numeric = [rule.values[index].isdigit() for rule in rules]
    if all(numeric):
        return tuple(sorted(rules, key=lambda rule: int(rule.values[index])))
    if any(numeric):  # Casbin itself fails comparing a number with a word
        where = rules[numeric.index(False)].source
        raise ModelError("priority must be a whole number on every rule", where)
    return tuple(sorted(rules, key=lambda rule: rule.values[index]))
