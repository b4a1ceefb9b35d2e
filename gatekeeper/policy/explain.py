"""Why a request is allowed or denied: the rules that matched, the effect that decided, the
subjects the caller held and where each came from, and for a deny the nearest rules that did
not match with the first matcher term that failed.

The rules' side is explain_rules.py, the subjects' side explain_subjects.py.

The verdict is never recomputed here: it is ``CompiledPolicy.decide``'s, taken the way the
proxy's ``PolicyAuthorizer`` takes it (anonymous callers only on ``public_paths``, a ``HEAD``
needing the ``GET``), so the explanation cannot disagree with the proxy. What is computed here
is the story around it, by evaluating the model's own matcher and its top-level terms on every
rule (``CompiledPolicy.explain_view``): slow next to a decision, and never on the request path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper.errors import BadRequest
from gatekeeper.paths import PathPatterns, canonical_path
from gatekeeper.policy.engine import CompiledPolicy, PolicyVerdict
from gatekeeper.policy.explain_rules import NEAREST, NearMiss, RuleMatch, matcher_terms, walk, written
from gatekeeper.policy.explain_subjects import Subject, g_sources, subjects_held
from gatekeeper.policy.inputs import NoDomain, read_client
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.subjects import ANONYMOUS_ROLE, NAMES_A_ROLE

__all__ = ["NEAREST", "ExplainRequest", "Explanation", "NearMiss", "RuleMatch", "Subject",
           "explain", "made_up_request"]

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
    effect = written(view.effect)
    meaning = _EFFECTS.get("".join(view.effect.split()), "Casbin's effect, as written")
    terms = tuple(written(t) for t in matcher_terms(view.matcher))
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
    subjects = subjects_held(view, subject if authenticated else None, request.roles,
                             g_sources(policy_file, view) if policy_file is not None else {})
    matched, nearest = walk(policy.rules, view, want_nearest=not verdict.allowed)
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


def _no_proxy(_address: str) -> bool:
    return False  # an explained request comes from its client, never through a trusted proxy
