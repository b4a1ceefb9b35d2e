"""eval(p.rule): each policy line's expression compiled once, over a whitelisted language.

What a rule may say (comparisons, in, &&, ||, !, literals, request fields, claims, declared
attributes, matcher functions) and what it may not (anything else, refused with its file:line);
how a failing expression decides (an allow does not apply, a deny does); that nothing is
parsed or compiled per request; and that a decision evaluates the same number of expressions
whatever the number of rules.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.metrics import Metrics
from gatekeeper.policy import expressions
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.features import DOCS
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.policy.reload import PolicyHolder
from tests.support.fakes import run
from tests.support.policy import ALLOW_UNLESS_DENIED, casbin_model, write_policy

# Casbin's abac_rule shape, with the subject's attributes as the token's claims.
RULE_MODEL = casbin_model("sub, obj, act, claims", "sub_rule, obj, act",
                          "r.obj == p.obj && r.act == p.act && eval(p.sub_rule)", roles=None)

# Roles and a deny, the expression last: rules indexed by subject.
DENY_MODEL = casbin_model(
    "sub, obj, act, claims", "sub, obj, act, rule, eft",
    "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) && eval(p.rule)",
    effect=ALLOW_UNLESS_DENIED)


def load(tmp_path: Path, model: str, policy: str) -> CompiledPolicy:
    files = write_policy(tmp_path, model, policy)
    return load_policy(Path(files["model"]), Path(files["policy"])).policy


def refusal(tmp_path: Path, model: str, policy: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, model, policy)
    return caught.value.problems


def allowed(policy: CompiledPolicy, claims: dict[str, Any], sub: str = "u-1",
            path: str = "/data", method: str = "GET", roles: tuple[str, ...] = ()) -> bool:
    return policy.decide(sub, roles, method, path, authenticated=True, claims=claims).allowed


# ------------------------------------------------------------------ what a rule may say
EVALUATED = [
    ("r.claims.age > 18", {"age": 20}, True, "a number claim above"),
    ("r.claims.age > 18", {"age": 18}, False, "a number claim not above"),
    ("r.claims.age > 18", {}, False, "a missing claim fails the rule"),
    ("r.claims.age > 18", {"age": "20"}, False, "a string never compares with a number"),
    ("r.claims.age > 18 && r.claims.age < 60", {"age": 30}, True, "&&"),
    ("r.claims.age < 18 || r.claims.age >= 65", {"age": 70}, True, "||"),
    ("!(r.claims.age < 18)", {"age": 30}, True, "!"),
    ("!(r.claims.age < 18)", {}, False, "! of a missing claim still fails"),
    ("18 <= r.claims.age < 65", {"age": 64}, True, "a chained comparison"),
    ('r.claims.dept in ("finance", "audit")', {"dept": "audit"}, True, "in a tuple"),
    ('r.claims.dept in ("finance", "audit")', {"dept": "fin"}, False, "in a tuple, exactly"),
    ('r.claims.dept not in ["finance"]', {"dept": "sales"}, True, "not in a list"),
    ('"ops" in r.claims.groups', {"groups": ["ops", "dev"]}, True, "in a list claim"),
    ('"ops" in r.claims.groups', {"groups": "devops"}, False,
     "in a string claim fails: never a substring"),
    ('"ops" not in r.claims.groups', {"groups": "sales"}, False,
     "not in a string claim fails too"),
    ('"tenant" in r.claims', {"tenant": "acme"}, True, "in the claims: a guard"),
    ('"tenant" in r.claims && r.claims.tenant == "acme"', {}, False, "a guarded missing claim"),
    ("r.claims.org.id == 7", {"org": {"id": 7}}, True, "a nested claim"),
    ('r.sub == "u-1"', {}, True, "the subject"),
    ('r.sub == "u-2"', {}, False, "another subject"),
    ('r.act == "GET" && r.obj == "/data"', {}, True, "the method and the path"),
    ('keyMatch2(r.obj, "/:name")', {}, True, "a matcher function"),
    ('regexMatch(r.claims.email, "^[a-z]+@example\\\\.com$")', {"email": "a@example.com"}, True,
     "regexMatch on a claim"),
    ("True", {}, True, "no condition"),
    ("False", {}, False, "never"),
    ("r.claims.admin == True", {"admin": True}, True, "a boolean claim"),
    ("r.claims.level >= -1", {"level": 0}, True, "a negative number"),
]


@pytest.mark.parametrize(("rule", "claims", "expected"), [row[:3] for row in EVALUATED],
                         ids=[row[3] for row in EVALUATED])
def test_a_rule_expression_decides(tmp_path: Path, rule: str, claims: dict[str, Any],
                                   expected: bool) -> None:
    policy = load(tmp_path, RULE_MODEL, f"p, {rule}, /data, GET\n")
    assert allowed(policy, claims) is expected


def test_each_rule_has_its_own_expression(tmp_path: Path) -> None:
    policy = load(tmp_path, RULE_MODEL, "p, r.claims.age > 18, /data1, read\n"
                                        "p, r.claims.age < 60, /data2, write\n")
    for age, data1, data2 in ((16, False, True), (20, True, True), (65, True, False)):
        assert allowed(policy, {"age": age}, path="/data1", method="read") is data1
        assert allowed(policy, {"age": age}, path="/data2", method="write") is data2
        assert allowed(policy, {"age": age}, path="/data1", method="write") is False


@pytest.mark.parametrize(("claims", "expected"), [
    ({"age": 30}, True), ({"age": 12}, False), ({}, False), ({"age": "x"}, False)],
    ids=["an adult", "a minor", "no age claim: the deny applies", "an age of another type"])
def test_a_deny_whose_expression_fails_still_denies(
    tmp_path: Path, claims: dict[str, Any], expected: bool
) -> None:
    policy = load(tmp_path, DENY_MODEL, "p, role:authenticated, /films/*, GET, True, allow\n"
                                        "p, role:authenticated, /films/*, GET, r.claims.age < 18, deny\n")
    assert allowed(policy, claims, path="/films/1") is expected


def test_the_expression_of_a_rule_that_does_not_match_is_never_evaluated(tmp_path: Path) -> None:
    """eval() last in the matcher: a deny on another path does not fail for a missing claim."""
    policy = load(tmp_path, DENY_MODEL, "p, role:authenticated, /*, GET, True, allow\n"
                                        "p, role:authenticated, /films/*, GET, r.claims.age < 18, deny\n")
    assert allowed(policy, {}, path="/books/1")
    assert not allowed(policy, {}, path="/films/1")


def test_an_empty_policy_under_eval_denies(tmp_path: Path) -> None:
    assert not allowed(load(tmp_path, RULE_MODEL, ""), {"age": 30})


# ------------------------------------------------------------------ what a rule may not say
REFUSED = [
    ("r.sub.Age > 18", "attribute access 'r.sub.Age'", "the subject's attributes"),
    ("r.obj.Owner == r.sub", "attribute access 'r.obj.Owner'", "[object_attributes]"),
    ("r.claims.__class__ == 1", "the claim name '__class__'", DOCS),
    ("r.claims.items == 1", "the claim name 'items'", DOCS),
    ('__import__("os")', "unknown name '__import__'", ""),
    ('open("/etc/passwd")', "calls 'open'", "not a matcher function"),
    ("().__class__", "attribute access", ""),
    ("r.claims.a[0] == 1", "Subscript expressions are not allowed", ""),
    ("[x for x in r.claims.a] == []", "ListComp expressions are not allowed", ""),
    ("(lambda: True)()", "calls", ""),
    ("r.claims.a + 1 > 2", "BinOp expressions are not allowed", ""),
    ('"x" * 1000000000 == r.sub', "BinOp expressions are not allowed", ""),
    ("r.claims.a if True else False", "IfExp expressions are not allowed", ""),
    ("{1: 2} == r.claims", "Dict expressions are not allowed", ""),
    ('p.obj == "/data"', "unknown name 'p.obj'", "not other rule fields"),
    ("True True", "not one valid expression", ""),
    ("r.sub == 1; r.obj", "not one valid expression", ""),
    ("eval(r.claims.rule)", "eval() in a rule", DOCS),
    ('keyMatch2(r.obj, pattern="/x")', "by name", ""),
    ("keyMatch2 == r.sub", "without calling it", ""),
    ("_attrs == ()", "unknown name '_attrs'", ""),
    ('b"x" == r.sub', "the literal b'x'", ""),
    ('r.claims.a in r.claims.b in r.claims.c', "a chained 'in'", ""),
    ("r.claims.a == " + "1 + " * 3000 + "1", "longer than 4096", ""),
    ("r.claims.x @ 2", "BinOp expressions are not allowed", ""),
    ("!" * 60 + "True", "nests more than 40", ""),
    ("r.claims.a == 1e999", "the literal", ""),
    ("+r.claims.a == 1", "UAdd expressions are not allowed", ""),
    ("r.claims.a is None", "Is expressions are not allowed", ""),
    ('regexMatch(r.claims.email, "*a")', "'*a' is not a valid pattern for regexMatch()", ""),
    ("r.claims.age >", "not one valid expression", ""),
]


@pytest.mark.parametrize(("rule", "words", "more"), REFUSED, ids=[row[0][:40] for row in REFUSED])
def test_a_rule_outside_the_language_refuses_the_policy_naming_its_line(
    tmp_path: Path, rule: str, words: str, more: str
) -> None:
    problems = refusal(tmp_path, RULE_MODEL, f"p, True, /ok, GET\np, {rule}, /data, GET\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith("policy.csv:2: "), problems
    assert words in problems[0] and more in problems[0], problems


def test_every_refused_rule_is_named_at_once(tmp_path: Path) -> None:
    problems = refusal(tmp_path, RULE_MODEL, "p, r.sub.Age > 1, /a, GET\np, True, /b, GET\n"
                                             "p, r.claims.a[0], /c, GET\n")
    assert [p.split(": ")[0] for p in problems] == ["policy.csv:1", "policy.csv:3"]


@pytest.mark.parametrize(("matcher", "words"), [
    ("eval(r.obj)", "eval() in the matcher of anything but a rule field"),
    ('eval("r.sub == 1")', "eval() in the matcher of anything but a rule field"),
    ("eval(p.sub_rule, p.obj)", "eval() in the matcher of anything but a rule field"),
], ids=["a request field", "a literal", "two arguments"])
def test_eval_of_anything_but_a_rule_field_is_refused(tmp_path: Path, matcher: str,
                                                      words: str) -> None:
    model = RULE_MODEL.replace("eval(p.sub_rule)", matcher)
    problems = refusal(tmp_path, model, "p, True, /data, GET\n")
    assert any(words in p and "model.conf:11" in p for p in problems), problems


def test_a_bad_rule_at_reload_keeps_the_old_policy_serving(tmp_path: Path) -> None:
    (tmp_path / "model.conf").write_text(RULE_MODEL)
    (tmp_path / "policy.csv").write_text("p, r.claims.age > 18, /data, GET\n")
    holder = PolicyHolder(tmp_path / "model.conf", tmp_path / "policy.csv", Metrics())

    async def scenario() -> None:
        await holder.start(watch=False)
        try:
            serving = holder.active
            assert serving is not None
            (tmp_path / "policy.csv").write_text("p, r.claims.age > 18, /data, GET\n"
                                                 "p, r.claims.__class__, /data, GET\n")
            assert await holder.reload("test") is False
            assert holder.active is serving
            assert holder.last_error is not None and "policy.csv:2" in holder.last_error
            assert allowed(serving, {"age": 20}) and not allowed(serving, {"age": 10})
        finally:
            await holder.aclose()

    run(scenario())


# ------------------------------------------------------------------ compiled once, cost flat
def test_expressions_are_compiled_at_load_once_per_text_and_never_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translated: list[str] = []
    real = expressions.translate_rule

    def counting(text: str, *args: Any) -> tuple[str, tuple[Any, ...]]:
        translated.append(text)
        return real(text, *args)

    monkeypatch.setattr(expressions, "translate_rule", counting)
    rules = "".join(f"p, r.claims.age > {n % 3}, /data{n}, GET\n" for n in range(300))
    policy = load(tmp_path, RULE_MODEL, rules)
    assert sorted(translated) == ["r.claims.age > 0", "r.claims.age > 1", "r.claims.age > 2"]

    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("parsed or compiled while deciding")

    monkeypatch.setattr(expressions, "translate_rule", never)
    monkeypatch.setattr(ast, "parse", never)
    monkeypatch.setattr("builtins.compile", never)
    for n in range(300):
        assert allowed(policy, {"age": 2}, path=f"/data{n}") is (n % 3 < 2)


def test_many_distinct_expressions_compile_together(tmp_path: Path) -> None:
    """More texts than one compile() batch: each rule keeps its own expression."""
    rules = "".join(f"p, r.claims.n == {n}, /data{n}, GET\n" for n in range(2500))
    policy = load(tmp_path, RULE_MODEL, rules)
    for n in (0, 999, 1000, 1001, 2499):
        assert allowed(policy, {"n": n}, path=f"/data{n}")
        assert not allowed(policy, {"n": n + 1}, path=f"/data{n}")


def _evaluations(tmp_path: Path, rules: int) -> int:
    """How many rule expressions one decision evaluates, in a policy of ``rules`` lines."""
    lines = "".join(f"p, role:r{n}, /d/{n}/*, GET, r.claims.level >= {n % 5}, allow\n"
                    for n in range(rules))
    policy = load(tmp_path, DENY_MODEL, lines)
    count = 0
    namespace = policy._namespace  # the matcher's globals: where eval() finds the rules
    evaluate = namespace["_eval"]

    def counted(*args: Any) -> Any:
        nonlocal count
        count += 1
        return evaluate(*args)

    namespace["_eval"] = counted
    assert policy.decide("u-1", ("r3",), "GET", "/d/3/x", authenticated=True,
                         claims={"level": 4}).allowed
    return count


def test_a_decision_evaluates_as_many_expressions_with_10_rules_as_with_10000(
    tmp_path: Path
) -> None:
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _evaluations(tmp_path / "small", 10)
    assert small == 1  # the caller's one role has one rule
    assert _evaluations(tmp_path / "large", 10_000) == small
