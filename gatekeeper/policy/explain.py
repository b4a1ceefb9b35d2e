"""Why a request is allowed or denied: the rules that matched, the effect that decided, the
subjects the caller held and where each came from, and for a deny the nearest rules that did
not match with the first matcher term that failed.

The verdict is never recomputed here: it is ``CompiledPolicy.decide``'s, taken the way the
proxy's ``PolicyAuthorizer`` takes it (anonymous callers only on ``public_paths``, a ``HEAD``
needing the ``GET``), so the explanation cannot disagree with the proxy. What is computed here
is the story around it, by evaluating the model's own matcher and its top-level terms on every
rule (``CompiledPolicy.explain_view``): slow next to a decision, and never on the request path.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casbin.persist.adapter import _extract_tokens

from gatekeeper.errors import BadRequest
from gatekeeper.paths import PathPatterns, canonical_path
from gatekeeper.policy.engine import CompiledPolicy, ExplainView, PolicyVerdict, Rule
from gatekeeper.policy.inputs import NoDomain, read_client
from gatekeeper.policy.matcher import casbin_to_python
from gatekeeper.policy.query import AMBIGUOUS
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.subjects import ANONYMOUS_ROLE, AUTHENTICATED_ROLE, NAMES_A_ROLE, as_role

NEAREST = 5  # rules shown for a deny
_WRITTEN = re.compile(r"\b([rp][0-9]*)_(?=[A-Za-z])")

# What each effect Casbin knows means, in one sentence (keyed by the effect without spaces).
_EFFECTS = {
    "some(where(p_eft==allow))": "allowed when a matching rule allows",
    "some(where(p_eft==allow))&&!some(where(p_eft==deny))":
        "allowed when a matching rule allows and none denies (a deny wins over every allow)",
    "!some(where(p_eft==deny))": "allowed unless a matching rule denies",
    "priority(p_eft)||deny": "the first matching rule, in priority order, decides",
}


@dataclass(frozen=True, slots=True)
class ExplainRequest:
    """One request, as the proxy would see it: ``sub`` None is an anonymous caller.

    ``roles`` are every role the token grants — its roles claims already read (the CLI and the
    policy page add ``tokens.claims.roles_from_claims(claims, settings.auth.roles_claims)``);
    ``sub`` is the subject as the proxy names it (issuer prefix included). ``path`` is the
    target as sent: it is made canonical, ``method`` upper-cased; its query is read only for
    the object attributes a model declares (``r.obj.NAME``, attributes.py), as the proxy reads it.
    """

    method: str
    path: str
    sub: str | None = None
    roles: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    host: str = "localhost"  # the Host header: a tenant by host reads it
    client: str = "127.0.0.1"  # the client address: ipMatch reads it

    @classmethod
    def from_principal(cls, principal: Principal, method: str, path: str, *,
                       host: str = "localhost", client: str = "127.0.0.1") -> ExplainRequest:
        if principal.via == "anonymous":
            return cls(method, path, host=host, client=client)
        return cls(method, path, principal.subject, tuple(principal.roles), principal.claims,
                   host=host, client=client)


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    via: str  # token subject | token role | role:authenticated | role:anonymous | g line F:N
    chain: tuple[str, ...]  # from what the token gave to this name, through g lines

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "via": self.via, "chain": list(self.chain)}


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


@dataclass(frozen=True, slots=True)
class Explanation:
    allowed: bool
    reason: str  # the proxy's verdict reason (policy_allow, no_matching_rule, no_credentials…)
    decided_by: str | None  # "policy.csv:12", or None when no rule decided
    effect: str  # the model's policy_effect, as written
    effect_meaning: str
    method: str  # the method whose decision this is (GET when a HEAD needed it)
    path: str  # the canonical path decided
    subjects: tuple[Subject, ...]
    matched: tuple[RuleMatch, ...]
    nearest: tuple[NearMiss, ...]
    terms: tuple[str, ...]  # the matcher's top-level terms, as written
    notes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed, "reason": self.reason, "decided_by": self.decided_by,
            "effect": self.effect, "effect_meaning": self.effect_meaning,
            "method": self.method, "path": self.path,
            "subjects": [s.as_json() for s in self.subjects],
            "matched": [m.as_json() for m in self.matched],
            "nearest": [n.as_json() for n in self.nearest],
            "terms": list(self.terms), "notes": list(self.notes),
        }


def explain(
    policy: CompiledPolicy,
    request: ExplainRequest,
    *,
    public_paths: PathPatterns | Iterable[str] = (),
    policy_file: Path | None = None,
) -> Explanation:
    """Explain ``request`` under ``policy``, with the proxy's ``public_paths``. ``policy_file``
    (the file the policy was loaded from) names the ``g`` line behind each inherited role."""
    public = public_paths if isinstance(public_paths, PathPatterns) else PathPatterns(public_paths)
    method = request.method.upper()
    authenticated = request.sub is not None
    subject = request.sub if request.sub is not None else ANONYMOUS_ROLE
    claims = dict(request.claims)
    if request.sub is not None:
        claims.setdefault("sub", request.sub)  # a token's sub claim is its subject
    view = policy.explain_view(subject, request.roles, method, "/", authenticated=authenticated,
                               claims=claims)
    effect = _written(view.effect)
    meaning = _EFFECTS.get("".join(view.effect.split()), "Casbin's effect, as written")
    terms = tuple(_written(t) for t in _terms(view.matcher))
    try:
        path = canonical_path(request.path.partition("?")[0].encode("utf-8"))
    except BadRequest as exc:
        return Explanation(False, exc.code, None, effect, meaning, method, request.path, (), (),
                           (), terms, (f"400 {exc.description}: the proxy refuses this target "
                                       "before any policy is read",))
    notes: list[str] = []
    if path != request.path:
        notes.append(f"the path decided is the canonical form of {request.path!r}")
    if not authenticated and path not in public:
        notes.append("anonymous callers are considered only on public_paths: the proxy "
                     "answers 401 (log in) without reading the policy")
        return Explanation(False, "no_credentials", None, effect, meaning, method, path, (), (),
                           (), terms, tuple(notes))
    http = _request_view(method, path, request)
    verdict = _decide(policy, subject, request.roles, method, path, authenticated, claims, http)
    decided = method
    if verdict.allowed and method == "HEAD":  # as PolicyAuthorizer: the app runs GET for HEAD
        get = _decide(policy, subject, request.roles, "GET", path, authenticated, claims, http)
        if not get.allowed:
            verdict, decided = get, "GET"
            notes.append("the HEAD is allowed, but a HEAD needs the GET too (the app runs the "
                         "GET handler for it), and the GET is denied: what follows is the GET")
    try:  # the tenant a rule and the token's roles are read in, as decide found it
        domain = policy.request_domain(claims, path, http)
    except NoDomain:
        domain = None  # refused before any rule: verdict.refused says why, below
    client = read_client(http, _no_proxy) if policy.reads_client else None
    view = policy.explain_view(subject, request.roles, decided, path,
                               authenticated=authenticated, claims=claims, domain=domain,
                               client=client, request=http)
    decided_by = verdict.rule.source if verdict.rule is not None else None
    if verdict.refused is not None:
        why = (" (a user's subject may not read as a role: docs/policies.md, 'Users and roles "
               "never share a name')" if verdict.refused == NAMES_A_ROLE else "")
        notes.append(f"refused before any rule is read: {verdict.refused}{why}")
        return Explanation(False, verdict.reason, None, effect, meaning, decided, path, (), (),
                           (), terms, tuple(notes))
    subjects = _subjects(view, subject if authenticated else None, request.roles,
                         _g_sources(policy_file, view) if policy_file is not None else {})
    matched, nearest = _walk(policy.rules, view, want_nearest=not verdict.allowed)
    return Explanation(verdict.allowed, verdict.reason, decided_by, effect, meaning, decided,
                       path, subjects, matched, nearest, terms, tuple(notes))


def _decide(policy: CompiledPolicy, subject: str, roles: Sequence[str], method: str, path: str,
            authenticated: bool, claims: Mapping[str, Any],
            http: RequestView | None) -> PolicyVerdict:
    # No cache key: uncached where claims decide, as a request that shares no token would be.
    return policy.decide(subject, roles, method, path, authenticated=authenticated,
                         claims=claims, request=http)


def _request_view(method: str, path: str, request: ExplainRequest) -> RequestView:
    return made_up_request(method, path, request.path, host=request.host, client=request.client)


def made_up_request(method: str, path: str, target: str, *, host: str = "localhost",
                    client: str = "127.0.0.1") -> RequestView:
    """A request as the proxy's pipeline hands it to the policy, for the tools that decide one
    without a client (policy test, explain, the policy page): the target's query (the model's
    object attributes, ``r.obj.Owner = query owner``), the Host (a tenant by host) and the
    client address (ipMatch). No forwarded headers: such a request comes straight from its
    client, so X-Forwarded-Host/-For are not read (as from an untrusted peer)."""
    raw_path, _, query = target.encode("utf-8").partition(b"?")
    return RequestView({"method": method, "raw_path": raw_path, "path": path,
                        "query_string": query, "headers": [(b"host", host.encode())],
                        "client": (client, 0)}, path)


# ---------------------------------------------------------------- subjects


def _subjects(view: ExplainView, subject: str | None, roles: Sequence[str],
              sources: Mapping[tuple[str, str], str]) -> tuple[Subject, ...]:
    """Each name the request holds, reached first from what the token gave (a breadth-first
    walk of the g links: the shortest chain). The set is the engine's own."""
    given: list[tuple[str, str]] = []
    if subject is not None:
        given.append((subject, "token subject"))
        given += [(as_role(role), "token role") for role in roles]
        given.append((AUTHENTICATED_ROLE, "role:authenticated"))
    given.append((ANONYMOUS_ROLE, "role:anonymous"))
    found: dict[str, Subject] = {}
    frontier: list[Subject] = []
    for name, via in given:
        if name not in found and name in view.subjects:
            found[name] = Subject(name, via, (name,))
            frontier.append(found[name])
    while frontier:
        reached: list[Subject] = []
        for held in frontier:
            for role in view.role_links.get(held.name, ()):
                if role in found or role not in view.subjects:
                    continue
                where = sources.get((held.name, role))
                found[role] = Subject(role, f"g line {where}" if where else "g line",
                                      (*held.chain, role))
                reached.append(found[role])
        frontier = reached
    return tuple(found.values())


def _g_sources(policy_file: Path, view: ExplainView) -> dict[tuple[str, str], str]:
    """(member, role) -> "policy.csv:7", read from the file; nothing when the file no longer
    holds the loaded links (changed since the load: a wrong line is worse than none)."""
    try:
        with policy_file.open(encoding="utf-8", newline="") as file:  # as the loader reads it
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return {}
    sources: dict[tuple[str, str], str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):  # as the loader numbers lines
        line = raw.strip()
        if not line.startswith("g"):
            continue
        try:
            tokens = _extract_tokens(line)
        except IndexError:
            continue
        if len(tokens) == 3 and tokens[0] == "g":
            sources.setdefault((tokens[1], tokens[2]), f"{policy_file.name}:{number}")
    loaded = {(member, role) for member, held in view.role_links.items() for role in held}
    return sources if set(sources) == loaded else {}


# ---------------------------------------------------------------- rules


def _walk(rules: Sequence[Rule], view: ExplainView, *, want_nearest: bool
          ) -> tuple[tuple[RuleMatch, ...], tuple[NearMiss, ...]]:
    eft = view.rule_fields.index("eft") if "eft" in view.rule_fields else None
    terms = _terms(view.matcher)
    matched: list[RuleMatch] = []
    misses: list[tuple[tuple[int, bool, int], Rule, str, str]] = []
    for position, rule in enumerate(rules):
        effect = rule.values[eft] if eft is not None else "allow"
        if _matches(view, rule, effect):
            matched.append(RuleMatch(rule.source, _text(rule), effect))
        elif want_nearest and effect == "allow":
            found = _first_failure(view, rule, terms)
            if found is not None:
                # Nearest: the most terms held; then a rule where a term reading the path held
                # (the caller asked about this path: "you lack the role" beats "another
                # path"); then file order.
                term, outcome, held, path_held = found
                misses.append(((-held, not path_held, position), rule, term, outcome))
    misses.sort(key=lambda item: item[0])
    nearest = tuple(
        NearMiss(rule.source, _text(rule), "allow", _written(term), outcome,
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
        read[_written(".".join((name, *attributes)))] = value
    return tuple(read.items())


def _no_proxy(_address: str) -> bool:
    return False  # an explained request comes from its client, never through a trusted proxy


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


def _terms(matcher: str) -> tuple[str, ...]:
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


def _written(text: str) -> str:
    """``r_obj`` as the model writes it: ``r.obj``."""
    return _WRITTEN.sub(r"\1.", text)
