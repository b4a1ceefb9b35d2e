"""A compiled Casbin policy: the stock semantics, evaluated only on the lines that can apply.

The stock pycasbin Enforcer walks every ``p`` line on a deny (~10 µs a line). Here, when the
matcher ties the request subject to the rule subject (``g(r.sub, p.sub)`` or
``r.sub == p.sub``), rules are indexed by subject: a request evaluates only the lines of its
subjects — the user, its token roles, ``role:authenticated``, and every role those inherit
through ``g`` lines. Roles live in their own name space (``role:<name>``, see subjects.py): a
user subject that names a role is refused before any rule is read. Effects, matcher functions
and rule order are Casbin's own, so the same model and policy files give the same answers
(checked against the stock Enforcer by the tests). Decisions are cached per (subjects, method,
path) in a bounded LRU that lives and dies with this object, so a reload (a new object) can
never serve an old decision.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from casbin.effect import Effector, effect_to_bool, get_effector
from casbin.model import Model
from casbin.util import generate_g_function

from gatekeeper.lru import LRU
from gatekeeper.policy.attributes import NO_ATTRIBUTES, ObjectAttributes
from gatekeeper.policy.expressions import bind_rule_expressions
from gatekeeper.policy.features import DOCS, unsupported
from gatekeeper.policy.matcher import (
    ATTRIBUTES,
    MissingClaim,
    casbin_to_python,
    compile_calls,
    compile_matcher,
)
from gatekeeper.request import RequestView
from gatekeeper.subjects import (
    ANONYMOUS_ROLE,
    AUTHENTICATED_ROLE,
    NAMES_A_ROLE,
    as_role,
    legacy_role_names,
    names_a_role,
)

ANONYMOUS_SUBJECT = ANONYMOUS_ROLE  # what an anonymous caller is, as the policy sees it
__all__ = ["ANONYMOUS_SUBJECT", "AUTHENTICATED_ROLE", "REQUEST_FIELDS", "CompiledPolicy",
           "ModelError", "PolicyVerdict", "Rule", "subject_link_required"]
REQUEST_FIELDS = ("sub", "obj", "act", "claims")
_SUBJECT_LINKS = frozenset({"g(r_sub, p_sub)", "r_sub == p_sub", "p_sub == r_sub"})


class ModelError(ValueError):
    """The model asks for something this engine cannot do as Casbin does; ``where`` when known."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.where = where


def subject_link_required(matcher: str) -> bool:
    """True when no rule can match unless ``g(r.sub, p.sub)`` (or ``r.sub == p.sub``) holds.

    That is what makes indexing by subject exact: the link must be the whole matcher or one
    top-level operand of ``&&``. Under ``||`` or ``!`` (``g(…) && … || r.sub == "root"``) a rule
    of any subject can still match, so every rule must be evaluated.
    """
    try:
        tree = ast.parse(casbin_to_python(matcher).strip(), mode="eval").body
    except SyntaxError:
        return False
    return any(ast.unparse(part) in _SUBJECT_LINKS for part in _conjuncts(tree))


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return [part for value in node.values for part in _conjuncts(value)]
    return [node]


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


def _always(*_: Any) -> bool:
    return True


class CompiledPolicy:
    """Immutable after construction, except for its own decision cache."""

    def __init__(
        self,
        model: Model,
        role_managers: Mapping[str, Any],
        role_links: Mapping[str, Sequence[str]],
        rules: Sequence[Rule],
        functions: Mapping[str, Callable[..., Any]],
        *,
        digest: str,
        cache_size: int = 65536,
        attributes: ObjectAttributes = NO_ATTRIBUTES,
    ) -> None:
        self.digest = digest
        self._r_tokens = tuple(t.removeprefix("r_") for t in model["r"]["r"].tokens)
        self._p_tokens = tuple(model["p"]["p"].tokens)
        self.rules = _casbin_order(rules, self._p_tokens)
        effect = model["e"]["e"].value
        if effect == "subjectPriority(p_eft) || deny":
            raise ModelError(unsupported(
                "the policy effect subjectPriority(p.eft) || deny",
                "it orders rules by the role hierarchy, which token roles are not part of"))
        try:
            self._effector = get_effector(effect)
        except RuntimeError:  # casbin's "unsupported effect", raised bare
            raise ModelError(f"policy_effect {effect!r} is not one Casbin supports (Casbin "
                             f"compares it as written; see {DOCS})") from None
        self._eft_index = self._p_tokens.index("p_eft") if "p_eft" in self._p_tokens else None
        # name → its direct roles from the policy's `g` lines; read per request without
        # touching casbin's role manager (which would grow a node for every new subject).
        self._role_links = {name: tuple(roles) for name, roles in role_links.items()}
        self._functions: dict[str, Callable[..., Any]] = dict(functions)
        for key, rm in role_managers.items():
            self._functions[key] = generate_g_function(rm)
        self._role_keys = tuple(role_managers)
        # Casbin's role manager follows at most max_hierarchy_level - 1 links from a subject.
        level = getattr(role_managers.get("g"), "max_hierarchy_level", 10)
        self._max_hops = max(int(level) - 1, 0)
        matcher = model["m"]["m"].value
        # The request fields, the object attributes' values (attributes.py), the rule fields.
        self._attributes = attributes
        self._fields = (*(f"r_{t}" for t in self._r_tokens), ATTRIBUTES, *self._p_tokens)
        self._match, self._namespace = compile_matcher(matcher, self._fields, self._functions,
                                                       self._role_keys, attributes.names)
        bind_rule_expressions(matcher, self.rules, self._p_tokens,  # eval(p.rule), once a text
                              self._fields[:len(self._r_tokens) + 1], self._namespace,
                              self._role_keys, attributes.names)
        self._probes = compile_calls(matcher, self._fields, self._namespace, self._role_keys)
        self.indexed = "p_sub" in self._p_tokens and subject_link_required(matcher)
        self.uses_claims = "claims" in self._r_tokens
        self._by_subject: dict[str, list[int]] = {}
        for position, rule in enumerate(self.rules):
            subject = rule.values[self._p_tokens.index("p_sub")] if self.indexed else ""
            self._by_subject.setdefault(subject, []).append(position)
        self._all = list(range(len(self.rules)))
        p_subjects = ([rule.values[self._p_tokens.index("p_sub")] for rule in self.rules]
                      if "p_sub" in self._p_tokens else [])
        # Plain names this policy uses as roles: no user subject may be one (folded).
        self.role_names = legacy_role_names(
            p_subjects, [role for roles in self._role_links.values() for role in roles])
        self._implied: dict[str, dict[str, int]] = {}
        self._cache: LRU[Any, PolicyVerdict] = LRU(cache_size)

    # -- the request's subjects -------------------------------------------------------
    def subjects(self, subject: str, roles: Sequence[str], authenticated: bool) -> frozenset[str]:
        """The subject, its token roles as ``role:<name>``, ``role:authenticated``, and all they
        inherit via ``g``; an anonymous caller is ``role:anonymous`` alone.

        An authenticated caller may also do what an anonymous one may (``role:anonymous`` rules
        are "everyone" rules): logging in never takes access away.
        """
        if not authenticated:
            return frozenset(self._reach(ANONYMOUS_SUBJECT))
        found = set(self._reach(subject))
        direct = [as_role(role) for role in roles]
        direct += (AUTHENTICATED_ROLE, ANONYMOUS_SUBJECT)
        # A stock enforcer holds these as links subject → role: one hop spent before the
        # role's own inheritance, within the same depth limit.
        for name in direct:
            found.update(role for role, hops in self._reach(name).items() if hops < self._max_hops)
        return frozenset(found)

    def _reach(self, name: str) -> dict[str, int]:
        """Every role ``name`` holds through ``g`` lines, with the links it takes (at most the
        role manager's depth: deeper chains are not followed by Casbin either)."""
        known = self._implied.get(name)
        if known is None:
            known, frontier = {name: 0}, [name]
            for hops in range(1, self._max_hops + 1):
                reached: list[str] = []
                for current in frontier:
                    for role in self._role_links.get(current, ()):
                        if role not in known:
                            known[role] = hops
                            reached.append(role)
                if not reached:
                    break
                frontier = reached
            if len(self._implied) < 100_000:
                self._implied[name] = known
        return known

    # -- deciding -----------------------------------------------------------------------
    def decide(
        self,
        subject: str,
        roles: Sequence[str],
        method: str,
        path: str,
        *,
        authenticated: bool,
        claims: Mapping[str, Any] | None = None,
        cache_key: Any = None,
        request: RequestView | None = None,
    ) -> PolicyVerdict:
        """``request``: the HTTP request being decided, for what a model may read beyond
        subject, path, method and claims (its object attributes); None in a made-up decision."""
        attributes = self._attributes.read(path, method, request)  # () when the model has none
        if self.uses_claims and cache_key is None:
            # Claims decide too, and the caller gave no key standing for them: never share.
            return self._evaluate(subject, roles, method, path, authenticated, claims or {},
                                  attributes)
        key = (cache_key if self.uses_claims else (subject, tuple(roles), authenticated), method,
               path, attributes)  # every value the model reads is in the key
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        verdict = self._evaluate(subject, roles, method, path, authenticated, claims or {},
                                 attributes)
        self._cache.put(key, verdict)
        return verdict

    def _evaluate(
        self,
        subject: str,
        roles: Sequence[str],
        method: str,
        path: str,
        authenticated: bool,
        claims: Mapping[str, Any],
        attributes: tuple[Any, ...] = (),
    ) -> PolicyVerdict:
        if not authenticated:
            subject = ANONYMOUS_SUBJECT
        elif names_a_role(subject, self.role_names):
            # A user called "admin" or "role:admin" must not act as that role (subjects.py).
            return PolicyVerdict(False, None, refused=NAMES_A_ROLE)
        subjects = self.subjects(subject, roles, authenticated)
        request = {"sub": subject, "obj": path, "act": method, "claims": claims}
        request_values = (*(request[t] for t in self._r_tokens), attributes)
        # Per request, g(subject, X) holds for X among the request's subjects: the token's
        # roles are links for this request only, never written into the shared role manager.
        stock_g = self._functions.get("g")

        def g(name1: str, name2: str) -> bool:  # two arguments: domains are refused at load
            if name1 == subject:
                return name2 in subjects
            return bool(stock_g(name1, name2)) if stock_g else name1 == name2

        self._namespace["g"] = g
        match = self._match
        effects: set[Effector] = set()
        # The rule named as the decider: the one at which the effect was settled, or, for an
        # allow settled only at the end (deny-override with no deny), a matching allow. Casbin's
        # explain names the last matching rule whatever its effect, so a deny that never
        # decides under some(where (p.eft == allow)) was named for a default deny.
        decided_by: int | None = None
        last_allow: int | None = None
        for position in self._candidates(subjects):
            rule = self.rules[position]
            try:
                result = _matched(match(*request_values, *rule.values))
            except Exception:
                # A matcher function failing on odd input (a claim of another type, a missing
                # claim — Casbin's evaluator raises there): an allow rule does not apply, a deny
                # rule does — failing never switches a deny off.
                result = self._eft_index is not None and rule.values[self._eft_index] == "deny"
            if not result:
                effects.add(Effector.INDETERMINATE)
                continue
            if self._eft_index is None:
                effect = Effector.ALLOW
            else:
                eft = rule.values[self._eft_index]
                effect = (Effector.ALLOW if eft == "allow"
                          else Effector.DENY if eft == "deny" else Effector.INDETERMINATE)
            effects.add(effect)
            if effect == Effector.ALLOW:
                last_allow = position
            if self._effector.intermediate_effect(effects) != Effector.INDETERMINATE:
                decided_by = position
                break
        if not self.rules:
            # Casbin, given no rules at all, evaluates the matcher once with empty rule fields
            # (a matcher such as `… || r.sub == "root"` may still allow).
            try:
                empty = bool(match(*request_values, *("",) * len(self._p_tokens)))
            except Exception:
                empty = False
            effects.add(Effector.ALLOW if empty else Effector.INDETERMINATE)
        allowed = effect_to_bool(self._effector.final_effect(effects))
        if decided_by is None and allowed:
            decided_by = last_allow
        return PolicyVerdict(allowed, self.rules[decided_by] if decided_by is not None else None)

    def try_rule(self, rule: Rule | None, subject: str, method: str, path: str) -> bool:
        """Evaluate the matcher on one rule for a made-up request (load-time validation)."""
        request = {"sub": subject, "obj": path, "act": method, "claims": {}}
        values = rule.values if rule is not None else ("",) * len(self._p_tokens)
        # Role checks pass here so that every other function in the matcher runs (validating
        # it, and compiling each rule's path pattern now rather than on a first request).
        saved = {key: self._namespace[key] for key in self._role_keys}
        self._namespace.update({key: _always for key in self._role_keys})
        try:
            result = self._match(*(request[t] for t in self._r_tokens), (), *values)
            return _matched(result) if rule is not None else bool(result)
        except MissingClaim:
            return False  # a claim the made-up request lacks: the expression itself is fine
        finally:
            self._namespace.update(saved)

    def pattern_problem(self, rule: Rule) -> str | None:
        """A pattern of ``rule`` that a matcher function cannot compile, wherever the call sits
        in the matcher: Casbin raises on every request that reaches it (load-time check)."""
        made_up: dict[str, Any] = {"sub": "", "obj": "/", "act": "GET", "claims": {}}
        request = (*(made_up[t] for t in self._r_tokens), ())
        for name, probe in self._probes:
            try:
                probe(*request, *rule.values)
            except re.error as exc:
                return f"a pattern of this rule is not a valid expression for {name}() ({exc})"
            except Exception:  # noqa: S112 - other failures depend on the request: try_rule's job
                continue
        return None

    def _candidates(self, subjects: frozenset[str]) -> list[int]:
        if not self.indexed:
            return self._all
        positions: list[int] = []
        for name in subjects:
            positions.extend(self._by_subject.get(name, ()))
        positions.sort()  # Casbin's order: the file's order
        return positions


class MatcherResultError(TypeError):
    """The matcher gave something other than true/false or a number (Casbin raises too)."""


def _matched(result: Any) -> bool:
    """Casbin's reading of a matcher's result: a bool as it is, a float when not 0, anything
    else an error (``a && keyGet(…)`` gives a string; pycasbin raises rather than guess)."""
    if isinstance(result, bool):
        return result
    if isinstance(result, float):
        return result != 0
    raise MatcherResultError(f"the matcher gave a {type(result).__name__}, not true/false")


def _casbin_order(rules: Sequence[Rule], p_tokens: Sequence[str]) -> tuple[Rule, ...]:
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
