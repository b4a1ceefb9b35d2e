"""A compiled Casbin policy: the stock semantics, evaluated only on the lines that can apply.

The stock pycasbin Enforcer walks every ``p`` line on a deny (~10 µs a line). Here the rules
are indexed by the subject they name (index.py): a request evaluates only the lines of its
subjects — the user, its token roles, ``role:authenticated``, and every role those inherit
through ``g`` lines (roles.py), in the request's domain when roles are per domain. Roles live
in their own name space (``role:<name>``, see subjects.py): a user subject that names a role is
refused before any rule is read. Effects (settled as Casbin does, effects.py), matcher
functions and rule order are Casbin's own, so the same model and policy files give the same
answers (checked against the stock Enforcer by the tests). Decisions are cached per (subjects,
method, path, and whatever else the model reads: domain, client address, claims, object
attributes) in a bounded LRU that lives and dies with this object, so a reload (a new object)
can never serve an old decision.

Token roles are links of the subject for this request only, never written into the role
graph; with role domains (``g = _, _, _``) they hold in the request's domain only, as if the
token had come with ``g, <subject>, role:<name>, <request domain>`` lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from casbin.effect import get_effector
from casbin.model import Model

from gatekeeper.lru import LRU
from gatekeeper.peers import IsTrusted
from gatekeeper.policy.attributes import NO_ATTRIBUTES, ObjectAttributes
from gatekeeper.policy.effects import settle
from gatekeeper.policy.expressions import bind_rule_expressions
from gatekeeper.policy.features import DOCS, unsupported
from gatekeeper.policy.index import RuleIndex, plan_index
from gatekeeper.policy.inputs import SOURCES, NoDomain, read_client, read_domain, request_sources
from gatekeeper.policy.matcher import ATTRIBUTES, MissingClaim, compile_calls, compile_matcher
from gatekeeper.policy.priority import HierarchyCycle, SubjectPriority
from gatekeeper.policy.roles import RoleLinks
from gatekeeper.policy.rules import ModelError, PolicyVerdict, Rule, casbin_order, matched
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import DomainSource
from gatekeeper.subjects import (
    ANONYMOUS_ROLE,
    AUTHENTICATED_ROLE,
    NAMES_A_ROLE,
    as_role,
    legacy_role_names,
    names_a_role,
)

ANONYMOUS_SUBJECT = ANONYMOUS_ROLE  # what an anonymous caller is, as the policy sees it
__all__ = ["ANONYMOUS_SUBJECT", "AUTHENTICATED_ROLE", "CompiledPolicy", "ModelError",
           "PolicyVerdict", "Rule"]


def _always(*_: Any) -> bool:
    return True


def _trust_nobody(_: str) -> bool:
    return False


class CompiledPolicy:
    """Immutable after construction, except for its own caches."""

    def __init__(
        self,
        model: Model,
        role_links: Mapping[str, RoleLinks],
        rules: Sequence[Rule],
        functions: Mapping[str, Callable[..., Any]],
        *,
        digest: str,
        cache_size: int = 65536,
        request_fields: Sequence[str] | None = None,
        domain: DomainSource | None = None,
        attributes: ObjectAttributes = NO_ATTRIBUTES,
    ) -> None:
        self.digest = digest
        self._r_tokens = tuple(t.removeprefix("r_") for t in model["r"]["r"].tokens)
        self._p_tokens = tuple(model["p"]["p"].tokens)
        self.sources = request_sources(self._r_tokens, request_fields)
        self._source_index = tuple(SOURCES.index(source) for source in self.sources)
        self.rules = casbin_order(rules, self._p_tokens)
        effect = model["e"]["e"].value
        try:
            self._effector = get_effector(effect)
        except RuntimeError:  # casbin's "unsupported effect", raised bare
            raise ModelError(f"policy_effect {effect!r} is not one Casbin supports (Casbin "
                             f"compares it as written; see {DOCS})") from None
        self._eft_index = self._p_tokens.index("p_eft") if "p_eft" in self._p_tokens else None
        self._links = dict(role_links)
        self._g = self._links.get("g")
        self._functions: dict[str, Callable[..., Any]] = dict(functions)
        for key, links in self._links.items():
            self._functions[key] = _has_link(links)
        self._role_keys = tuple(self._links)
        self._arities = {key: len(model["g"][key].tokens) for key in self._role_keys}
        self._priority = self._subject_priority(effect)
        self._domain_source = domain
        # The request's domain matters to a dom field, and to token roles when roles have one.
        self.reads_domain = "domain" in self.sources or (
            domain is not None and self._arities.get("g") == 3)
        if self.reads_domain and domain is None:
            raise ModelError("the model reads the request's domain (a request field fed by "
                             "'domain'): set policy.domain (claim, path_segment or host)")
        self.reads_client = "client" in self.sources
        self.uses_claims = "claims" in self.sources
        self._subject_field = self._field_of("subject")
        matcher = model["m"]["m"].value
        # The request fields, the object attributes' values (attributes.py), the rule fields.
        self._attributes = attributes
        self.reads_attributes = bool(attributes.attributes)  # r.obj.NAME: the query, the path…
        self._fields = (*(f"r_{t}" for t in self._r_tokens), ATTRIBUTES, *self._p_tokens)
        self._names = (self._subject_field or "r_sub", self._field_of("claims") or "r_claims",
                       self._field_of("path") or "r_obj")
        self._match, self._namespace = self._compile(matcher)
        bind_rule_expressions(matcher, self.rules, self._p_tokens,  # eval(p.rule), once a text
                              self._fields[:len(self._r_tokens) + 1], self._namespace,
                              self._arities, attributes.names, self._names)
        self._probes = compile_calls(matcher, self._fields, self._namespace, self._role_keys)
        plan = plan_index(matcher, self._subject_field, self._field_of("domain"), self._p_tokens)
        self._index = RuleIndex(plan, self.rules)
        self.indexed = self._index.indexed
        subject_at = plan.subject if plan.subject is not None else (
            self._p_tokens.index("p_sub") if "p_sub" in self._p_tokens else None)
        p_subjects = [rule.values[subject_at] for rule in self.rules] if subject_at is not None else []
        # Plain names this policy uses as roles: no user subject may be one (folded).
        self.role_names = legacy_role_names(
            p_subjects, sorted(self._g.role_names) if self._g is not None else [])
        self._cache: LRU[Any, PolicyVerdict] = LRU(cache_size)
        self._written = (matcher, effect)  # as the model writes them, for explain_view

    def _subject_priority(self, effect: str) -> SubjectPriority | None:
        """subjectPriority's ordering (priority.py), or None for any other effect."""
        if effect != "subjectPriority(p_eft) || deny":
            return None
        if self._arities.get("g", 2) != 2:
            raise ModelError(unsupported("subjectPriority with role domains",
                                         "the hierarchy would be ordered per domain"))
        try:
            return SubjectPriority(self._g.links() if self._g is not None else ())
        except HierarchyCycle as exc:
            raise ModelError(f"subjectPriority: {exc} (Casbin refuses it too)") from None

    def _compile(self, expression: str) -> tuple[Callable[..., Any], dict[str, Any]]:
        """The matcher, or a part of it (explain_view), over this policy's fields."""
        subject, claims, obj = self._names
        return compile_matcher(expression, self._fields, self._functions, self._arities,
                               subject, claims, attributes=self._attributes.names, obj=obj)

    def _field_of(self, source: str) -> str | None:
        return next((f"r_{t}" for t, s in zip(self._r_tokens, self.sources, strict=True)
                     if s == source), None)

    # -- the request's subjects -------------------------------------------------------
    def subjects(self, subject: str, roles: Sequence[str], authenticated: bool,
                 domain: str | None = None) -> frozenset[str]:
        """The subject, its token roles as ``role:<name>``, ``role:authenticated``, and all they
        inherit via ``g`` (in ``domain`` when roles are per domain); an anonymous caller is
        ``role:anonymous`` alone.

        An authenticated caller may also do what an anonymous one may (``role:anonymous`` rules
        are "everyone" rules): logging in never takes access away.
        """
        where = domain or ""
        if not authenticated:
            return frozenset(self._reach(ANONYMOUS_SUBJECT, where))
        found = set(self._reach(subject, where))
        if self.reads_domain and domain is None:
            return frozenset(found)  # the token's links hold in the request's domain only
        direct = [*(as_role(role) for role in roles), AUTHENTICATED_ROLE, ANONYMOUS_SUBJECT]
        # A stock enforcer holds these as links subject → role: one hop spent before the
        # role's own inheritance, within the same depth limit.
        if self._g is None:
            found.update(direct)
        else:
            found.update(self._g.within(direct, where, spent=1))
        return frozenset(found)

    @property
    def role_links(self) -> Mapping[str, tuple[str, ...]]:
        """Name → the roles its ``g`` lines give it directly, outside any domain (read-only;
        the policy page's who-can-access matrix and explain read it)."""
        return MappingProxyType(self._g.roles_of("") if self._g is not None else {})

    def _reach(self, name: str, domain: str) -> set[str]:
        return set(self._g.reach(name, domain)) if self._g is not None else {name}

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
        is_trusted: IsTrusted = _trust_nobody,
    ) -> PolicyVerdict:
        """``request``: the HTTP request being decided, for what a model reads beyond subject,
        path, method and claims (the host, the client address, its object attributes); None in
        a made-up decision. ``is_trusted``: the ``trusted_proxies`` test, for X-Forwarded-For/-Host."""
        claims = claims or {}
        domain = client = None
        if self.reads_domain:
            try:
                domain = self.request_domain(claims, path, request, is_trusted)
            except NoDomain as exc:
                return PolicyVerdict(False, None, refused=exc.code)  # never a crash or an allow
        if self.reads_client:
            client = read_client(request, is_trusted)
        attributes = self._attributes.read(path, method, request)  # () when the model has none
        if self.uses_claims and cache_key is None:
            # Claims decide too, and the caller gave no key standing for them: never share.
            return self._evaluate(subject, roles, method, path, authenticated, claims, domain,
                                  client, attributes)
        who = cache_key if self.uses_claims else (subject, tuple(roles), authenticated)
        key = (who, method, path, domain, client, attributes)  # every input the model reads
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        verdict = self._evaluate(subject, roles, method, path, authenticated, claims, domain,
                                 client, attributes)
        self._cache.put(key, verdict)
        return verdict

    def request_domain(self, claims: Mapping[str, Any], path: str, request: RequestView | None,
                       is_trusted: IsTrusted = _trust_nobody) -> str | None:
        """The request's domain (None when the model reads none); NoDomain when it has none."""
        if not self.reads_domain or self._domain_source is None:
            return None
        return read_domain(self._domain_source, claims, path, request, is_trusted)

    def _request_values(self, subject: str, path: str, method: str, domain: str | None,
                        claims: Mapping[str, Any], client: str | None) -> tuple[Any, ...]:
        given = (subject, path, method, domain or "", claims, client or "")  # SOURCES' order
        return tuple([given[index] for index in self._source_index])

    def _evaluate(
        self,
        subject: str,
        roles: Sequence[str],
        method: str,
        path: str,
        authenticated: bool,
        claims: Mapping[str, Any],
        domain: str | None,
        client: str | None,
        attributes: tuple[Any, ...] = (),
    ) -> PolicyVerdict:
        if not authenticated:
            subject = ANONYMOUS_SUBJECT
        elif names_a_role(subject, self.role_names):
            # A user called "admin" or "role:admin" must not act as that role (subjects.py).
            return PolicyVerdict(False, None, refused=NAMES_A_ROLE)
        subjects = self.subjects(subject, roles, authenticated, domain)
        request_values = (*self._request_values(subject, path, method, domain, claims, client),
                          attributes)
        self._namespace["g"] = self._request_g(subject, domain, subjects)
        candidates: Sequence[int] = self._index.candidates(subjects, domain)
        if self._priority is not None:
            held = ([as_role(role) for role in roles] + [AUTHENTICATED_ROLE, ANONYMOUS_SUBJECT]
                    if authenticated else [])
            ordered = self._priority.order(candidates, [r.values for r in self.rules], subject, held)
            if ordered is None:  # the token's roles close a cycle with the g lines: no order
                return PolicyVerdict(False, None, refused="role_cycle")
            candidates = ordered
        return settle(self._effector, self.rules, candidates, self._match, request_values,
                      self._eft_index, len(self._p_tokens))

    def _request_g(self, subject: str, domain: str | None,
                   subjects: frozenset[str]) -> Callable[..., bool]:
        """``g`` for this request: g(subject, X[, d]) holds for X among the request's subjects
        in d — its token roles only in the request's own domain."""
        links = self._g
        per_domain: dict[str, frozenset[str]] = {domain or "": subjects}

        def g(name1: str, name2: str, *rest: Any) -> bool:
            where = str(rest[0]) if rest else ""  # as Casbin's g: str() of the domain
            if name1 == subject:
                held = per_domain.get(where)
                if held is None:  # another domain: the subject's own g lines there, no token
                    held = per_domain[where] = frozenset(self._reach(subject, where))
                return name2 in held
            return links.has_link(name1, name2, where) if links is not None else name1 == name2

        return g

    def try_rule(self, rule: Rule | None, subject: str, method: str, path: str) -> bool:
        """Evaluate the matcher on one rule for a made-up request (load-time validation)."""
        request = self._request_values(subject, path, method, "", {}, "127.0.0.1")
        values = rule.values if rule is not None else ("",) * len(self._p_tokens)
        # Role checks pass here so that every other function in the matcher runs (validating
        # it, and compiling each rule's path pattern now rather than on a first request).
        saved = {key: self._namespace[key] for key in self._role_keys}
        self._namespace.update({key: _always for key in self._role_keys})
        try:
            result = self._match(*request, (), *values)
            return matched(result) if rule is not None else bool(result)
        except MissingClaim:
            return False  # a claim the made-up request lacks: the expression itself is fine
        finally:
            self._namespace.update(saved)

    def pattern_problem(self, rule: Rule) -> str | None:
        """A pattern of ``rule`` that a matcher function cannot compile, wherever the call sits
        in the matcher: Casbin raises on every request that reaches it (load-time check)."""
        request = (*self._request_values("", "/", "GET", "", {}, "127.0.0.1"), ())
        for name, probe in self._probes:
            try:
                probe(*request, *rule.values)
            except re.error as exc:
                return f"a pattern of this rule is not a valid expression for {name}() ({exc})"
            except Exception:  # noqa: S112 - other failures depend on the request: try_rule's job
                continue
        return None

    # -- explain (gatekeeper/policy/explain.py) reads the policy through this one method ----
    def explain_view(
        self, subject: str, roles: Sequence[str], method: str, path: str, *,
        authenticated: bool, claims: Mapping[str, Any], domain: str | None = None,
        client: str | None = None, request: RequestView | None = None,
    ) -> ExplainView:
        """The matcher, the role links and this request's fields as ``_evaluate`` sees them, with
        a function that evaluates any expression over the matcher's names (a part of the
        matcher) for this request and one rule. Slow (compiles per expression): never on the
        request path. Decisions still come from ``decide``."""
        if not authenticated:
            subject = ANONYMOUS_SUBJECT
        subjects = self.subjects(subject, roles, authenticated, domain)
        values = self._request_values(subject, path, method, domain, claims, client)
        attributes = self._attributes.read(path, method, request)  # r.obj.NAME, as decide reads
        g = self._request_g(subject, domain, subjects)  # as in _evaluate
        rule_expressions = self._namespace["_eval"]  # eval(p.rule): the compiled rule texts

        compiled: dict[str, Callable[..., Any]] = {}

        def evaluate(expression: str, rule: Rule | None) -> Any:
            if expression not in compiled:
                function, namespace = self._compile(expression)
                namespace.update(g=g, _eval=rule_expressions)
                compiled[expression] = function
            fields = rule.values if rule is not None else ("",) * len(self._p_tokens)
            self._namespace["g"] = g  # a rule's expression (eval) calls g too: as _evaluate
            return compiled[expression](*values, attributes, *fields)

        matcher, effect = self._written
        return ExplainView(matcher, effect, dict(zip(self._r_tokens, values, strict=True)),
                           tuple(t.removeprefix("p_") for t in self._p_tokens),
                           # the links in the request's tenant: a role held there shows there
                           MappingProxyType(self._g.roles_of(domain or "")) if self._g is not None
                           else MappingProxyType({}),
                           self._g.max_hops if self._g is not None else 0,
                           frozenset(subjects), evaluate, self._names[2].removeprefix("r_"),
                           dict(zip(self._attributes.names, attributes, strict=True)), domain)


def _has_link(links: RoleLinks) -> Callable[..., bool]:
    def has_link(name1: str, name2: str, *rest: Any) -> bool:
        return links.has_link(name1, name2, str(rest[0]) if rest else "")
    return has_link


@dataclass(frozen=True, slots=True)
class ExplainView:
    """What ``CompiledPolicy.explain_view`` returns (read by explain.py only)."""

    matcher: str  # as the model writes it
    effect: str
    request: Mapping[str, Any]  # request field (sub, obj, act, claims) -> its value
    rule_fields: tuple[str, ...]  # the policy_definition's fields, in order (sub, obj, act, eft)
    role_links: Mapping[str, tuple[str, ...]]  # member -> its roles, from the g lines
    max_hops: int
    subjects: frozenset[str]  # every name the request holds (CompiledPolicy.subjects)
    evaluate: Callable[[str, Rule | None], Any]  # an expression, on one rule; may raise
    object_field: str = "obj"  # the request field whose .NAME reads object_attributes
    object_attributes: Mapping[str, Any] = field(default_factory=dict)  # NAME -> value read
    domain: str | None = None  # the request's tenant, whose g links role_links holds
