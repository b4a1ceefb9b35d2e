"""r.obj.NAME: attributes of the request the model declares (query parameters, path segments,
the method), read per decision, absent as a failing term, and part of the decision cache's key.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.features import DOCS
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.request import RequestView

MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = keyMatch2(r.obj, p.obj) && r.act == p.act && r.sub == r.obj.Owner

[object_attributes]
Owner = query owner
"""

POLICY = "p, role:anonymous, /documents, GET, allow\n"


def load(tmp_path: Path, model: str = MODEL, policy: str = POLICY) -> CompiledPolicy:
    (tmp_path / "model.conf").write_text(model)
    (tmp_path / "policy.csv").write_text(policy)
    return load_policy(tmp_path / "model.conf", tmp_path / "policy.csv").policy


def view(method: str, target: str) -> RequestView:
    raw_path, _, query = target.encode().partition(b"?")
    return RequestView({"method": method, "path": raw_path.decode(), "raw_path": raw_path,
                        "query_string": query, "headers": [], "client": ("127.0.0.1", 1)},
                       raw_path.decode())


def decide(policy: CompiledPolicy, sub: str, target: str, method: str = "GET") -> bool:
    request = view(method, target)
    return policy.decide(sub, (), method, request.path, authenticated=True,
                         request=request).allowed


@pytest.mark.parametrize(("target", "expected"), [
    ("/documents?owner=alice", True),
    ("/documents?owner=bob", False),
    ("/documents", False),
    ("/documents?owner=alice&owner=bob", False),
    ("/documents?owner=bob&owner=alice", False),
    ("/documents?Owner=alice", False),
    ("/documents?owner=alice;x=1", False),
    ("/documents?own%65r=alice", True),
    ("/documents?owner=al%69ce", True),
], ids=["her own", "another owner", "no owner", "repeated, hers first", "repeated, hers last",
        "another case of the name", "a ';' after it", "an encoded name", "an encoded value"])
def test_a_query_attribute_decides_as_the_app_will_read_it(
    tmp_path: Path, target: str, expected: bool
) -> None:
    assert decide(load(tmp_path), "alice", target) is expected


@pytest.mark.parametrize("order", [("alice", "bob"), ("bob", "alice")],
                         ids=["hers first", "another's first"])
def test_a_decision_cached_for_one_owner_never_answers_for_another(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    policy = load(tmp_path)
    for owner in (*order, *order):  # the second round is answered from the cache
        assert decide(policy, "alice", f"/documents?owner={owner}") is (owner == "alice"), owner
    assert len(policy._cache) == 2  # one entry per owner: the cache did answer


def test_a_missing_attribute_fails_an_allow_and_applies_a_deny(tmp_path: Path) -> None:
    model = MODEL.replace("r.sub == r.obj.Owner", 'r.obj.Owner != "root"')
    policy = load(tmp_path, model, "p, role:anonymous, /a, GET, allow\n"
                                   "p, role:anonymous, /b, GET, allow\n"
                                   "p, role:anonymous, /b, GET, deny\n")
    assert decide(policy, "u", "/a?owner=alice")
    assert not decide(policy, "u", "/a")  # the allow does not apply
    assert not decide(policy, "u", "/a?owner=x&owner=y")
    assert not decide(policy, "u", "/b?owner=alice")  # the deny applies
    assert not decide(policy, "u", "/b")  # and applies when it fails too


def test_a_decision_without_a_request_has_no_attributes(tmp_path: Path) -> None:
    policy = load(tmp_path)
    assert not policy.decide("alice", (), "GET", "/documents", authenticated=True).allowed


PATHS_MODEL = MODEL.replace("r.sub == r.obj.Owner", "r.sub == r.obj.Team && r.obj.Verb == \"GET\"")\
    .replace("Owner = query owner", "Team = path /teams/:Team/*\nVerb = method")


@pytest.mark.parametrize(("target", "method", "expected"), [
    ("/teams/red/pages/1", "GET", True),
    ("/teams/blue/pages/1", "GET", False),
    ("/teams/red/", "GET", True),
    ("/teams/red", "GET", False),
    ("/other/red/pages/1", "GET", False),
    ("/teams/red/pages/1", "POST", False),
], ids=["the team's segment", "another team", "an empty rest", "no rest: /* needs one",
        "another path", "another method"])
def test_path_and_method_attributes(tmp_path: Path, target: str, method: str,
                                    expected: bool) -> None:
    policy = load(tmp_path, PATHS_MODEL, "p, role:anonymous, /*, GET, allow\n"
                                         "p, role:anonymous, /*, POST, allow\n")
    assert decide(policy, "red", target, method) is expected


@pytest.mark.parametrize(("declaration", "words"), [
    ("Owner = query", "an attribute is 'query NAME'"),
    ("Owner = query a b", "an attribute is 'query NAME'"),
    ("Owner = header x-owner", "an attribute is 'query NAME'"),
    ("Owner = path /docs/:id", "must hold ':Owner' once"),
    ("Owner = path /docs/:Owner/:Owner", "must hold ':Owner' once"),
    ("Owner = path docs/:Owner", "does not start with '/'"),
    ("Owner = path /docs/*/:Owner", "neither plain text nor a :name"),
    ("Owner = path /d%6Fcs/:Owner", "neither plain text nor a :name"),
    ("upper = method", "cannot be an attribute name"),
    ("_x = method", "cannot be an attribute name"),
    ("Owner = query owner\nOwner = method", "declared twice"),
], ids=["query without a name", "query with two names", "an unknown source",
        "a pattern without the attribute", "a pattern with it twice", "a relative pattern",
        "a star inside", "an escape", "a name Casbin reads as a method", "an underscore name",
        "twice"])
def test_a_bad_declaration_is_refused_naming_its_line(
    tmp_path: Path, declaration: str, words: str
) -> None:
    model = MODEL.replace("Owner = query owner", declaration)
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, model)
    assert any(words in p and re.search(r"model\.conf:1[45]: ", p)
               for p in caught.value.problems), caught.value.problems


def test_an_undeclared_attribute_is_refused_naming_the_section(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, MODEL.replace("Owner = query owner", "Team = method"))
    problem = caught.value.problems[0]
    assert "attribute access 'r.obj.Owner'" in problem and "[object_attributes]" in problem
    assert DOCS in problem and "model.conf:11: " in problem


def test_an_attribute_of_an_attribute_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, MODEL.replace("r.obj.Owner", "r.obj.Owner.name"))
    assert "attribute access 'r.obj.Owner.name'" in caught.value.problems[0]
