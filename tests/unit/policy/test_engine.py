"""The compiled policy engine: the stock pycasbin Enforcer's answers, faster, with no leaks.

The heart of this module is an equivalence check: for randomly generated policies and requests,
``CompiledPolicy.decide`` must give the same answer (and name the same deciding rule) as a stock
``casbin.Enforcer`` that is told the same per-request facts — one ``g`` link from the subject
to each token role as ``role:NAME``, plus ``role:authenticated`` and ``role:anonymous`` for a
logged-in caller (an anonymous caller is the subject ``role:anonymous``). The
generator is seeded: a failure prints the seed, the policy and the request, and reproduces.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import textwrap
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
import pytest
from casbin.util import builtin_operators as casbin_ops
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.authz import PolicyAuthorizer, PublicPaths
from gatekeeper.metrics import Metrics
from gatekeeper.policy.engine import CompiledPolicy, PolicyVerdict
from gatekeeper.policy.functions import (
    key_match2,
    key_match3,
    key_match5,
    matcher_functions,
    method_match,
)
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.policy.reload import PolicyHolder
from gatekeeper.principal import Principal
from gatekeeper.subjects import ANONYMOUS_ROLE, AUTHENTICATED_ROLE, as_role
from tests.support.fakes import run
from tests.support.paths import ROOT
from tests.support.policy import casbin_quiet

DEFAULT_MODEL = ROOT / "policies" / "model.conf"

RBAC_MATCHER = "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)"
DENY_WINS = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"
ALLOW_WINS = "some(where (p.eft == allow))"


def model_text(*, effect: str = DENY_WINS, matcher: str = RBAC_MATCHER,
               policy: str = "sub, obj, act, eft", request: str = "sub, obj, act") -> str:
    return textwrap.dedent(f"""\
        [request_definition]
        r = {request}

        [policy_definition]
        p = {policy}

        [role_definition]
        g = _, _

        [policy_effect]
        e = {effect}

        [matchers]
        m = {matcher}
        """)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def compiled(tmp_path: Path, model: str, policy: str, **kwargs: Any) -> CompiledPolicy:
    return load_policy(write(tmp_path, "model.conf", model), write(tmp_path, "policy.csv", policy),
                       **kwargs).policy


# ------------------------------------------------------------------ the stock reference
class StockReference:
    """A stock Enforcer over the same files; per-request facts added as g links, then removed."""

    def __init__(self, model_path: Path, policy_path: Path) -> None:
        self.enforcer = casbin.Enforcer(str(model_path), str(policy_path))
        self.enforcer.enable_auto_save(False)
        self.enforcer.add_function("methodMatch", method_match)

    @contextmanager
    def caller(self, subject: str, roles: Sequence[str], authenticated: bool) -> Iterator[None]:
        """The request's facts as g links while the block runs."""
        links = [(subject, as_role(role)) for role in roles]
        if authenticated:
            links += [(subject, AUTHENTICATED_ROLE), (subject, ANONYMOUS_ROLE)]
        # Only the links added here are taken away again: a link that is also a g line of the
        # file must stay.
        added = [link for link in dict.fromkeys(links) if self.enforcer.add_grouping_policy(*link)]
        try:
            yield
        finally:
            for link in added:
                self.enforcer.remove_grouping_policy(*link)

    def decide(self, subject: str, method: str, path: str) -> tuple[bool, list[str]]:
        allowed, rule = self.enforcer.enforce_ex(subject, path, method)
        return bool(allowed), list(rule)

    def enforce(self, subject: str, roles: Sequence[str], authenticated: bool, method: str,
                path: str) -> tuple[bool, list[str]]:
        with self.caller(subject, roles, authenticated):
            return self.decide(subject, method, path)


@pytest.fixture(autouse=True, scope="module")
def quiet_casbin() -> Iterator[None]:
    """The stock Enforcer logs every decision; thousands of lines only slow the test down."""
    with casbin_quiet():
        yield


# ------------------------------------------------------------------ generated policies
USERS = ["alice", "bob", "carol", "dave", "root"]
ROLE_NAMES = ["admin", "editor", "viewer", "ops", "guest", "auditor"]  # as tokens carry them
ROLES = [as_role(name) for name in ROLE_NAMES]  # as the policy names them
SPECIAL = [AUTHENTICATED_ROLE, ANONYMOUS_ROLE]
PATTERNS = ["/a/:id", "/a/*", "/a/b", "/a/:id/c", "/b/*", "/*", "/a", "/b/:x/:y", "*", "/a/b/*",
            "/a/:id/*", "/", "/c/d.json", "/a/:id/c/*", "/:x", "/a/", "/a/:id/", "/a-b/:id",
            "/a/b:c", "/a/:id-x", "/ab/*", "/a/:id/:z"]
REGEX_PATTERNS = ["^/a/.*$", "/a/[0-9]+$", "/a", "^/b/[^/]+/[^/]+$", ".*", "^/c/d\\.json$",
                  "/a/(b|1)/c", "^/$"]
METHOD_SPECS = ["GET", "GET|POST", "*", "POST", "DELETE|PUT", "get|head", "GET|HEAD|OPTIONS"]
PATHS = ["/a", "/a/", "/a/1", "/a/b", "/a/b/c", "/a/1/c", "/a/1/c/", "/a/1/c/d", "/b", "/b/",
         "/b/1/2", "/b/x", "/c", "/", "/c/d.json", "/c/dxjson", "/a//c", "/a/b/", "/A/b",
         "/a-b/1", "/a/b:c", "/a/x:y", "/ab/x", "/abc/x", "/a/1-x", "/a/1/2", "/a/%2e"]
METHODS = ["GET", "POST", "DELETE", "PUT", "HEAD", "OPTIONS", "get", "Post"]


@dataclass(frozen=True)
class Caller:
    subject: str
    roles: tuple[str, ...]
    authenticated: bool


def generate_policy(rng: random.Random, *, priority: bool = False,
                    subject_patterns: bool = False, patterns: Sequence[str] = PATTERNS) -> str:
    lines: list[str] = []
    for _ in range(rng.randint(0, 8)):
        if rng.random() < 0.4:
            lines.append(f"g, {rng.choice(USERS)}, {rng.choice(ROLES + SPECIAL)}")
        else:  # role → role; cycles happen, and both sides must survive them
            lines.append(f"g, {rng.choice(ROLES)}, {rng.choice(ROLES + SPECIAL)}")
    subjects = [*USERS, *USERS, "erin", *ROLES, *SPECIAL]  # users twice: r.sub == p.sub needs them
    if subject_patterns:
        subjects += ["a*", "*", "ro*", "/x"]
    for _ in range(rng.randint(0, 14)):
        # (an effect other than allow/deny is refused at load: see test_casbin_conformance)
        effect = rng.choices(["allow", "deny"], weights=[6, 3])[0]
        fields = [rng.choice(subjects), rng.choice(patterns), rng.choice(METHOD_SPECS), effect]
        if priority:
            fields.insert(0, str(rng.randint(1, 5)))
        lines.append("p, " + ", ".join(fields))
    rng.shuffle(lines)
    return "\n".join(lines) + "\n"


def pick_path(rng: random.Random, policy_text: str) -> str:
    """A path from the list, or one made to fit a keyMatch2 pattern of the policy (so that
    rules match often enough for both answers to be exercised)."""
    patterns = [line.split(", ")[-3] for line in policy_text.splitlines() if line.startswith("p,")]
    if not patterns or rng.random() < 0.5:
        return rng.choice(PATHS)
    pattern = rng.choice(patterns)
    segments = ["1" if part.startswith(":") else rng.choice(["x", "x/y", ""]) if part == "*"
                else part for part in pattern.split("/")]
    return "/".join(segments) or "/"


def generate_caller(rng: random.Random) -> Caller:
    if rng.random() < 0.15:
        return Caller(ANONYMOUS_ROLE, (), False)
    roles = tuple(rng.sample([*ROLE_NAMES, "stranger"], rng.randint(0, 3)))
    return Caller(rng.choice([*USERS, "erin"]), roles, True)


@dataclass(frozen=True)
class Flavour:
    name: str
    model: str
    indexed: bool
    priority: bool = False
    subject_patterns: bool = False
    patterns: tuple[str, ...] = tuple(PATTERNS)


FLAVOURS = [
    Flavour("the shipped model (a deny wins)", DEFAULT_MODEL.read_text(), indexed=True),
    Flavour("an allow wins", model_text(effect=ALLOW_WINS), indexed=True),
    Flavour("deny unless a deny matches", model_text(effect="!some(where (p.eft == deny))"),
            indexed=True),
    Flavour("the first matching rule by priority decides",
            model_text(effect="priority(p.eft) || deny", policy="priority, sub, obj, act, eft"),
            indexed=True, priority=True),
    Flavour("r.sub == p.sub ties subjects without roles",
            model_text(matcher="r.sub == p.sub && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)"),
            indexed=True),
    Flavour("subjects as keyMatch patterns (no index)",
            model_text(effect=ALLOW_WINS,
                       matcher="keyMatch(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && "
                               "methodMatch(r.act, p.act)"),
            indexed=False, subject_patterns=True),
    Flavour("regexMatch paths",
            model_text(matcher="g(r.sub, p.sub) && regexMatch(r.obj, p.obj) && methodMatch(r.act, p.act)"),
            indexed=True, patterns=tuple(REGEX_PATTERNS)),
    Flavour("a superuser alternative after || (no index)",
            model_text(matcher=f"{RBAC_MATCHER} || r.sub == \"root\""), indexed=False),
    Flavour("a negated subject link (no index)",
            model_text(effect=ALLOW_WINS,
                       matcher="!g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && "
                               "methodMatch(r.act, p.act)"),
            indexed=False),
]
POLICIES_PER_FLAVOUR = 50
CALLERS_PER_POLICY = 6
REQUESTS_PER_CALLER = 8


@pytest.mark.parametrize("flavour", FLAVOURS, ids=[f.name for f in FLAVOURS])
def test_decisions_equal_the_stock_enforcer_on_generated_policies(
    flavour: Flavour, tmp_path: Path
) -> None:
    model_path = write(tmp_path, "model.conf", flavour.model)
    policy_path = tmp_path / "policy.csv"
    seed = int(os.environ.get("POLICY_EQUIVALENCE_SEED", "20261126"))
    rng = random.Random(f"{seed}:{flavour.name}")
    outcomes: Counter[str] = Counter()
    refused = 0
    for case in range(POLICIES_PER_FLAVOUR):
        policy_text = generate_policy(rng, priority=flavour.priority,
                                      subject_patterns=flavour.subject_patterns,
                                      patterns=flavour.patterns)
        policy_path.write_text(policy_text)
        duplicates = len(set(policy_text.splitlines())) < len(policy_text.splitlines())
        ours = load_policy(model_path, policy_path).policy
        assert ours.indexed is flavour.indexed
        stock = StockReference(model_path, policy_path)
        for _ in range(CALLERS_PER_POLICY):
            caller = generate_caller(rng)
            with stock.caller(caller.subject, caller.roles, caller.authenticated):
                for _ in range(REQUESTS_PER_CALLER):
                    method, path = rng.choice(METHODS), pick_path(rng, policy_text)
                    verdict = ours.decide(caller.subject, caller.roles, method, path,
                                          authenticated=caller.authenticated)
                    if verdict.refused is not None:
                        # A policy without role: names: its plain rule subjects are role names,
                        # refused as users before Casbin's semantics apply (subjects.py).
                        assert (verdict.allowed, verdict.refused) == (False, "subject_names_a_role")
                        assert not any(line.startswith("role:") for line in policy_text.split(", "))
                        refused += 1
                        continue
                    expected, explained = stock.decide(caller.subject, method, path)
                    context = (f"seed {seed}, policy #{case}:\n{policy_text}\n"
                               f"{caller}, {method} {path}")
                    assert verdict.allowed is expected, context
                    if not duplicates:  # Casbin keeps repeated lines; the loader drops them
                        ours_explained = list(verdict.rule.values) if verdict.rule else []
                        if not expected and f"e = {ALLOW_WINS}\n" in flavour.model:
                            # Casbin names the last matching rule, but under allow-wins a
                            # deny decides nothing: a denial there is the default deny.
                            explained = []
                        assert ours_explained == explained, context
                    outcomes["allow" if expected else "deny"] += 1
                    outcomes["a rule decided" if explained else "no rule matched"] += 1
    # The generator must exercise both answers, or the comparison proves little.
    total = POLICIES_PER_FLAVOUR * CALLERS_PER_POLICY * REQUESTS_PER_CALLER
    assert min(outcomes.values()) > total // 50, outcomes
    assert refused < total // 5, refused


# ------------------------------------------------------------------ indexing
def counting(calls: Counter[str]) -> dict[str, Callable[..., Any]]:
    """The stock matcher functions, each counting its calls."""
    def wrap(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            calls[name] += 1
            return function(*args)
        return counted
    return {name: wrap(name, function) for name, function in matcher_functions().items()}


def big_policy(rules_for_others: int) -> str:
    lines = ["g, bob, role:viewer", "p, role:viewer, /docs/*, GET, allow",
             "p, bob, /own/:id, GET, allow"]
    lines += [f"p, user{i}, /u/{i}/*, GET, allow" for i in range(rules_for_others)]
    return "\n".join(lines) + "\n"


def test_the_default_model_evaluates_only_the_rules_of_the_callers_subjects(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    # The path check first: it then runs once per rule evaluated, which is what is counted.
    matcher = "keyMatch2(r.obj, p.obj) && g(r.sub, p.sub) && methodMatch(r.act, p.act)"
    policy = compiled(tmp_path, model_text(matcher=matcher), big_policy(2000),
                      functions=counting(calls))
    assert policy.indexed
    calls.clear()
    assert policy.decide("bob", [], "GET", "/docs/x", authenticated=True).allowed
    assert not policy.decide("bob", [], "GET", "/nowhere", authenticated=True).allowed
    assert calls["keyMatch2"] <= 2 * 2  # bob's two rules, twice; never the other 2,000


def test_the_shipped_model_is_indexed() -> None:
    policy = load_policy(DEFAULT_MODEL, ROOT / "policies" / "policy.csv").policy
    assert policy.indexed


def test_a_matcher_that_uses_the_subject_otherwise_evaluates_every_rule(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    matcher = "keyMatch(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)"
    model = model_text(matcher=matcher)
    policy_text = big_policy(300) + "p, b*, /wild/*, GET, allow\n"
    policy = compiled(tmp_path, model, policy_text, functions=counting(calls))
    assert not policy.indexed
    calls.clear()
    verdict = policy.decide("bob", [], "GET", "/wild/x", authenticated=True)
    assert verdict.allowed
    assert verdict.rule is not None and verdict.rule.values[0] == "b*"
    assert calls["keyMatch"] == len(policy.rules) == 303  # every rule
    stock = StockReference(tmp_path / "model.conf", tmp_path / "policy.csv")
    for subject, path in [("bob", "/wild/x"), ("bob", "/docs/x"), ("user7", "/u/7/a"),
                          ("alice", "/wild/x")]:
        ours = policy.decide(subject, [], "GET", path, authenticated=True)
        assert ours.allowed is stock.enforce(subject, [], True, "GET", path)[0], (subject, path)


def test_a_subject_link_inside_an_or_is_not_used_as_an_index(tmp_path: Path) -> None:
    """``g(r.sub, p.sub) && … || r.sub == "root"``: root matches rules of any subject."""
    policy = compiled(tmp_path, model_text(effect=ALLOW_WINS,
                                           matcher=f"{RBAC_MATCHER} || r.sub == \"root\""),
                      "p, alice, /a/*, GET, allow\n")
    assert not policy.indexed
    assert policy.decide("root", [], "GET", "/anything", authenticated=True).allowed
    assert not policy.decide("bob", [], "GET", "/a/x", authenticated=True).allowed


# ------------------------------------------------------------------ the decision cache
def test_a_reloaded_policy_never_answers_from_the_old_cache(tmp_path: Path) -> None:
    model = write(tmp_path, "model.conf", DEFAULT_MODEL.read_text())
    policy_file = write(tmp_path, "policy.csv", "p, role:viewer, /docs/*, GET, allow\n")
    holder = PolicyHolder(model, policy_file, Metrics())
    authorizer = PolicyAuthorizer(holder, PublicPaths([]))
    bob = Principal(subject="bob", roles=("viewer",), claims={}, via="bearer")

    async def scenario() -> None:
        await holder.start(watch=False)
        try:
            assert authorizer.authorize(bob, "GET", "/docs/a").allowed
            assert not authorizer.authorize(bob, "GET", "/reports/a").allowed  # cached: deny
            first = holder.active
            policy_file.write_text("p, role:viewer, /reports/*, GET, allow\n")
            assert await holder.reload("test")
            assert holder.active is not first
            assert authorizer.authorize(bob, "GET", "/reports/a").allowed
            assert not authorizer.authorize(bob, "GET", "/docs/a").allowed  # was cached: allow
            # The old object keeps its own answers, for a reader that took it before the swap.
            assert first is not None and first.decide("bob", ["viewer"], "GET", "/docs/a",
                                                      authenticated=True).allowed
        finally:
            await holder.aclose()

    run(scenario())


def test_a_loader_failure_of_any_kind_is_a_refused_reload(tmp_path: Path) -> None:
    """An unexpected exception must be refused like a bad file, not end the watch task."""
    model = write(tmp_path, "model.conf", DEFAULT_MODEL.read_text())
    policy_file = write(tmp_path, "policy.csv", "p, role:viewer, /docs/*, GET, allow\n")
    loads: list[Path] = []

    def flaky_loader(model_path: Path, policy_path: Path) -> Any:
        loads.append(policy_path)
        if len(loads) > 1:
            raise RuntimeError("unexpected")
        return load_policy(model_path, policy_path)

    metrics = Metrics()
    holder = PolicyHolder(model, policy_file, metrics, loader=flaky_loader)

    async def scenario() -> None:
        await holder.start(watch=False)
        try:
            first = holder.active
            assert await holder.reload("test") is False
            assert holder.active is first
            assert holder.last_error is not None and "RuntimeError" in holder.last_error
        finally:
            await holder.aclose()

    run(scenario())
    assert metrics.registry.get_sample_value(
        "gatekeeper_policy_reloads_total", {"result": "failure"}) == 1.0


def test_start_serves_the_policy_the_cli_loaded_unless_the_files_changed_since(tmp_path: Path) -> None:
    """`gatekeeper run` loads the policy to check it; starting then must not load it again
    (100,000 rules take seconds), unless the files no longer hold it."""
    model = write(tmp_path, "model.conf", DEFAULT_MODEL.read_text())
    policy_file = write(tmp_path, "policy.csv", "p, role:viewer, /docs/*, GET, allow\n")
    loads: list[Path] = []

    def counting_loader(model_path: Path, policy_path: Path) -> Any:
        loads.append(policy_path)
        return load_policy(model_path, policy_path)

    async def start(loaded: Any) -> Any:
        holder = PolicyHolder(model, policy_file, Metrics(), loader=counting_loader)
        await holder.start(watch=False, loaded=loaded)
        await holder.aclose()
        return holder.active

    checked = load_policy(model, policy_file)
    assert run(start(checked)) is checked.policy and loads == []
    policy_file.write_text("p, role:viewer, /reports/*, GET, allow\n")  # edited after the check
    served = run(start(checked))
    assert loads == [policy_file] and served is not checked.policy
    assert served.decide("bob", ["viewer"], "GET", "/reports/a", authenticated=True).allowed


def test_the_decision_cache_is_bounded_and_evicts_the_least_recent(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    policy = compiled(tmp_path, DEFAULT_MODEL.read_text(), "p, role:viewer, /docs/*, GET, allow\n",
                      functions=counting(calls), cache_size=8)

    def ask(path: str) -> int:
        before = calls["keyMatch2"]
        policy.decide("bob", ["viewer"], "GET", path, authenticated=True)
        return calls["keyMatch2"] - before  # 0 when the answer came from the cache

    for i in range(100):
        assert ask(f"/docs/{i}") == 1
        assert len(policy._cache) <= 8  # the bound itself (a private, but the point of it)
    assert ask("/docs/99") == 0  # recent: cached
    assert ask("/docs/0") == 1  # long evicted: evaluated again


def test_a_cache_size_of_zero_caches_nothing(tmp_path: Path) -> None:
    calls: Counter[str] = Counter()
    policy = compiled(tmp_path, DEFAULT_MODEL.read_text(), "p, role:viewer, /docs/*, GET, allow\n",
                      functions=counting(calls), cache_size=0)
    calls.clear()
    for _ in range(3):
        assert policy.decide("bob", ["viewer"], "GET", "/docs/1", authenticated=True).allowed
    assert calls["keyMatch2"] == 3
    assert len(policy._cache) == 0


TENANT_MODEL = model_text(
    request="sub, obj, act, claims",
    matcher="g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) "
            "&& r.claims.tenant == keyGet2(r.obj, p.obj, \"tenant\")")


def test_claims_decisions_are_never_shared_between_callers(tmp_path: Path) -> None:
    """With claims in the request, the answer depends on more than (subject, roles, path)."""
    policy = compiled(tmp_path, TENANT_MODEL, "p, role:authenticated, /t/:tenant/*, GET, allow\n")
    assert policy.uses_claims
    path = "/t/acme/x"
    assert policy.decide("alice", [], "GET", path, authenticated=True,
                         claims={"tenant": "acme"}).allowed
    # The same subject, roles and path with another tenant claim, without a cache key...
    assert not policy.decide("alice", [], "GET", path, authenticated=True,
                             claims={"tenant": "other"}).allowed
    # ...and with principals as keys (what the proxy passes).
    mallory = Principal(subject="alice", roles=(), claims={"tenant": "other"}, via="bearer")
    assert not policy.decide("alice", [], "GET", path, authenticated=True,
                             claims=mallory.claims, cache_key=mallory).allowed


# ------------------------------------------------------------------ roles per request
def test_token_roles_hold_for_their_request_only(tmp_path: Path) -> None:
    policy = load_policy(DEFAULT_MODEL, ROOT / "policies" / "policy.csv").policy
    stock = StockReference(DEFAULT_MODEL, ROOT / "policies" / "policy.csv")
    asks = [("admin",), (), ("admin",), (), ("editor",), ()]
    answers = [policy.decide("bob", roles, "GET", "/admin/x", authenticated=True).allowed
               for roles in asks]
    assert answers == [True, False, True, False, False, False]
    assert answers == [stock.enforce("bob", roles, True, "GET", "/admin/x")[0] for roles in asks]
    # The role graph itself learned nothing about bob.
    assert "role:admin" not in policy.subjects("bob", [], authenticated=True)
    fresh = load_policy(DEFAULT_MODEL, ROOT / "policies" / "policy.csv").policy
    assert fresh.decide("bob", [], "GET", "/admin/x", authenticated=True) == \
        policy.decide("bob", [], "GET", "/admin/x", authenticated=True)


def test_roles_inherited_through_g_lines_follow_casbins_depth_limit(tmp_path: Path) -> None:
    """Casbin's role manager follows at most 9 links from the subject (max_hierarchy_level 10);
    the same files must give the same answers, also for long chains."""
    chain = [f"role:r{i}" for i in range(14)]
    lines = [f"g, {a}, {b}" for a, b in itertools.pairwise(chain)] + ["g, v, role:r0"]
    lines += [f"p, {role}, /{role}, GET, allow" for role in chain]
    policy = compiled(tmp_path, DEFAULT_MODEL.read_text(), "\n".join(lines) + "\n")
    stock = StockReference(tmp_path / "model.conf", tmp_path / "policy.csv")
    for subject, roles in [("u", ("r0",)), ("v", ()), ("u", ("r3", "r0"))]:
        for role in chain:
            ours = policy.decide(subject, roles, "GET", f"/{role}", authenticated=True).allowed
            assert ours is stock.enforce(subject, roles, True, "GET", f"/{role}")[0], (subject, roles, role)


def test_a_deny_rule_that_cannot_be_evaluated_still_denies(tmp_path: Path) -> None:
    """Fail closed: a matcher function raising on odd input must not switch a deny rule off."""
    model = model_text(
        request="sub, obj, act, claims",
        matcher="g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) "
                "&& (p.eft == \"allow\" || ipMatch(r.claims.ip, \"10.0.0.0/8\"))")
    policy = compiled(tmp_path, model, "p, role:authenticated, /*, GET, allow\n"
                                        "p, role:authenticated, /admin/*, GET, deny\n")

    def ask(ip: str) -> PolicyVerdict:
        return policy.decide("bob", [], "GET", "/admin/x", authenticated=True, claims={"ip": ip},
                             cache_key=ip)

    assert ask("192.0.2.1").allowed  # outside the denied range
    assert not ask("10.1.2.3").allowed  # inside
    assert not ask("not-an-address").allowed  # cannot tell: deny, never allow


# ------------------------------------------------------------------ load problems
GOOD_POLICY = "p, role:viewer, /docs/*, GET, allow\n"


def problems_of(tmp_path: Path, model: str, policy: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        compiled(tmp_path, model, policy)
    return caught.value.problems


@pytest.mark.parametrize(("policy", "where", "words"), [
    ("# header\np, viewer, /docs/*, GET\n", "policy.csv:2", "takes 4 fields"),
    ("p, viewer, /docs/*, GET, allow, extra\n", "policy.csv:1", "takes 4 fields"),
    ("g, alice\n", "policy.csv:1", "takes 2 fields"),
    (GOOD_POLICY + "x, alice, /a, GET, allow\n", "policy.csv:2", "unknown rule type"),
    (GOOD_POLICY + "p2, alice, /a, GET, allow\n", "policy.csv:2", "unknown rule type"),
    (GOOD_POLICY + "\n\np, alice, , GET, allow\n", "policy.csv:4", "empty field"),
    ("p, alice, /a/**, GET, allow\n", "policy.csv:1", "not a valid expression"),
], ids=["a missing field is refused with its line", "an extra field is refused",
        "a g line with one name is refused", "an unknown rule type is refused",
        "a rule type the model does not define is refused", "an empty field is refused",
        "a pattern that is not a valid expression is refused"])
def test_a_bad_policy_line_is_named_by_file_and_line(
    tmp_path: Path, policy: str, where: str, words: str
) -> None:
    problems = problems_of(tmp_path, DEFAULT_MODEL.read_text(), policy)
    assert any(where in p and words in p for p in problems), problems


@pytest.mark.parametrize(("matcher", "line"), [
    ("regexMatch(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act)",
     "p, alice, /b/**, GET, allow"),
    ("r.sub == p.sub && keyMatch2(r.obj, p.obj) && regexMatch(r.act, p.act)",
     "p, alice, /b/*, *, allow"),
    ("g(r.sub, p.sub) && r.act == p.act && keyMatch4(r.obj, p.obj)", "p, alice, /a/{x}/**, GET, allow"),
    ("methodMatch(r.act, p.act) || regexMatch(r.obj, p.obj)", "p, alice, *x, GET, allow"),
], ids=["keyMatch2 after a subject test that fails on the made-up caller",
        "regexMatch after a method test", "keyMatch4 after a method test",
        "regexMatch after an || that holds"])
def test_a_pattern_casbin_cannot_compile_is_refused_wherever_it_sits_in_the_matcher(
    tmp_path: Path, matcher: str, line: str
) -> None:
    """Casbin raises on every request that reaches such a rule; the engine would take the rule
    as failing and decide anyway. Refused at load even when a test before it in the matcher is
    false (or one before an || true) for the made-up request of the load-time check."""
    problems = problems_of(tmp_path, model_text(effect="!some(where (p.eft == deny))",
                                                matcher=matcher), line + "\n")
    assert any("policy.csv:1" in p and "not a valid expression" in p for p in problems), problems


@pytest.mark.parametrize("pattern", ["/users/%40admin", "/a%21/*", "/%61dmin/*", "/caf%c3%a9",
                                     "/x/%3A:id", "/%7Euser"])
def test_a_path_pattern_no_canonical_path_can_match_is_refused(tmp_path: Path,
                                                               pattern: str) -> None:
    """Paths reach the policy in canonical form (every pchar decoded, other escapes upper-case):
    a deny written with '%40' would never match '/users/@admin' and deny nothing."""
    problems = problems_of(tmp_path, DEFAULT_MODEL.read_text(),
                           f"{GOOD_POLICY}p, viewer, {pattern}, GET, deny\n")
    assert any("policy.csv:2" in p and "canonical" in p for p in problems), problems


def test_every_bad_policy_line_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, DEFAULT_MODEL.read_text(),
                           "p, a, /x\n" + GOOD_POLICY + "q, a, /x, GET, allow\n")
    assert [p.split(": ", 1)[0].rsplit("/", 1)[-1] for p in problems] == ["policy.csv:1",
                                                                           "policy.csv:3"]


@pytest.mark.parametrize(("model", "where", "words"), [
    (model_text(matcher="g(r.sub, p.sub) && fooMatch(r.obj, p.obj)"), "model.conf:14", "fooMatch"),
    (model_text(matcher="methodMatch(r.act, p.act) && g(r.sub, p.sub) && nope(r.obj)"),
     "model.conf:14", "nope"),
    (model_text(request="sub, obj, act, ip"), "model.conf:2", "ip"),
    (model_text(effect="some(where (p.eft == allow)) || other"), "model.conf:11", "effect"),
    (model_text().replace("[matchers]\nm = " + RBAC_MATCHER + "\n", ""), "model.conf", "matchers"),
    (model_text().replace("[policy_effect]\ne = " + DENY_WINS + "\n", ""), "model.conf",
     "policy_effect"),
    (model_text(policy="obj, act, eft"), "model.conf:5", "sub"),
], ids=["an unknown function in the matcher names the matcher's line",
        "an unknown function after a role check is still found",
        "an unknown request field names the request_definition line",
        "an unsupported effect names the policy_effect line",
        "a missing matchers section is named", "a missing policy_effect section is named",
        "a policy_definition without sub names its line"])
def test_a_bad_model_is_named_by_file_and_line(
    tmp_path: Path, model: str, where: str, words: str
) -> None:
    problems = problems_of(tmp_path, model, GOOD_POLICY)
    assert any(where in p and words in p for p in problems), problems


PRIORITY_MODEL = model_text(effect="priority(p.eft) || deny", policy="priority, sub, obj, act, eft")


@pytest.mark.parametrize(("model", "policy", "where", "words"), [
    (PRIORITY_MODEL, "p, 1, a, /x, GET, allow\np, high, a, /y, GET, deny\n", "policy.csv:2",
     "whole number"),
    (model_text(effect="subjectPriority(p.eft) || deny"),
     GOOD_POLICY + "g, role:a, role:b\ng, role:b, role:a\n", "model.conf", "cycle"),
], ids=["a priority that is not a number next to numbers", "subject priority over a g cycle"])
def test_priorities_casbin_would_fail_on_are_refused(
    tmp_path: Path, model: str, policy: str, where: str, words: str
) -> None:
    problems = problems_of(tmp_path, model, policy)
    assert any(where in p and words in p for p in problems), problems


def test_rules_with_priorities_are_tried_in_casbins_order(tmp_path: Path) -> None:
    policy = compiled(tmp_path, PRIORITY_MODEL, "p, 10, role:staff, /x, GET, allow\n"
                                                "p, 2, role:staff, /x, GET, deny\n")
    verdict = policy.decide("bob", ["staff"], "GET", "/x", authenticated=True)
    assert not verdict.allowed  # priority 2 before 10 (and numbers, not text: "10" < "2")
    assert verdict.rule is not None and verdict.rule.source.endswith("policy.csv:2")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    model = write(tmp_path, "model.conf", DEFAULT_MODEL.read_text())
    missing = tmp_path / "absent.csv"
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes(b"p, caf\xe9, /x, GET, allow\n")
    for path in (missing, not_utf8, tmp_path):
        with pytest.raises(PolicyError) as caught:
            load_policy(model, path)
        assert str(path) in caught.value.problems[0]
        assert "cannot read" in caught.value.problems[0]


def test_the_shipped_policy_loads_without_warnings() -> None:
    report = load_policy(DEFAULT_MODEL, ROOT / "policies" / "policy.csv")
    assert report.warnings == []
    assert report.policy.rules


# ------------------------------------------------------------------ users apart from roles
MIGRATED = ("g, alice, role:admin\ng, bob, staff\n"
            "p, role:admin, /admin/*, GET, allow\np, staff, /staff/*, GET, allow\n"
            "p, carol, /own/*, GET, allow\n")


@pytest.mark.parametrize(("subject", "roles", "path", "reason"), [
    ("alice", (), "/admin/x", "policy_allow"),
    ("carol", (), "/own/x", "policy_allow"),
    ("bob", (), "/staff/x", "policy_allow"),
    ("u-1", ("admin",), "/admin/x", "policy_allow"),
    ("admin", (), "/admin/x", "subject_names_a_role"),
    ("staff", (), "/staff/x", "subject_names_a_role"),
    ("role:admin", ("admin",), "/admin/x", "subject_names_a_role"),
    ("u-1", ("role:admin",), "/admin/x", "no_matching_rule"),
    ("u-1", ("carol",), "/own/x", "no_matching_rule"),
], ids=["a user granted a role through g holds it", "a plain rule subject is a user in a policy "
        "that names role:", "a user in a plain group holds it", "a token role reaches role: rules",
        "a user named like a role: is refused", "a user named like a plain g group is refused",
        "a role: subject is refused even with the role", "a token role named role:admin is "
        "role:role:admin", "a token role named like a user is not that user"])
def test_users_and_roles_stay_apart(tmp_path: Path, subject: str, roles: tuple[str, ...],
                                    path: str, reason: str) -> None:
    policy = compiled(tmp_path, DEFAULT_MODEL.read_text(), MIGRATED)
    verdict = policy.decide(subject, roles, "GET", path, authenticated=True)
    assert (verdict.allowed, verdict.reason) == (reason == "policy_allow", reason)


# ------------------------------------------------------------------ line breaks as Casbin reads them
# str.splitlines() also breaks at these; Casbin's file adapter and config reader at "\n" only.
OTHER_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", OTHER_BREAKS, ids=[f"U+{ord(b):04X}" for b in OTHER_BREAKS])
def test_a_line_is_what_casbin_reads_as_a_line(tmp_path: Path, brk: str) -> None:
    """Within what Casbin reads as one line, ``allow<U+2028>p, bob, /admin/*…`` is a rule whose
    effect is neither allow nor deny (it never decides): split there, it would be two rules
    allowing more. Refused at load, or decided as the stock Enforcer decides."""
    policy = (f"p, bob, /public/*, GET, allow{brk}p, bob, /admin/*, GET, allow\n"
              "p, carol, /docs/*, GET, allow\n")
    model_path = write(tmp_path, "model.conf", DEFAULT_MODEL.read_text())
    policy_path = tmp_path / "policy.csv"
    policy_path.write_bytes(policy.encode())
    stock = StockReference(model_path, policy_path)
    try:
        ours = load_policy(model_path, policy_path).policy
    except PolicyError as refused:
        assert any("policy.csv:1" in p for p in refused.problems), refused.problems
        return
    for subject, path in (("bob", "/public/x"), ("bob", "/admin/x"), ("carol", "/docs/x")):
        verdict = ours.decide(subject, (), "GET", path, authenticated=True)
        try:
            expected = stock.enforce(subject, (), True, "GET", path)[0]
        except RuntimeError as exc:  # "invalid policy size": Casbin cannot evaluate the rule
            raise AssertionError(f"loaded a policy Casbin fails on ({exc})") from None
        assert verdict.allowed is expected, (subject, path)



# ------------------------------------------------------------------ matcher functions, hostile input
# Pattern and value pieces where a segment-wise matcher and Casbin's regular expression may part:
# regex metacharacters, ':' inside and at the start of segments, '*', braces, unicode, newlines
# (Python's '$' also matches before a final "\n": ``r.sub`` is a token's string, any bytes).
HOSTILE_PIECES = ["/", "a", "b", ":id", ":", "*", "/*", "{x}", ".", "..", "$", "^", "(", ")", "[",
                  "]", "?", "+", "|", "\\", "é", "\n", "-", "_", "~", "%2F", "!", "@", " ", "1"]


@given(st.lists(st.sampled_from(HOSTILE_PIECES), max_size=6).map("".join),
       st.lists(st.sampled_from(HOSTILE_PIECES), max_size=6).map("".join),
       st.sampled_from([None, "", "\n", "/", "x", "/\nx"]))
def test_key_match2_decides_as_casbins_on_hostile_strings(pattern: str, value: str,
                                                          fitted: str | None) -> None:
    if fitted is not None:  # a value made to fit the pattern (and a tail), so matches are common
        value = pattern.replace(":id", "1").replace("*", "zz") + fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "[[": a possible nested set, to both
        assert _outcome(key_match2, value, pattern) == _outcome(casbin_ops.key_match2, value,
                                                                pattern)


# Patterns of several wildcards, matched without a regular expression (functions._Wildcards):
# long enough for '/*', ':name' and '.' to combine in every order.
WILDCARD_PIECES = ["/", "a", "b", ":id", "/*", ".", "/a", "ab", "x.", "*", ":", "-"]


@given(st.lists(st.sampled_from(WILDCARD_PIECES), max_size=10).map("".join),
       st.lists(st.sampled_from(["/", "a", "b", "ab", ".", "/a/", "b/a", "//", "-"]),
                max_size=10).map("".join),
       st.sampled_from(["", "zz", "a/b", "/b/"]), st.sampled_from(["", "/", "x", "/b"]))
def test_key_match2_on_many_wildcards_decides_as_casbins(pattern: str, value: str, star: str,
                                                          tail: str) -> None:
    fitted = pattern.replace(":id", "1").replace("*", star) + tail
    for candidate in (value, fitted):
        assert _outcome(key_match2, candidate, pattern) == _outcome(casbin_ops.key_match2,
                                                                    candidate, pattern)


@given(st.lists(st.sampled_from([*WILDCARD_PIECES, "{id}", "{", "}"]), max_size=10).map("".join),
       st.lists(st.sampled_from(["/", "a", "b", "ab", ".", "/a/", "b/a", "?q", "?", "-"]),
                max_size=10).map("".join),
       st.sampled_from(["", "zz", "a/b", "/b/"]), st.sampled_from(["", "/", "x", "?a/b"]))
def test_key_match3_and_5_decide_as_casbins(pattern: str, value: str, star: str,
                                            tail: str) -> None:
    fitted = pattern.replace("{id}", "1").replace("*", star) + tail
    for ours, theirs in ((key_match3, casbin_ops.key_match3), (key_match5, casbin_ops.key_match5)):
        for candidate in (value, fitted):
            assert _outcome(ours, candidate, pattern) == _outcome(theirs, candidate, pattern)


def _outcome(function: Callable[[str, str], bool], value: str, pattern: str) -> object:
    try:
        return function(value, pattern)
    except re.error:
        return re.error


# ------------------------------------------------------------------ HEAD runs the GET handler
HEAD_POLICY = textwrap.dedent("""\
    p, role:viewer, /reports/*, *, allow
    p, role:viewer, /reports/secret, GET, deny
    p, role:viewer, /ping, HEAD, allow
    p, role:viewer, /docs/*, GET|HEAD, allow
    """)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("HEAD", "/reports/secret", False), ("head", "/reports/secret", False),
    ("GET", "/reports/secret", False), ("HEAD", "/reports/x", True), ("HEAD", "/ping", False),
    ("HEAD", "/docs/a", True), ("GET", "/docs/a", True),
], ids=["HEAD where GET is denied", "lower-case head where GET is denied", "the GET itself",
        "HEAD where everything is allowed", "HEAD allowed but not the GET it runs",
        "HEAD and GET both allowed", "GET allowed"])
def test_a_head_is_allowed_only_where_the_get_it_runs_is(tmp_path: Path, method: str, path: str,
                                                         allowed: bool) -> None:
    """Starlette, werkzeug/Flask and Django answer HEAD by running the GET handler (its side
    effects and headers: Content-Length, Content-Disposition…): HEAD must not reach a GET the
    policy denies."""
    from gatekeeper.authz import FixedPolicy

    policy = compiled(tmp_path, DEFAULT_MODEL.read_text(), HEAD_POLICY)
    authorizer = PolicyAuthorizer(FixedPolicy(policy), PublicPaths([]))
    bob = Principal(subject="bob", roles=("viewer",), claims={}, via="bearer")
    assert authorizer.authorize(bob, method, path).allowed is allowed
