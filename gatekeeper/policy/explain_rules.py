"""The rules side of an explanation (explain.py): which rules match a request, and for a deny
the nearest ones that do not, with the first top-level matcher term that failed and the values
it read. Evaluated with the model's own matcher on every rule (``CompiledPolicy.explain_view``)."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.policy.engine import ExplainView, Rule
from gatekeeper.policy.matcher import casbin_to_python
from gatekeeper.policy.query import AMBIGUOUS

NEAREST = 5  # rules shown for a deny
_WRITTEN = re.compile(r"\b([rp][0-9]*)_(?=[A-Za-z])")


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: str  # "policy.csv:12"
    text: str  # "p, role:viewer, /api/:project/items, GET|HEAD, allow"
    effect: str  # allow | deny | … (the rule's eft; allow in a model without one)

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "text": self.text, "effect": self.effect}


@dataclass(frozen=True, slots=True)
class NearMiss:
    rule: str
    text: str
    effect: str
    term: str  # the first top-level matcher term that failed, as the model writes it
    result: str  # "false", or "error: …" when the term raised
    values: tuple[tuple[str, Any], ...]  # what the term read: ("r.obj", "/x"), ("p.obj", "/a/*")
    held: int  # how many of the matcher's terms held: more is nearer

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "text": self.text, "effect": self.effect, "term": self.term,
                "result": self.result, "values": dict(self.values), "terms_held": self.held}


def walk(rules: Sequence[Rule], view: ExplainView, *, want_nearest: bool
         ) -> tuple[tuple[RuleMatch, ...], tuple[NearMiss, ...]]:
    eft = view.rule_fields.index("eft") if "eft" in view.rule_fields else None
    top_terms = matcher_terms(view.matcher)
    matched: list[RuleMatch] = []
    misses: list[tuple[tuple[int, bool, int], Rule, str, str]] = []
    for position, rule in enumerate(rules):
        effect = rule.values[eft] if eft is not None else "allow"
        if _matches(view, rule, effect):
            matched.append(RuleMatch(rule.source, _text(rule), effect))
        elif want_nearest and effect == "allow":
            found = _first_failure(view, rule, top_terms)
            if found is not None:
                # Nearest: the most terms held; then a rule where a term reading the path held
                # (the caller asked about this path: "you lack the role" beats "another
                # path"); then file order.
                term, outcome, held, path_held = found
                misses.append(((-held, not path_held, position), rule, term, outcome))
    misses.sort(key=lambda item: item[0])
    nearest = tuple(
        NearMiss(rule.source, _text(rule), "allow", written(term), outcome,
                 _values_read(term, view, rule), -rank[0])
        for rank, rule, term, outcome in misses[:NEAREST])
    return tuple(matched), nearest


def _text(rule: Rule) -> str:
    return f"{rule.ptype}, {', '.join(rule.values)}"


def _matches(view: ExplainView, rule: Rule, effect: str) -> bool:
    """The engine's reading of the whole matcher on one rule: true/false, a non-zero float; a
    failing evaluation fails an allow rule and applies a deny rule (never switches a deny off)."""
    try:
        result = view.evaluate(view.matcher, rule)
    except Exception:
        return effect == "deny"
    if isinstance(result, bool):
        return result
    return isinstance(result, float) and result != 0


def _first_failure(view: ExplainView, rule: Rule, terms: Sequence[str]
                   ) -> tuple[str, str, int, bool] | None:
    """(the first term that failed on ``rule``, how, how many terms held, whether a term
    reading the path held); None when every term held."""
    first: tuple[str, str] | None = None
    held, path_held = 0, False
    for term in terms:
        try:
            value = view.evaluate(term, rule)
        except Exception as exc:
            outcome = f"error: {type(exc).__name__}: {exc}"
        else:
            if value is True or (isinstance(value, float) and value != 0):
                held += 1
                path_held = path_held or re.search(r"\br_obj\b", term) is not None
                continue
            outcome = "false" if value is False else f"{value!r} (not true)"
        if first is None:
            first = (term, outcome)
    if first is None:  # every term held, yet the whole did not: not a near miss to show
        return None
    return first[0], first[1], held, path_held


def _values_read(term: str, view: ExplainView, rule: Rule) -> tuple[tuple[str, Any], ...]:
    """The request and rule fields ``term`` reads, with their values (``r.claims.tenant`` as
    the claim, or ``<missing>``)."""
    tree = ast.parse(casbin_to_python(term).strip(), mode="eval")
    read: dict[str, Any] = {}
    bases: set[int] = set()  # the r_obj of r_obj.Owner: read through its attribute, not itself
    for node in ast.walk(tree):  # breadth first: an attribute before the name it is taken of
        if id(node) in bases:
            continue
        name, attributes = _dotted(node)
        if name is None:
            continue
        if attributes:
            base = node
            while isinstance(base, ast.Attribute):
                base = base.value
            bases.add(id(base))
        prefix, _, field_name = name.partition("_")
        value: Any
        path = attributes
        if prefix == "r" and field_name == view.object_field and attributes:
            # r.obj.NAME: the object attribute the request carried (attributes.py)
            value = _attribute_value(view.object_attributes.get(attributes[0]))
            path = attributes[1:]
        elif prefix == "r" and field_name in view.request:
            value = view.request[field_name]
        elif prefix == "p" and field_name in view.rule_fields:
            value = rule.values[view.rule_fields.index(field_name)]
        else:
            continue
        for attribute in path:
            value = value.get(attribute, "<missing>") if isinstance(value, Mapping) else "<missing>"
        if isinstance(value, Mapping) and not attributes:
            continue  # the whole claims set: too much to print, nothing specific
        read[written(".".join((name, *attributes)))] = value
    return tuple(read.items())


def _attribute_value(value: Any) -> Any:
    if value is None:
        return "<missing>"
    if value is AMBIGUOUS:
        return "<ambiguous: frameworks read the query differently>"
    return value


def _dotted(node: ast.AST) -> tuple[str | None, tuple[str, ...]]:
    attributes: list[str] = []
    while isinstance(node, ast.Attribute):
        attributes.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name) and re.fullmatch(r"[rp]_[A-Za-z0-9_]+", node.id):
        return node.id, tuple(attributes)
    return None, ()


def matcher_terms(matcher: str) -> tuple[str, ...]:
    """The matcher's top-level ``&&`` operands, in the matcher's own syntax (``r_sub``)."""
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval").body
    except SyntaxError:
        return (matcher,)
    parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    return tuple(_casbin_syntax(ast.unparse(part)) for part in parts)


def _casbin_syntax(python: str) -> str:
    """``a and not b`` back to ``a && !b`` (outside string literals), so that a term can be
    compiled again by the matcher compiler and shown as a model would write it."""
    pieces = re.split(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""", python)
    for index in range(0, len(pieces), 2):
        text = re.sub(r"\band\b", "&&", pieces[index])
        text = re.sub(r"\bor\b", "||", text)
        pieces[index] = re.sub(r"\bnot\s+(?!in\b)", "!", text)
    return "".join(pieces)


def written(text: str) -> str:
    """``r_obj`` as the model writes it: ``r.obj``."""
    return _WRITTEN.sub(r"\1.", text)
