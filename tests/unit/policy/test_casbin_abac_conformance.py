"""Casbin's ABAC examples, decided exactly as the stock Enforcer decides them.

Casbin's ``abac_rule`` passes an object as the subject and its policy reads ``r.sub.Age``; its
``abac`` passes an object as the resource and its matcher reads ``r.obj.Owner``. Gatekeeper's
subject is a string and its resource the path, so the same inputs are expressed as they reach
gatekeeper: the subject's attributes are the token's claims (``r.claims.Age``,
tests/data/casbin/abac_rule_claims.*), and the resource's are declared request attributes
(``Owner = query owner``, tests/data/casbin/abac_attributes.model.conf). The stock Enforcer is
given the same facts — the claims as a mapping, the resource as a string carrying its
attributes — and both must agree on every request of a grid, and on the answers pycasbin's own
tests document. Where the stock Enforcer raises (a missing attribute), gatekeeper denies.
The files as Casbin ships them (``r.sub.age``) are refused by name
(test_casbin_conformance.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import casbin
import pytest

from gatekeeper.policy.functions import method_match
from gatekeeper.policy.loader import load_policy
from gatekeeper.request import RequestView
from tests.support.paths import ROOT
from tests.support.policy import casbin_quiet

DATA = ROOT / "tests" / "data" / "casbin"
POLICIES = ROOT / "policies"
MISSING = object()


@pytest.fixture(autouse=True, scope="module")
def quiet_casbin() -> Iterator[None]:
    with casbin_quiet():
        yield


class Resource(str):
    """The path, with attributes, for the stock Enforcer (its ``r.obj.Owner``)."""

    def __new__(cls, path: str, **attributes: str) -> Resource:
        made = super().__new__(cls, path)
        made.__dict__.update(attributes)
        return made


def view(method: str, path: str, query: str) -> RequestView:
    return RequestView({"method": method, "path": path, "raw_path": path.encode(),
                        "query_string": query.encode(), "headers": [],
                        "client": ("127.0.0.1", 1)}, path)


def stock_answer(enforcer: casbin.Enforcer, *request: Any) -> bool | None:
    """The stock Enforcer's answer, or None where it raises (no answer: ours must deny)."""
    try:
        return bool(enforcer.enforce(*request))
    except Exception:  # simpleeval's missing attribute, a comparison of str with int, …
        return None


# ------------------------------------------------------------------ abac_rule: eval(p.sub_rule)
# pycasbin's test of abac_rule (ages 16, 20, 65), the documented answers.
DOCUMENTED_RULES = [
    (16, "/data1", "read", False), (16, "/data2", "read", False),
    (16, "/data1", "write", False), (16, "/data2", "write", True),
    (20, "/data1", "read", True), (20, "/data2", "read", False),
    (20, "/data1", "write", False), (20, "/data2", "write", True),
    (65, "/data1", "read", True), (65, "/data2", "read", False),
    (65, "/data1", "write", False), (65, "/data2", "write", False),
]


def test_abac_rule_with_claims_is_decided_as_the_stock_enforcer_decides() -> None:
    model, policy = DATA / "abac_rule_claims.model.conf", DATA / "abac_rule_claims.policy.csv"
    ours = load_policy(model, policy).policy
    stock = casbin.Enforcer(str(model), str(policy))

    def decide(claims: dict[str, Any], path: str, act: str) -> bool:
        return ours.decide("alice", (), act, path, authenticated=True, claims=claims).allowed

    for age, path, act, expected in DOCUMENTED_RULES:
        assert stock.enforce("alice", path, act, {"Age": age}) is expected
        assert decide({"Age": age}, path, act) is expected, (age, path, act)
    ages: list[Any] = [MISSING, 0, 17, 18, 19, 59, 60, 61, 18.5, "20", None, [20]]
    answers = set()
    for age, path, act in itertools.product(ages, ["/data1", "/data2", "/data3"],
                                            ["read", "write"]):
        claims = {} if age is MISSING else {"Age": age}
        stock_says = stock_answer(stock, "alice", path, act, claims)
        assert decide(claims, path, act) is bool(stock_says), (age, path, act, stock_says)
        answers.add(stock_says)
    assert answers == {True, False, None}


# ------------------------------------------------------------------ abac: r.obj.Owner
def test_abac_with_a_declared_owner_is_decided_as_the_stock_enforcer_decides() -> None:
    model, policy = DATA / "abac_attributes.model.conf", DATA / "empty.policy.csv"
    ours = load_policy(model, policy).policy
    ours.role_names = frozenset()  # Casbin's names, beneath gatekeeper's role name space
    stock = casbin.Enforcer(str(model), str(policy))
    # pycasbin's test of abac (an empty policy): alice writes what alice owns.
    assert stock.enforce("alice", Resource("/data1", Owner="alice"), "write") is True
    answers = set()
    for sub, owner, act in itertools.product(["alice", "bob"], ["alice", "bob", None],
                                             ["read", "write"]):
        resource = Resource("/data1") if owner is None else Resource("/data1", Owner=owner)
        expected = stock_answer(stock, sub, resource, act)
        request = view(act, "/data1", "" if owner is None else f"owner={owner}")
        got = ours.decide(sub, (), act, "/data1", authenticated=True, request=request)
        assert got.allowed is bool(expected), (sub, owner, act, expected)
        answers.add(expected)
    assert answers == {True, False, None}


# ------------------------------------------------------------------ the shipped ABAC example
USERS: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [
    ("u-1", (), {}),
    ("u-1", (), {"teams": ["red"], "age": 30}),
    ("u-2", ("writer",), {"teams": ["red", "blue"], "clearance": 2, "age": 17}),
    ("u-2", ("writer",), {"teams": ["blue"], "clearance": 1}),
    ("u-3", ("auditor",), {"dept": "audit", "age": 40}),
    ("u-3", ("auditor",), {"dept": "sales", "age": 12}),
    ("u-4", (), {"dept": "finance", "teams": []}),
]
TARGETS = ["/documents?owner=u-1", "/documents?owner=u-2", "/documents", "/teams/red/pages/1",
           "/teams/blue/pages/1", "/teams/red/restricted/1", "/teams/red", "/reports/q3",
           "/other"]


def rule_outcome(enforcer: casbin.Enforcer, *request: Any) -> bool | None:
    """One rule's stock evaluation: matched, not matched, or raised (None)."""
    try:
        return bool(enforcer.enforce_ex(*request)[1])
    except Exception:
        return None


def test_the_shipped_abac_example_is_decided_as_the_stock_enforcer_decides() -> None:
    """Token roles are given to the stock Enforcer as links of the subject, as the engine holds
    them (with role:authenticated and role:anonymous); it has methodMatch added. Where the
    stock Enforcer raises for the whole request, a rule failed: the expected answer is then the
    stock evaluation of each rule on its own, a failing allow not applying and a failing deny
    applying (docs/policies.md: a failing rule never switches a deny off)."""
    model = POLICIES / "abac-documents.model.conf"
    policy = POLICIES / "abac-documents.policy.csv"
    ours = load_policy(model, policy).policy
    stock = casbin.Enforcer(str(model), str(policy))
    singles = []
    for rule in ours.rules:
        single = casbin.Enforcer(str(model))
        single.add_policy(*rule.values)
        singles.append((rule.values[-1], single))
    for enforcer in [stock, *(single for _, single in singles)]:
        enforcer.add_function("methodMatch", method_match)
    answers = set()
    for (sub, roles, claims), target, method in itertools.product(
            USERS, TARGETS, ["GET", "PUT", "DELETE"]):
        path, _, query = target.partition("?")
        attributes = {}
        if query:
            attributes["Owner"] = query.removeprefix("owner=")
        if path.startswith("/teams/") and path.count("/") >= 3:
            attributes["Team"] = path.split("/")[2]
        request = (sub, Resource(path, **attributes), method, claims)
        links = [f"role:{r}" for r in roles] + ["role:authenticated", "role:anonymous"]
        for enforcer in [stock, *(single for _, single in singles)]:
            for role in links:
                enforcer.add_role_for_user(sub, role)
        try:
            whole = stock_answer(stock, *request)
            outcomes = [(effect, rule_outcome(single, *request)) for effect, single in singles]
        finally:
            for enforcer in [stock, *(single for _, single in singles)]:
                for role in links:
                    enforcer.delete_role_for_user(sub, role)
        per_rule = (any(effect == "allow" and outcome for effect, outcome in outcomes)
                    and not any(effect == "deny" and outcome is not False
                                for effect, outcome in outcomes))
        if whole is not None:
            assert per_rule is whole, (sub, roles, claims, target, method)
        got = ours.decide(sub, roles, method, path, authenticated=True, claims=claims,
                          request=view(method, path, query))
        assert got.allowed is per_rule, (sub, roles, claims, target, method, whole, outcomes)
        answers.add(whole)
    assert answers == {True, False, None}
