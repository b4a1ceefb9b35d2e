"""Casbin's own example models: decided exactly as the stock Enforcer decides, or refused by name.

The files in tests/data/casbin/ have the shapes of the model/policy pairs in Casbin's
``examples/`` directory (pycasbin and Casbin share them), written for this suite; the
documented requests and answers are those of pycasbin's ``tests/test_enforcer.py``. For each
pair the engine either

- loads it, and gives the documented answers and the stock ``casbin.Enforcer``'s answers (and
  deciding rule) on every request built from the names in the files; or
- refuses it at load, with a message naming the feature it does not evaluate as Casbin does.

A caller here holds no token roles and is not authenticated: the engine is then asked exactly
what the stock Enforcer is asked (test_policy_engine covers token roles against the stock
Enforcer told the same per-request facts).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import casbin
import pytest
import yaml
from casbin.persist.adapter import _extract_tokens

from gatekeeper.metrics import Metrics
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.features import DOCS
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.policy.reload import PolicyHolder
from tests.support.fakes import run
from tests.support.paths import ROOT
from tests.support.policy import casbin_quiet

DATA = ROOT / "tests" / "data" / "casbin"
T, F = True, False


@pytest.fixture(autouse=True, scope="module")
def quiet_casbin() -> Iterator[None]:
    """The stock Enforcer logs every decision."""
    with casbin_quiet():
        yield


def files(model: str, policy: str) -> tuple[Path, Path]:
    return DATA / f"{model}.model.conf", DATA / f"{policy}.policy.csv"


# ------------------------------------------------------------------ evaluated exactly
@dataclass(frozen=True)
class Evaluated:
    name: str
    model: str
    policy: str
    documented: tuple[tuple[tuple[str, ...], bool], ...]
    extra_values: tuple[str, ...] = ()  # request values beyond the names in the files


EVALUATED = [
    Evaluated("basic", "basic", "basic", (
        (("alice", "data1", "read"), T), (("alice", "data2", "read"), F),
        (("bob", "data2", "write"), T), (("bob", "data1", "write"), F))),
    Evaluated("basic with root", "basic_with_root", "basic", (
        (("root", "any", "any"), T), (("alice", "data1", "read"), T),
        (("alice", "data2", "read"), F))),
    Evaluated("basic without resources", "basic_without_resources", "basic_without_resources", (
        (("alice", "read"), T), (("alice", "write"), F), (("bob", "write"), T),
        (("bob", "read"), F))),
    Evaluated("rbac", "rbac", "rbac", (
        (("alice", "data1", "read"), T), (("bob", "data1", "read"), F),
        (("bob", "data2", "write"), T), (("alice", "data2", "read"), T),
        (("alice", "data2", "write"), T), (("bogus", "data2", "write"), F))),
    Evaluated("rbac with an empty policy", "rbac", "empty", (
        (("alice", "data1", "read"), F), (("bob", "data2", "write"), F),
        (("alice", "data2", "write"), F))),
    Evaluated("rbac with a role hierarchy", "rbac", "rbac_with_hierarchy", (
        (("alice", "data1", "read"), T), (("alice", "data1", "write"), T),
        (("alice", "data2", "read"), T), (("alice", "data2", "write"), T),
        (("bob", "data1", "read"), F), (("bob", "data2", "write"), T))),
    Evaluated("rbac with an in list after ||", "rbac_in_list", "rbac", (
        (("alice", "data1", "read"), T), (("alice", "data2", "read"), T),
        (("alice", "data3", "scribble"), T), (("alice", "data4", "scribble"), F))),
    Evaluated("rbac with resource roles (g2)", "rbac_with_resource_roles",
              "rbac_with_resource_roles", (
        (("alice", "data1", "read"), T), (("alice", "data1", "write"), T),
        (("alice", "data2", "read"), F), (("alice", "data2", "write"), T),
        (("bob", "data1", "read"), F), (("bob", "data1", "write"), F),
        (("bob", "data2", "read"), F), (("bob", "data2", "write"), T))),
    Evaluated("rbac with resource groups named exactly", "rbac_with_pattern",
              "rbac_with_exact_resource_groups", (
        (("alice", "/book/1", "GET"), T), (("alice", "/book/2", "GET"), F),
        (("alice", "/pen/1", "GET"), T), (("bob", "/pen/2", "HEAD"), T),
        (("bob", "/pen/1", "GET"), F)), ("HEAD",)),
    Evaluated("rbac with deny (a deny wins)", "rbac_with_deny", "rbac_with_deny", (
        (("alice", "data1", "read"), T), (("bob", "data2", "write"), T),
        (("alice", "data2", "read"), T), (("alice", "data2", "write"), F))),
    Evaluated("rbac with not deny (allowed unless denied)", "rbac_with_not_deny",
              "rbac_with_deny", ((("alice", "data2", "write"), F),)),
    Evaluated("keyMatch paths, regexMatch methods", "keymatch", "keymatch", (
        (("alice", "/alice_data/test", "GET"), T), (("alice", "/bob_data/test", "GET"), F),
        (("cathy", "/cathy_data", "GET"), T), (("cathy", "/cathy_data", "POST"), T),
        (("cathy", "/cathy_data/12", "POST"), F)),
        ("/alice_data/test", "/bob_data/test", "/cathy_data/12", "/alice_data", "DELETE")),
    Evaluated("keyMatch2 paths", "keymatch2", "keymatch2", (
        (("alice", "/alice_data/resource", "GET"), T),
        (("alice", "/alice_data2/123/using/456", "GET"), T)),
        ("/alice_data/resource", "/alice_data2/123/using/456", "/alice_data2/myid",
         "/alice_data/", "/alice_data/a/b")),
    Evaluated("globMatch paths", "globmatch", "globmatch", (
        (("alice", "/alice_data/test_all", "GET"), T), (("alice", "/alice_data/123", "POST"), T),
        (("bob", "/alice_data/1", "GET"), T), (("bob", "/alice_data/0", "GET"), F),
        (("bob", "/bob_data/0", "POST"), T), (("bob", "/bob_data/1", "POST"), F)),
        ("/alice_data/test_all", "/alice_data/123", "/alice_data/1", "/alice_data/0",
         "/bob_data/0", "/bob_data/1", "/alice_data/ab")),
    Evaluated("ipMatch subjects", "ipmatch", "ipmatch", (
        (("192.168.2.1", "data1", "read"), T), (("192.168.3.1", "data1", "read"), F)),
        ("192.168.2.1", "192.168.3.1", "10.0.255.255", "10.1.0.1")),
    Evaluated("subject priority: the most specific subject's rule", "subject_priority",
              "subject_priority", (
        (("jane", "data1", "read"), T), (("alice", "data1", "read"), T),
        (("bob", "data1", "read"), F))),
    Evaluated("priority: the first matching rule in file order", "priority", "priority", (
        (("alice", "data1", "read"), T), (("alice", "data1", "write"), F),
        (("alice", "data2", "read"), F), (("alice", "data2", "write"), F),
        (("bob", "data1", "read"), F), (("bob", "data1", "write"), F),
        (("bob", "data2", "read"), T), (("bob", "data2", "write"), F))),
    Evaluated("priority: an explicit priority field", "priority_explicit", "priority_explicit", (
        (("alice", "data1", "write"), T), (("alice", "data1", "read"), T),
        (("bob", "data2", "read"), F), (("bob", "data2", "write"), T),
        (("data1_deny_group", "data1", "read"), F), (("data1_deny_group", "data1", "write"), F),
        (("data2_allow_group", "data2", "read"), T), (("data2_allow_group", "data2", "write"), T))),
]


def names_in(policy: Path) -> set[str]:
    """Every value a policy line holds (subjects, roles, objects, actions, effects)."""
    found: set[str] = set()
    for line in policy.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            found.update(_extract_tokens(line)[1:])
    return found


def requests(case: Evaluated, width: int) -> list[tuple[str, ...]]:
    """The documented requests, then every request made of the files' names (and extras)."""
    values = sorted(names_in(files(case.model, case.policy)[1]) | set(case.extra_values)
                    | {"nobody", "root", "read", "write"})
    generated = list(itertools.product(values, repeat=width))
    return [request for request, _ in case.documented] + generated


def beneath_subject_namespaces(policy: CompiledPolicy) -> CompiledPolicy:
    """Casbin's semantics, compared beneath gatekeeper's own subject name spaces: a caller named
    like a role is refused before any rule is read (issue 11 §1.8; tests/unit/policy/test_engine.py
    and tests/e2e/test_subjects_e2e.py), and Casbin's examples, written without ``role:``, name
    their users and roles alike. Here a request's subject is a plain name, as Casbin takes it."""
    policy.role_names = frozenset()
    return policy


def ask(policy: CompiledPolicy, tokens: Sequence[str], request: Sequence[str]
        ) -> tuple[bool, list[str]]:
    """Our answer to a Casbin request: the fields by name, no token roles, not logged in."""
    fields = dict(zip(tokens, request, strict=True))
    verdict = beneath_subject_namespaces(policy).decide(
        fields.get("sub", ""), (), fields.get("act", ""), fields.get("obj", ""), authenticated=True)
    return verdict.allowed, list(verdict.rule.values) if verdict.rule else []


@pytest.mark.parametrize("case", EVALUATED, ids=[c.name for c in EVALUATED])
def test_casbins_example_is_decided_as_the_stock_enforcer_decides(case: Evaluated) -> None:
    model, policy = files(case.model, case.policy)
    ours = load_policy(model, policy).policy
    stock = casbin.Enforcer(str(model), str(policy))
    tokens = [t.removeprefix("r_") for t in stock.model["r"]["r"].tokens]
    for request, expected in case.documented:
        assert stock.enforce(*request) is expected, ("transcribed wrongly", request)
        assert ask(ours, tokens, request)[0] is expected, request
    answers: set[bool] = set()
    for request in requests(case, len(tokens)):
        try:
            allowed, rule = stock.enforce_ex(*request)
        except ValueError:  # ipMatch given a name: Casbin has no answer; ours is a deny
            assert ask(ours, tokens, request)[0] is False, request
            continue
        assert ask(ours, tokens, request) == (allowed, list(rule)), request
        answers.add(bool(allowed))
    assert answers == {True, False} or case.policy == "empty"


# ------------------------------------------------------------------ refused by name
@dataclass(frozen=True)
class Refused:
    name: str
    model: str
    policy: str
    words: tuple[str, ...]  # each in one of the problems
    where: str  # "model.conf:5" or "policy.csv:3": the line named
    feature: bool = True  # a model feature: the message points at the docs table
    casbin_loads: bool = True  # the stock Enforcer accepts the files (a real Casbin model)


REFUSED = [
    Refused("basic without users (rules with no subject)", "basic_without_users",
            "basic_without_users", ("without a 'sub' field",), "basic_without_users.model.conf:7"),
    # rbac_with_domains, rbac_with_domain_pattern, rbac_with_pattern with policy.role_matching,
    # ipmatch on the client address, other request field names: test_domains_and_patterns.py
    Refused("rbac with role patterns, without policy.role_matching", "rbac_with_pattern",
            "rbac_with_pattern", ("role pattern '/book/:id'", "role pattern '/book2/{id}'"),
            "rbac_with_pattern.policy.csv:9"),
    Refused("time-limited roles", "rbac_with_temporal_roles", "rbac_with_temporal_roles",
            ("time-limited roles",), "rbac_with_temporal_roles.model.conf:10"),
    Refused("a custom matcher function", "keymatch_custom", "keymatch2",
            ("keyMatchCustom", "custom functions are not supported"),
            "keymatch_custom.model.conf:13"),
    Refused("priority with an effect that is neither allow nor deny", "priority",
            "priority_indeterminate", ("'intdeterminate' is neither 'allow' nor 'deny'",),
            "priority_indeterminate.policy.csv:2", feature=False),
    Refused("effects spelled Deny and ALLOW", "rbac_with_deny", "misspelled_effects",
            ("'Deny' is neither", "'ALLOW' is neither"), "misspelled_effects.policy.csv:3",
            feature=False),
    Refused("abac: an attribute of the request object", "abac", "basic",
            ("attribute access 'r.obj.Owner'",), "abac.model.conf:13"),
    Refused("abac rules: eval() of rules reading attributes of the subject", "abac_rule",
            "abac_rule", ("attribute access 'r.sub.age'", "write r.claims.age"),
            "abac_rule.policy.csv:2"),
    Refused("multiple policy definitions (r2, p2, m2)", "multiple_policy_definitions",
            "multiple_policy_definitions",
            ("second request type (r2)", "second policy type (p2)", "second matcher (m2)"),
            "multiple_policy_definitions.model.conf:5"),
    Refused("multiple policy types with other field names", "rbac_with_multiple_policy",
            "rbac_with_multiple_policy",
            ("second policy type (p2)", "second matcher (m2)"),
            "rbac_with_multiple_policy.model.conf:8"),
    Refused("a second policy type evaluated as p before", "second_policy_type",
            "second_policy_type", ("second policy type (p2)",), "second_policy_type.model.conf:8"),
    Refused("p2 lines under a model with only p", "rbac", "p2_lines_without_p2",
            ("unknown rule type 'p2'",), "p2_lines_without_p2.policy.csv:3", feature=False,
            casbin_loads=False),
    Refused("g lines with a domain under g = _, _", "rbac", "g_lines_with_a_domain",
            ("g takes 2 fields, found 3",), "g_lines_with_a_domain.policy.csv:3", feature=False,
            casbin_loads=False),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_casbins_example_that_is_not_evaluated_exactly_is_refused_by_name(case: Refused) -> None:
    model, policy = files(case.model, case.policy)
    if case.casbin_loads:
        casbin.Enforcer(str(model), str(policy))  # a model Casbin itself accepts
    with pytest.raises(PolicyError) as caught:
        load_policy(model, policy)
    problems = caught.value.problems
    for words in case.words:
        assert any(words in problem for problem in problems), (words, problems)
    assert any(case.where in problem for problem in problems), (case.where, problems)
    if case.feature:
        assert any(DOCS in problem for problem in problems), problems


# ------------------------------------------------------------------ at reload and at start
def test_a_refused_model_at_reload_keeps_the_old_policy_serving(tmp_path: Path) -> None:
    model = tmp_path / "model.conf"
    policy = tmp_path / "policy.csv"
    shutil.copy(DATA / "rbac.model.conf", model)
    shutil.copy(DATA / "rbac.policy.csv", policy)
    holder = PolicyHolder(model, policy, Metrics())

    async def scenario() -> None:
        await holder.start(watch=False)
        try:
            serving = holder.active
            assert serving is not None
            shutil.copy(DATA / "rbac_with_temporal_roles.model.conf", model)
            shutil.copy(DATA / "rbac_with_temporal_roles.policy.csv", policy)
            assert await holder.reload("test") is False
            assert holder.active is serving
            assert holder.last_error is not None and "time-limited roles" in holder.last_error
            assert beneath_subject_namespaces(serving).decide("alice", (), "read", "data2",
                                                             authenticated=True).allowed
        finally:
            await holder.aclose()

    run(scenario())


def test_a_refused_model_at_start_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "gatekeeper.yaml"
    config.write_text(yaml.safe_dump({"policy": {
        "model": str(DATA / "rbac_with_temporal_roles.model.conf"),
        "policy": str(DATA / "rbac_with_temporal_roles.policy.csv")}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    result = subprocess.run([sys.executable, "-m", "gatekeeper", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=clean)
    assert result.returncode != 0
    assert "rbac_with_temporal_roles.model.conf:10" in result.stdout + result.stderr
    assert "time-limited roles (g = _, _, (_, _)) is not supported" in result.stdout + result.stderr


# ------------------------------------------------------------------ variants, refused by name
BASE = (DATA / "rbac_with_deny.model.conf").read_text()
MATCHER = "m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act"
CLAIMS_BASE = BASE.replace("r = sub, obj, act", "r = sub, obj, act, claims")


def variant(old: str, new: str, base: str = BASE) -> str:
    assert old in base
    return base.replace(old, new)


MODEL_VARIANTS = [
    ("a role domain passed to g", variant(MATCHER, MATCHER.replace("g(r.sub, p.sub)",
                                                                   'g(r.sub, p.sub, "t1")')),
     "g() with 3 arguments"),
    ("g with its arguments swapped", variant(MATCHER, MATCHER.replace("g(r.sub, p.sub)",
                                                                      "g(p.sub, r.sub)")),
     "g(p.sub, …)"),
    ("a time-limited role without spaces", variant("g = _, _", "g = _,_,(_,_)"),
     "time-limited roles"),
    ("a role definition with four names", variant("g = _, _", "g = _, _, _, _"),
     "the role definition g = _, _, _, _"),
    ("a g2 with a domain", variant("g = _, _", "g = _, _\ng2 = _, _, _"), "role domains (g2"),
    ("g3 after g (Casbin stops at the gap)", variant("g = _, _", "g = _, _\ng3 = _, _"),
     "g3 is never read by Casbin"),
    ("a second effect", variant("[matchers]", "[matchers]", variant(
        "e = some", "e2 = some(where (p.eft == allow))\ne = some")), "second policy effect (e2)"),
    ("m3 without m2", variant(MATCHER, MATCHER + "\nm3 = r.sub == p.sub"),
     "second matcher (m3)"),
    ("a key Casbin never reads", variant(MATCHER, MATCHER + "\nmatcher = r.sub == p.sub"),
     "Casbin never reads 'matcher'"),
    ("the matcher defined twice", variant(MATCHER, MATCHER + "\nm = r.sub == p.sub"),
     "m is defined twice"),
    ("a section Casbin does not know", variant(MATCHER, MATCHER + "\n\n[role_defintion]\ng2 = _, _"),
     "section [role_defintion] is not a Casbin model section"),
    ("an attribute of the subject", variant(MATCHER, MATCHER + " && r.sub.Owner == p.obj"),
     "attribute access 'r.sub.Owner'"),
    ("an attribute of a rule field", variant(MATCHER, MATCHER + ' && p.obj.kind == "x"'),
     "attribute access 'p.obj.kind'"),
    ("a claim named like a dict method", variant(MATCHER, MATCHER + " && r.claims.items",
                                                 CLAIMS_BASE), "the claim name 'items'"),
    ("a claim name with an underscore prefix", variant(
        MATCHER, MATCHER + ' && r.claims.__class__ == "x"', CLAIMS_BASE),
     "the claim name '__class__'"),
    ("eval of a request field", variant(MATCHER, MATCHER + " && eval(r.obj)"),
     "eval() in the matcher"),
    ("timeMatch (not one of ours)", variant(MATCHER, MATCHER + ' && timeMatch("_", "_")'),
     "timeMatch"),
    ("a request field named dom, and no policy.domain",
     variant("r = sub, obj, act", "r = sub, dom, obj, act"), "set policy.domain"),
    ("a policy field named twice", variant("p = sub, obj, act, eft", "p = sub, obj, obj, eft"),
     "field(s) obj defined twice"),
    ("an effect spelled Allow", variant("p.eft == allow", "p.eft == Allow"),
     "is not one Casbin supports"),
]


@pytest.mark.parametrize(("model", "words"), [v[1:] for v in MODEL_VARIANTS],
                         ids=[v[0] for v in MODEL_VARIANTS])
def test_a_model_feature_not_evaluated_exactly_is_refused_by_name(
    tmp_path: Path, model: str, words: str
) -> None:
    (tmp_path / "model.conf").write_text(model)
    shutil.copy(DATA / "rbac_with_deny.policy.csv", tmp_path / "policy.csv")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert any(words in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("line", ["g2, /book/:id, book_group", "g, alice, admin*",
                                  "g, alice, ^admin$", "g, /pen/{id}, pen_group"],
                         ids=["a :name segment", "a star", "regex anchors", "a {name} segment"])
def test_a_role_name_that_reads_as_a_pattern_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / "model.conf").write_text((DATA / "rbac_with_resource_roles.model.conf").read_text())
    (tmp_path / "policy.csv").write_text(f"p, alice, data1, read\n{line}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert "policy.csv:2" in caught.value.problems[0] and "role pattern" in caught.value.problems[0]


def test_a_role_name_with_a_colon_inside_is_a_name(tmp_path: Path) -> None:
    (tmp_path / "model.conf").write_text((DATA / "rbac.model.conf").read_text())
    (tmp_path / "policy.csv").write_text("p, team:ops, data1, read\ng, alice, team:ops\n")
    policy = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv").policy
    assert beneath_subject_namespaces(policy).decide("alice", (), "read", "data1", authenticated=True).allowed


# ------------------------------------------------------------------ what Casbin raises on
CLAIMS_MODEL = variant(MATCHER, "m = r.sub == p.sub && r.obj == p.obj && r.claims.level != p.act",
                       CLAIMS_BASE)


@pytest.mark.parametrize(("claims", "allowed", "denied"), [
    ({"level": "gold"}, True, True),
    ({"level": "guest"}, False, False),
    ({}, False, True),
], ids=["a claim that differs", "a claim that is equal", "no such claim"])
def test_a_missing_claim_fails_the_rule_as_casbin_raises_there(
    tmp_path: Path, claims: dict[str, str], allowed: bool, denied: bool
) -> None:
    """pycasbin raises on ``r.claims.level`` of a token without it; here an allow rule then
    does not apply (before: None != "guest" was true, and the allow applied) and a deny does."""
    (tmp_path / "model.conf").write_text(CLAIMS_MODEL)
    (tmp_path / "policy.csv").write_text("p, alice, /a, guest, allow\np, alice, /b, guest, deny\n"
                                         "p, alice, /b, x, allow\n")
    policy = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv").policy
    assert beneath_subject_namespaces(policy).decide("alice", (), "GET", "/a", authenticated=True,
                         claims=claims).allowed is allowed
    assert beneath_subject_namespaces(policy).decide("alice", (), "GET", "/b", authenticated=True,
                         claims=claims).allowed is (not denied and claims.get("level") != "x")
    stock = casbin.Enforcer(str(tmp_path / "model.conf"), str(tmp_path / "policy.csv"))
    if claims:
        assert stock.enforce("alice", "/a", "GET", claims) is allowed
    else:
        with pytest.raises(Exception, match="level"):
            stock.enforce("alice", "/a", "GET", claims)


def test_a_matcher_that_gives_a_string_is_refused_at_load(tmp_path: Path) -> None:
    """pycasbin raises when a matcher's result is not a bool or a float (``a && keyGet(…)``
    gives a string); truthiness would have allowed."""
    (tmp_path / "model.conf").write_text(variant(MATCHER, "m = r.sub == p.sub && p.obj"))
    (tmp_path / "policy.csv").write_text("p, role:anonymous, data1, read, allow\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert "not true/false" in caught.value.problems[0]


def test_the_docs_table_names_every_casbin_example_this_suite_checks() -> None:
    table = (ROOT / "docs" / "policies.md").read_text().split("## Casbin model features")[1]
    table = table.split("\n## ")[0]
    examples = set()
    cases: list[Evaluated | Refused] = [*EVALUATED, *REFUSED]
    for case in cases:
        header = files(case.model, case.policy)[0].read_text().splitlines()[0]
        found = re.search(r"Casbin's example model '([a-z_0-9]+)", header)
        if found:
            examples.add(found.group(1))
    assert len(examples) >= 20
    missing = sorted(name for name in examples if name not in table)
    assert not missing, missing


@pytest.mark.parametrize(("expression", "feature"), [
    ("r.obj == p.obj[0:3]", "Subscript"), ("1 - 1 == 0", "Sub"), ("2 * 2 == 4", "Mult"),
    ("r.sub is p.sub", "Is"), ("[x for x in r.obj] == []", "ListComp"),
], ids=["a subscript", "subtraction", "multiplication", "is", "a comprehension"])
def test_an_expression_form_outside_the_table_is_refused_by_name(
    tmp_path: Path, expression: str, feature: str
) -> None:
    (tmp_path / "model.conf").write_text(variant(MATCHER, f"{MATCHER} && {expression}"))
    shutil.copy(DATA / "rbac_with_deny.policy.csv", tmp_path / "policy.csv")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv")
    assert f"{feature} expressions in the matcher is not supported" in caught.value.problems[0]
    assert DOCS in caught.value.problems[0]
