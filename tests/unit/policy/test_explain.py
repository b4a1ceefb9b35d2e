"""``explain``: the proxy's own verdict, and the story around it (rules, subjects, near misses).

The first test is the contract: over every shipped example policy and a table of requests built
from its own rules (each role alone, users, role-named users, anonymous on and off
``public_paths``, HEAD, trailing slashes), ``explain`` gives exactly what the proxy's
``PolicyAuthorizer`` gives — allowed, reason and deciding rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.authz import FixedPolicy, PolicyAuthorizer, PublicPaths
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.explain import ExplainRequest, explain
from gatekeeper.policy.loader import load_policy
from gatekeeper.principal import ANONYMOUS, Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import PolicySettings
from tests.support.paths import ROOT
from tests.support.policy import SHIPPED_SETTINGS

POLICIES = ROOT / "policies"
PUBLIC = ("/public/*", "/api/*")  # public-read's anonymous rule needs /api/* public
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def shipped_pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for model in sorted(POLICIES.glob("*model.conf")):
        policy = model.with_name(model.name.replace("model.conf", "policy.csv"))
        if policy.exists():
            pairs.append((model, policy))
    return pairs


def line_of(path: Path, text: str) -> str:
    for number, line in enumerate(path.read_text().split("\n"), start=1):
        if line.strip() == text:
            return f"{path.name}:{number}"
    raise AssertionError(f"{text!r} not in {path}")


def instantiate(pattern: str) -> str:
    """A path the keyMatch2 pattern matches: each :param a value, * a suffix."""
    path = re.sub(r":[A-Za-z0-9_]+", "acme", pattern)
    return path.replace("*", "x/y")


def callers(policy: CompiledPolicy) -> Iterator[tuple[str, Principal]]:
    roles = sorted({name.removeprefix("role:") for rule in policy.rules for name in rule.values
                    if name.startswith("role:")} - {"authenticated", "anonymous"})
    yield "anonymous", ANONYMOUS
    yield "a user with no roles", Principal("zoe", (), {"sub": "zoe"}, "bearer")
    for role in roles:
        claims = {"sub": "zoe", "tenant": "acme"}
        yield f"role {role}", Principal("zoe", (role,), claims, "bearer")
        yield f"role {role}, other tenant", Principal("zoe", (role,), {**claims, "tenant": "globex"},
                                                      "bearer")
    yield "a user named as a role", Principal("role:admin", (), {"sub": "role:admin"}, "bearer")
    yield "a plain role name as user", Principal("admin", (), {"sub": "admin"}, "bearer")


def requests(policy: CompiledPolicy) -> Iterator[tuple[str, str]]:
    paths = {"/", "/public/logo.png", "/nowhere", "/api/me", "/me"}
    for rule in policy.rules:
        for value in rule.values:  # the object's place differs by model (sub, dom, obj, act)
            if value.startswith("/"):
                path = instantiate(value)
                paths |= {path, path + "/", path.rstrip("/") + "/deeper"}
    for path in sorted(paths):
        for method in METHODS:
            yield method, path


@pytest.mark.parametrize(("model", "policy_file"), shipped_pairs(),
                         ids=lambda p: p.name if isinstance(p, Path) else str(p))
def test_explain_agrees_with_the_proxy_on_every_shipped_policy(model: Path, policy_file: Path) -> None:
    settings = SHIPPED_SETTINGS.get(policy_file.name)
    assert_agrees(load_policy(model, policy_file, cache_size=0, settings=settings).policy,
                  policy_file)


def test_explain_agrees_with_the_proxy_where_a_head_lacks_its_get(tmp_path: Path) -> None:
    """The shipped files allow GET|HEAD together; here HEAD alone, so the proxy's HEAD rule
    (a HEAD needs the GET) decides some rows."""
    policy_file = tmp_path / "policy.csv"
    policy_file.write_text("g, role:admin, role:viewer\np, role:viewer, /x/*, HEAD, allow\n"
                           "p, role:admin, /x/*, GET, allow\np, role:viewer, /y/*, GET|HEAD, allow\n")
    assert_agrees(load_policy(POLICIES / "model.conf", policy_file, cache_size=0).policy,
                  policy_file)


def assert_agrees(policy: CompiledPolicy, policy_file: Path) -> None:
    authorizer = PolicyAuthorizer(FixedPolicy(policy), PublicPaths(PUBLIC))
    checked = 0
    for who, principal in callers(policy):
        for method, path in requests(policy):
            verdict = authorizer.authorize(principal, method, path)
            result = explain(policy, ExplainRequest.from_principal(principal, method, path),
                             public_paths=PUBLIC, policy_file=policy_file)
            got = (result.allowed, result.reason, result.decided_by)
            assert got == (verdict.allowed, verdict.reason, verdict.rule), (who, method, path)
            if result.decided_by is not None:
                assert result.decided_by in [m.rule for m in result.matched], (who, method, path)
            if result.allowed:
                assert result.nearest == (), (who, method, path)
            checked += 1
    assert checked > 100


ABAC_MODEL = POLICIES / "abac-documents.model.conf"
ABAC_POLICY = POLICIES / "abac-documents.policy.csv"
OWN_DOCUMENTS = "p, role:authenticated, /documents, GET|HEAD, r.obj.Owner == r.sub, allow"


@pytest.mark.parametrize(("target", "allowed", "failed"), [
    pytest.param("/documents?owner=alice", True, None, id="own-owner"),
    pytest.param("/documents?owner=bob", False, "false", id="another-owner"),
    pytest.param("/documents?owner=bob&owner=alice", False, "error", id="repeated-owner"),
    pytest.param("/documents", False, "error", id="no-owner"),
])
def test_explain_reads_the_query_attributes_the_model_declares(
    target: str, allowed: bool, failed: str | None
) -> None:
    """The shipped ABAC example's ``r.obj.Owner`` (``query owner``): explained as the proxy
    decides the same target, and a deny names the rule's eval() condition as what failed."""
    policy = load_policy(ABAC_MODEL, ABAC_POLICY, cache_size=0).policy
    principal = Principal("alice", (), {"sub": "alice"}, "bearer")
    path, _, query = target.partition("?")
    http = RequestView({"method": "GET", "path": path, "query_string": query.encode(),
                        "headers": []}, path)
    verdict = PolicyAuthorizer(FixedPolicy(policy), PublicPaths(())).authorize(
        principal, "GET", path, http)
    result = explain(policy, ExplainRequest.from_principal(principal, "GET", target),
                     policy_file=ABAC_POLICY)
    assert (result.allowed, result.reason, result.decided_by) == (
        verdict.allowed, verdict.reason, verdict.rule)
    assert result.allowed is allowed
    own = line_of(ABAC_POLICY, OWN_DOCUMENTS)
    if allowed:
        assert result.decided_by == own
        assert [m.rule for m in result.matched] == [own]
    else:
        near = {n.rule: n for n in result.nearest}
        assert near[own].term == "eval(p.rule)"
        assert near[own].result.startswith(failed or "")


def rbac() -> tuple[CompiledPolicy, Path]:
    policy_file = POLICIES / "policy.csv"
    return load_policy(POLICIES / "model.conf", policy_file).policy, policy_file


def test_the_subjects_say_where_each_role_came_from() -> None:
    policy, policy_file = rbac()
    result = explain(policy, ExplainRequest("GET", "/api/p1/items", "carol", ("admin",)),
                     policy_file=policy_file)
    held = {s.name: (s.via, list(s.chain)) for s in result.subjects}
    assert held == {
        "carol": ("token subject", ["carol"]),
        "role:admin": ("token role", ["role:admin"]),
        "role:authenticated": ("role:authenticated", ["role:authenticated"]),
        "role:anonymous": ("role:anonymous", ["role:anonymous"]),
        "role:editor": (f"g line {line_of(policy_file, 'g, role:admin, role:editor')}",
                        ["role:admin", "role:editor"]),
        "role:viewer": (f"g line {line_of(policy_file, 'g, role:editor, role:viewer')}",
                        ["role:admin", "role:editor", "role:viewer"]),
    }
    assert result.allowed and result.decided_by == line_of(
        policy_file, "p, role:viewer, /api/:project/items, GET|HEAD, allow")


def test_a_g_line_is_not_named_when_the_file_no_longer_holds_it(tmp_path: Path) -> None:
    policy, policy_file = rbac()
    changed = tmp_path / "policy.csv"
    changed.write_text(policy_file.read_text().replace("g, role:editor, role:viewer\n", ""))
    result = explain(policy, ExplainRequest("GET", "/api/p1/items", "dana", ("editor",)),
                     policy_file=changed)
    assert {s.name: s.via for s in result.subjects}["role:viewer"] == "g line"


def test_a_deny_names_the_nearest_rules_and_the_first_term_that_failed() -> None:
    policy, policy_file = rbac()
    result = explain(policy, ExplainRequest("GET", "/admin/users", "dana", ("editor",)))
    assert (result.allowed, result.reason, result.matched) == (False, "no_matching_rule", ())
    nearest = result.nearest[0].as_json()
    assert nearest["rule"] == line_of(policy_file, "p, role:admin, /admin/*, *, allow")
    assert (nearest["term"], nearest["result"]) == ("g(r.sub, p.sub)", "false")
    assert nearest["values"] == {"r.sub": "dana", "p.sub": "role:admin"}
    assert 1 <= len(result.nearest) <= 5
    assert all(n.result == "false" for n in result.nearest)


def test_a_deny_rule_that_won_is_named_with_the_allow_it_beat() -> None:
    policy, policy_file = rbac()
    result = explain(policy, ExplainRequest("DELETE", "/api/p1/items/audit", "carol", ("admin",)))
    deny = line_of(policy_file, "p, role:authenticated, /api/:project/items/audit, DELETE, deny")
    allow = line_of(policy_file, "p, role:editor, /api/:project/items/:id, PUT|PATCH|DELETE, allow")
    assert (result.allowed, result.reason, result.decided_by) == (False, "policy_deny", deny)
    assert [(m.rule, m.effect) for m in result.matched] == [(allow, "allow"), (deny, "deny")]
    assert result.effect == "some(where (p.eft == allow)) && !some(where (p.eft == deny))"


def test_a_head_is_explained_by_the_get_it_needs(tmp_path: Path) -> None:
    (tmp_path / "policy.csv").write_text("p, role:viewer, /x, HEAD, allow\n")
    policy = load_policy(POLICIES / "model.conf", tmp_path / "policy.csv").policy
    result = explain(policy, ExplainRequest("head", "/x", "bob", ("viewer",)))
    assert (result.allowed, result.reason, result.method) == (False, "no_matching_rule", "GET")
    assert any("HEAD needs the GET" in note for note in result.notes)
    assert result.nearest[0].term == "methodMatch(r.act, p.act)"


@pytest.mark.parametrize(("request_", "reason"), [
    (ExplainRequest("GET", "/api/me"), "no_credentials"),
    (ExplainRequest("GET", "/api/me", "role:admin"), "subject_names_a_role"),
    (ExplainRequest("GET", "/api/me", "Admin"), "subject_names_a_role"),
    (ExplainRequest("GET", "api/me", "bob"), "malformed_target"),
], ids=["anonymous off public_paths", "a user named role:admin", "a user named as a plain role",
        "a target that is not origin-form"])
def test_refusals_before_any_rule_name_no_rule(request_: ExplainRequest, reason: str) -> None:
    policy, _ = rbac()
    result = explain(policy, request_, public_paths=["/public/*"])
    assert (result.allowed, result.reason, result.decided_by) == (False, reason, None)
    assert result.matched == () and result.nearest == () and result.notes


def test_the_path_is_made_canonical_and_the_method_upper_case() -> None:
    policy, _ = rbac()
    result = explain(policy, ExplainRequest("get", "/api/./p1//items?x=1", "bob", ("viewer",)))
    assert (result.method, result.path, result.allowed) == ("GET", "/api/p1/items", True)


def test_a_claim_term_shows_the_claim_it_read() -> None:
    policy_file = POLICIES / "tenants.policy.csv"
    policy = load_policy(POLICIES / "tenants.model.conf", policy_file).policy
    result = explain(policy, ExplainRequest("GET", "/tenants/acme/projects", "zoe", ("member",),
                                            {"tenant": "globex"}))
    assert not result.allowed
    miss = result.nearest[0]
    assert miss.rule == line_of(policy_file, "p, role:member, /tenants/:tenant/*, GET|HEAD, allow")
    assert miss.term.startswith("keyGet2(r.obj, p.obj, 'tenant') == ''")
    assert dict(miss.values)["r.claims.tenant"] == "globex"


def test_as_json_holds_the_contract_keys() -> None:
    policy, _ = rbac()
    data = explain(policy, ExplainRequest("GET", "/admin/x", "dana", ("editor",))).as_json()
    assert {"allowed", "reason", "decided_by", "effect", "subjects", "matched",
            "nearest"} <= set(data)
    assert {"name", "via", "chain"} == set(data["subjects"][0])
    assert {"rule", "text", "effect", "term", "result", "values"} <= set(data["nearest"][0])


def test_a_g_line_is_numbered_as_the_loader_numbers_lines(tmp_path: Path) -> None:
    """Lines break at "\\n" only (as Casbin's adapter reads them): a lone "\\r" in a comment
    does not start a line, so the g line after it is line 2."""
    policy_file = tmp_path / "policy.csv"
    policy_file.write_bytes(b"# viewers\rread\ng, role:editor, role:viewer\n"
                            b"p, role:viewer, /x, GET, allow\n")
    policy = load_policy(POLICIES / "model.conf", policy_file).policy
    result = explain(policy, ExplainRequest("GET", "/x", "dana", ("editor",)),
                     policy_file=policy_file)
    assert result.decided_by == "policy.csv:3"
    assert {s.name: s.via for s in result.subjects}["role:viewer"] == "g line policy.csv:2"


OWNER_MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && r.act == p.act && r.obj.Owner == r.sub

[object_attributes]
Owner = query owner
"""


@pytest.mark.parametrize(("target", "read"), [
    pytest.param("/documents?owner=alice", "alice", id="the value the query carries"),
    pytest.param("/documents", "<missing>", id="no such parameter"),
    pytest.param("/documents?owner=alice&owner=bob", "<ambiguous: frameworks read the query "
                 "differently>", id="a parameter frameworks read differently"),
])
def test_a_near_miss_shows_the_object_attribute_it_read(tmp_path: Path, target: str, read: str) -> None:
    (tmp_path / "model.conf").write_text(OWNER_MODEL)
    (tmp_path / "policy.csv").write_text("p, role:reader, /documents, GET\n")
    policy = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv", cache_size=0).policy
    result = explain(policy, ExplainRequest("GET", target, "bob", ("reader",)),
                     policy_file=tmp_path / "policy.csv")
    assert not result.allowed
    [near] = result.nearest
    assert near.term == "r.obj.Owner == r.sub"
    assert dict(near.values) == {"r.obj.Owner": read, "r.sub": "bob"}


HOST_TENANT_MODEL = """\
[request_definition]
r = sub, dom, obj, act, client

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act \
&& ipMatch(r.client, "10.0.0.0/8")
"""


@pytest.mark.parametrize(("host", "client", "allowed", "reason"), [
    ("acme.example.com", "10.1.2.3", True, "policy_allow"),
    ("ACME.example.com:8443", "10.1.2.3", True, "policy_allow"),
    ("globex.example.com", "10.1.2.3", False, "no_matching_rule"),
    ("acme.example.com", "203.0.113.9", False, "no_matching_rule"),
    ("a.example.com, b.example.com", "10.1.2.3", False, "bad_host"),
], ids=["the tenant's host, inside the network", "its host in capitals with a port",
        "another tenant's host", "outside the network", "a list of hosts"])
def test_explain_reads_the_host_tenant_and_the_client_as_the_proxy_does(
    tmp_path: Path, host: str, client: str, allowed: bool, reason: str,
) -> None:
    (tmp_path / "model.conf").write_text(HOST_TENANT_MODEL)
    (tmp_path / "policy.csv").write_text("p, role:editor, acme.example.com, /docs/*, PUT\n"
                                         "g, u-7, role:editor, acme.example.com\n")
    files = PolicySettings(model=str(tmp_path / "model.conf"), policy=str(tmp_path / "policy.csv"),
                           domain={"host": True}, watch=False)
    policy = load_policy(files.model, files.policy, cache_size=0, settings=files).policy
    principal = Principal("u-7", (), {"sub": "u-7"}, "bearer")
    http = RequestView({"method": "PUT", "path": "/docs/a", "query_string": b"",
                        "headers": [(b"host", host.encode())], "client": (client, 0)}, "/docs/a")
    verdict = PolicyAuthorizer(FixedPolicy(policy), PublicPaths(())).authorize(
        principal, "PUT", "/docs/a", http)
    result = explain(policy, ExplainRequest.from_principal(principal, "PUT", "/docs/a", host=host,
                                                           client=client),
                     policy_file=tmp_path / "policy.csv")
    assert (result.allowed, result.reason) == (verdict.allowed, verdict.reason) == (allowed, reason)
    if allowed:
        editor = {s.name: s for s in result.subjects}["role:editor"]
        assert result.decided_by is not None and editor.chain == ("u-7", "role:editor")
        assert editor.via == "g line policy.csv:2"  # the tenant's own g line, by its number
