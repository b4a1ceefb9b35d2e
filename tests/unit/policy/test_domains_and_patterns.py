"""Tenants (Casbin domains), role patterns, custom request fields and ipMatch: decided exactly as
the stock ``casbin.Enforcer`` decides the same model and policy files (issue 14 §1, §3, §4).

The stock Enforcer is set up as Casbin users set it up in code: ``add_named_matching_func`` for
a role type whose names are patterns, ``add_named_domain_matching_func('g', …)`` for domain
patterns. Gatekeeper gets the same from ``policy.role_matching`` / ``policy.domain_matching``.
Role patterns are compared with a freshly loaded Enforcer per request path: Casbin's role
manager keeps a node for every name it was asked about, so its later answers may depend on the
earlier questions; gatekeeper answers every request as a fresh Enforcer would.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import casbin
import pytest
from casbin.util import builtin_operators as casbin_ops

from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import DomainSource, PolicySettings
from gatekeeper.subjects import ANONYMOUS_ROLE, AUTHENTICATED_ROLE, as_role
from tests.support.paths import ROOT
from tests.support.policy import casbin_model, casbin_quiet

DATA = ROOT / "tests" / "data" / "casbin"
T, F = True, False
BY_CLAIM = DomainSource(claim="tenant")
STOCK_FUNCTIONS = {"keyMatch": casbin_ops.key_match, "keyMatch2": casbin_ops.key_match2,
                   "keyMatch3": casbin_ops.key_match3, "globMatch": casbin_ops.glob_match}


@pytest.fixture(autouse=True, scope="module")
def quiet_casbin() -> Iterator[None]:
    with casbin_quiet():
        yield


def files(model: str, policy: str) -> tuple[Path, Path]:
    return DATA / f"{model}.model.conf", DATA / f"{policy}.policy.csv"


def plain(policy: CompiledPolicy) -> CompiledPolicy:
    """Casbin's examples name users and roles alike: compared beneath gatekeeper's subject name
    spaces (test_casbin_conformance.beneath_subject_namespaces)."""
    policy.role_names = frozenset()
    return policy


def stock(model: Path, policy: Path, settings: PolicySettings) -> casbin.Enforcer:
    enforcer = casbin.Enforcer(str(model), str(policy))
    for key, name in settings.role_matching.items():
        enforcer.add_named_matching_func(key, STOCK_FUNCTIONS[name])
    if settings.domain_matching is not None:
        enforcer.add_named_domain_matching_func("g", STOCK_FUNCTIONS[settings.domain_matching])
    return enforcer


def view(host: str = "localhost", client: str = "127.0.0.1",
         headers: Sequence[tuple[bytes, bytes]] = ()) -> RequestView:
    return RequestView({"method": "GET", "path": "/", "headers": [(b"host", host.encode()),
                                                                 *headers],
                        "client": (client, 0)}, "/")


# ------------------------------------------------------------------ tenants: r = sub, dom, obj, act
DOMAIN_CASES = [
    ("rbac_with_domains", "rbac_with_domains", PolicySettings(domain=BY_CLAIM), (
        (("alice", "domain1", "data1", "read"), T), (("alice", "domain1", "data1", "write"), T),
        (("alice", "domain1", "data2", "read"), F), (("alice", "domain2", "data2", "read"), F),
        (("bob", "domain2", "data2", "read"), T), (("bob", "domain1", "data1", "read"), F))),
    ("rbac_with_domain_pattern", "rbac_with_domain_pattern",
     PolicySettings(domain=BY_CLAIM, domain_matching="keyMatch"), (
        (("alice", "domain1", "data1", "read"), T), (("alice", "domain2", "data2", "write"), T),
        (("alice", "domain3", "data1", "read"), F), (("bob", "domain1", "data1", "read"), F),
        (("bob", "domain2", "data2", "read"), T), (("carol", "domain1", "data3", "read"), T),
        (("carol", "domain2", "data3", "read"), F))),
    ("rbac_with_domain_pattern (keyMatch2)", "rbac_with_domain_pattern",
     PolicySettings(domain=BY_CLAIM, domain_matching="keyMatch2"), (
        (("alice", "domain2", "data2", "read"), T), (("bob", "domain1", "data1", "read"), F))),
]


def _values(policy: Path, *extra: str) -> list[str]:
    found: set[str] = set()
    for line in policy.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            found.update(part.strip() for part in line.split(",")[1:])
    return sorted(found | set(extra))


@pytest.mark.parametrize(("model", "settings", "documented"),
                         [(c[1], c[2], c[3]) for c in DOMAIN_CASES], ids=[c[0] for c in DOMAIN_CASES])
def test_a_tenant_model_is_decided_as_the_stock_enforcer_decides(
    model: str, settings: PolicySettings, documented: Sequence[tuple[tuple[str, ...], bool]]
) -> None:
    model_path, policy_path = files(model, model)
    ours = plain(load_policy(model_path, policy_path, settings=settings).policy)
    reference = stock(model_path, policy_path, settings)
    values = _values(policy_path, "domain3", "nobody")
    generated = list(itertools.product(values, repeat=4))
    answers = set()
    for request, expected in [*documented, *((r, None) for r in generated)]:
        sub, dom, obj, act = request
        allowed, rule = reference.enforce_ex(sub, dom, obj, act)
        if expected is not None:
            assert allowed is expected, ("transcribed wrongly", request)
        verdict = ours.decide(sub, (), act, obj, authenticated=True, claims={"tenant": dom})
        assert (verdict.allowed, list(verdict.rule.values) if verdict.rule else []) == \
            (allowed, list(rule)), request
        answers.add(allowed)
    assert answers == {True, False}


def test_a_domain_taken_from_a_claim_in_the_matcher_is_decided_as_casbin_does() -> None:
    """``g(r.sub, p.sub, r.claims.tenant)``: the domain is whatever the matcher passes to g."""
    model_path, policy_path = files("rbac_with_tenant_claim_domains", "rbac_with_domains")
    ours = plain(load_policy(model_path, policy_path).policy)
    reference = stock(model_path, policy_path, PolicySettings())
    for sub, dom, obj, act in itertools.product(_values(policy_path, "domain3"), repeat=4):
        claims = {"tenant": dom}
        allowed, rule = reference.enforce_ex(sub, obj, act, claims)
        verdict = ours.decide(sub, (), act, obj, authenticated=True, claims=claims)
        assert (verdict.allowed, list(verdict.rule.values) if verdict.rule else []) == \
            (allowed, list(rule)), (sub, dom, obj, act)


TOKEN_MODEL = casbin_model(
    "sub, dom, obj, act", "sub, dom, obj, act",
    "g(r.sub, p.sub, r.dom) && keyMatch(r.dom, p.dom) && keyMatch2(r.obj, p.obj) && r.act == p.act",
    roles="_, _, _")
TOKEN_POLICY = """\
p, role:admin, acme, /admin/*, GET
p, role:viewer, *, /docs/:id, GET
p, role:authenticated, acme, /me, GET
p, role:auditor, globex, /audit/*, GET
g, role:admin, role:viewer, acme
g, role:viewer, role:auditor, globex
g, alice, role:admin, globex
"""


@pytest.mark.parametrize("roles", [(), ("admin",), ("viewer",), ("admin", "viewer")],
                         ids=["no token role", "admin", "viewer", "admin and viewer"])
def test_token_roles_hold_in_the_requests_tenant_only_as_the_stock_enforcer_with_those_links(
    tmp_path: Path, roles: tuple[str, ...]
) -> None:
    """A token role is a link of the subject in the request's domain: the stock Enforcer told
    ``g, alice, role:NAME, <domain>`` (and role:authenticated, role:anonymous) decides the same."""
    (tmp_path / "model.conf").write_text(TOKEN_MODEL)
    (tmp_path / "policy.csv").write_text(TOKEN_POLICY)
    settings = PolicySettings(domain=BY_CLAIM, domain_matching="keyMatch")
    ours = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv", settings=settings).policy
    paths = ["/admin/x", "/docs/1", "/me", "/audit/a", "/other"]
    for tenant, path in itertools.product(["acme", "globex", "initech"], paths):
        reference = stock(tmp_path / "model.conf", tmp_path / "policy.csv", settings)
        for name in (*map(as_role, roles), AUTHENTICATED_ROLE, ANONYMOUS_ROLE):
            reference.add_grouping_policy("alice", name, tenant)
        allowed, rule = reference.enforce_ex("alice", tenant, path, "GET")
        verdict = ours.decide("alice", roles, "GET", path, authenticated=True,
                              claims={"tenant": tenant})
        assert (verdict.allowed, list(verdict.rule.values) if verdict.rule else []) == \
            (allowed, list(rule)), (tenant, path)


# ------------------------------------------------------------------ the domain: never missing, never shared
def tenant_policy(tmp_path: Path, source: DomainSource) -> CompiledPolicy:
    (tmp_path / "model.conf").write_text(TOKEN_MODEL.replace("keyMatch(r.dom, p.dom)",
                                                             "r.dom == p.dom"))
    (tmp_path / "policy.csv").write_text(TOKEN_POLICY)
    return load_policy(tmp_path / "model.conf", tmp_path / "policy.csv",
                       settings=PolicySettings(domain=source)).policy


@pytest.mark.parametrize("claims", [{}, {"tenant": ""}, {"tenant": 7}, {"tenant": ["acme"]},
                                    {"tenant": None}, {"tenant": {"id": "acme"}}],
                         ids=["no claim", "empty", "a number", "a list", "null", "an object"])
def test_a_missing_or_odd_tenant_claim_is_a_deny_with_a_reason(
    tmp_path: Path, claims: dict[str, Any]
) -> None:
    policy = tenant_policy(tmp_path, BY_CLAIM)
    verdict = policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                            claims=claims)
    assert (verdict.allowed, verdict.reason) == (False, "no_domain")
    assert policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                         claims={"tenant": "acme"}).allowed


def test_a_decision_cached_for_one_tenant_never_answers_another(tmp_path: Path) -> None:
    policy = tenant_policy(tmp_path, BY_CLAIM)
    for _ in range(2):  # the second round is served from the cache
        assert policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                             claims={"tenant": "acme"}).allowed
        assert not policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                                 claims={"tenant": "globex"}).allowed


def test_a_decision_cached_for_one_host_never_answers_another(tmp_path: Path) -> None:
    tenant_policy(tmp_path, DomainSource(host=True))  # the model file
    (tmp_path / "policy.csv").write_text(TOKEN_POLICY.replace("acme", "acme.example.com"))
    policy = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv",
                         settings=PolicySettings(domain=DomainSource(host=True))).policy
    for _ in range(2):
        assert policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                             request=view("ACME.example.com:8443")).allowed
        assert not policy.decide("alice", ["admin"], "GET", "/admin/x", authenticated=True,
                                 request=view("globex.example.com")).allowed


@pytest.mark.parametrize(("path", "allowed", "reason"), [
    ("/acme/admin/x", True, "policy_allow"),
    ("/globex/admin/x", False, "no_matching_rule"),
    ("/", False, "no_domain"),
], ids=["the tenant's segment", "another tenant's segment", "no segment"])
def test_a_tenant_from_a_path_segment(tmp_path: Path, path: str, allowed: bool, reason: str) -> None:
    (tmp_path / "model.conf").write_text(TOKEN_MODEL.replace("keyMatch(r.dom, p.dom)",
                                                             "r.dom == p.dom"))
    (tmp_path / "policy.csv").write_text("p, role:admin, acme, /:tenant/admin/*, GET\n")
    policy = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv",
                         settings=PolicySettings(domain=DomainSource(path_segment=1))).policy
    verdict = policy.decide("alice", ["admin"], "GET", path, authenticated=True)
    assert (verdict.allowed, verdict.reason) == (allowed, reason)


def test_a_model_reading_the_domain_without_a_source_is_refused_at_load() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(*files("rbac_with_domains", "rbac_with_domains"))
    assert any("rbac_with_domains.model.conf:4" in p and "set policy.domain" in p
               for p in caught.value.problems), caught.value.problems


def test_a_role_domain_pattern_without_domain_matching_is_refused() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(*files("rbac_with_domain_pattern", "rbac_with_domain_pattern"),
                    settings=PolicySettings(domain=BY_CLAIM))
    assert any("policy.csv:7" in p and "role pattern '*'" in p and "policy.domain_matching" in p
               for p in caught.value.problems), caught.value.problems


# ------------------------------------------------------------------ role patterns (g2)
PATTERN_CASES = [
    ("keyMatch2", "rbac_with_pattern", (
        (("alice", "/book/1", "GET"), T), (("alice", "/book/2", "GET"), T),
        (("alice", "/pen/1", "GET"), T), (("alice", "/pen/2", "GET"), F),
        (("bob", "/book/1", "GET"), F), (("bob", "/pen/2", "GET"), T))),
    ("keyMatch3", "rbac_with_pattern", (
        (("alice", "/book2/1", "GET"), T), (("alice", "/pen2/1", "GET"), T),
        (("alice", "/pen2/2", "GET"), F), (("bob", "/pen2/2", "GET"), T))),
    ("globMatch", "rbac_with_pattern_glob", (
        (("alice", "/book/1", "GET"), T), (("alice", "/pen/special/1", "GET"), T),
        (("bob", "/pen/special/1", "GET"), F), (("bob", "/pen/1", "GET"), T),
        (("bob", "/book/1", "GET"), F))),
    ("keyMatch", "rbac_with_pattern_glob", (
        (("alice", "/book/1", "GET"), T), (("bob", "/pen/x/y", "GET"), T))),
]


@pytest.mark.parametrize(("function", "policy", "documented"), PATTERN_CASES,
                         ids=[f"g2 with {c[0]} ({c[1]})" for c in PATTERN_CASES])
def test_role_patterns_are_decided_as_a_fresh_stock_enforcer_decides(
    function: str, policy: str, documented: Sequence[tuple[tuple[str, ...], bool]]
) -> None:
    settings = PolicySettings(role_matching={"g2": function})
    model_path, policy_path = files("rbac_with_pattern", policy)
    ours = plain(load_policy(model_path, policy_path, settings=settings).policy)
    subjects = ["alice", "bob", "book_admin", "pen_admin", "nobody"]
    paths = ["/book/1", "/book/2", "/pen/1", "/pen/2", "/book2/1", "/pen2/1", "/pen2/2",
             "/pen/special/1", "/pen/x/y", "/book/", "/book", "book_group", "pen_group",
             "special_pens", "/book/:id", "/pen/*", "/other"]
    answers = set()
    for path in paths:
        reference = stock(model_path, policy_path, settings)  # fresh per path (module docstring)
        for sub in subjects:
            allowed, rule = reference.enforce_ex(sub, path, "GET")
            verdict = ours.decide(sub, (), "GET", path, authenticated=True)
            assert (verdict.allowed, list(verdict.rule.values) if verdict.rule else []) == \
                (allowed, list(rule)), (sub, path)
            answers.add(allowed)
    for (sub, path, act), expected in documented:
        assert stock(model_path, policy_path, settings).enforce(sub, path, act) is expected
        assert ours.decide(sub, (), act, path, authenticated=True).allowed is expected
    assert answers == {True, False}


def test_role_matching_names_a_role_type_the_model_defines() -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy(*files("rbac_with_pattern", "rbac_with_pattern"),
                    settings=PolicySettings(role_matching={"g3": "keyMatch2"}))
    assert any("policy.role_matching names g3" in p for p in caught.value.problems)


# ------------------------------------------------------------------ custom request fields
def test_request_fields_with_other_names_are_fed_by_position() -> None:
    model_path, policy_path = files("rbac_with_custom_fields", "rbac_with_custom_fields")
    ours = plain(load_policy(model_path, policy_path).policy)
    assert ours.sources == ("subject", "path", "method") and ours.indexed
    reference = stock(model_path, policy_path, PolicySettings())
    names = _values(policy_path, "nobody", "DELETE")
    for user, thing, action in itertools.product(names, repeat=3):
        allowed, rule = reference.enforce_ex(user, thing, action)
        verdict = ours.decide(user, (), action, thing, authenticated=True)
        assert (verdict.allowed, list(verdict.rule.values) if verdict.rule else []) == \
            (allowed, list(rule)), (user, thing, action)
    assert ours.decide("alice", (), "POST", "/data", authenticated=True).allowed


@pytest.mark.parametrize(("request_line", "configured", "words"), [
    ("r = user, thing, action, extra, more", None,
     "the request field(s) user, thing, action, extra, more cannot be fed"),
    ("r = obj, user, act", None, "obj (position 1 is the subject)"),
    ("r = sub, obj, act", ["subject", "path"], "policy.request names 2 source(s) for the 3"),
], ids=["five unknown names", "a known name out of place", "policy.request of another length"])
def test_a_request_field_that_cannot_be_fed_is_a_load_error_naming_it(
    tmp_path: Path, request_line: str, configured: list[str] | None, words: str
) -> None:
    text = files("rbac_with_custom_fields", "rbac_with_custom_fields")[0].read_text()
    (tmp_path / "model.conf").write_text(text.replace("r = user, thing, action", request_line))
    (tmp_path / "policy.csv").write_text("p, alice, /data, GET\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "model.conf", tmp_path / "policy.csv",
                    settings=PolicySettings(request=configured))
    assert any("model.conf:4" in p and words in p for p in caught.value.problems), \
        caught.value.problems


# ------------------------------------------------------------------ ipMatch on the client address
IP_SETTINGS = PolicySettings(request=["client", "path", "method"])


def test_ipmatch_reads_the_client_address_as_the_stock_enforcer_reads_r_sub() -> None:
    model_path, policy_path = files("ipmatch", "ipmatch")
    ours = load_policy(model_path, policy_path, settings=IP_SETTINGS).policy
    reference = stock(model_path, policy_path, PolicySettings())
    for client, path, method in itertools.product(
            ["192.168.2.1", "192.168.3.1", "10.0.255.255", "10.1.0.1", "::ffff:192.168.2.9"],
            ["data1", "data2"], ["read", "write"]):
        expected = reference.enforce(client.removeprefix("::ffff:"), path, method)
        verdict = ours.decide("alice", (), method, path, authenticated=True, request=view(client=client))
        assert verdict.allowed is expected, (client, path, method)


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "allowed"), [
    ("192.168.2.7", None, False, True),
    ("203.0.113.9", b"192.168.2.7", False, False),
    ("10.9.9.9", b"192.168.2.7", True, True),
    ("10.9.9.9", b"192.168.2.7, 203.0.113.9", True, False),
], ids=["the peer itself", "an untrusted peer's forwarded-for is ignored",
        "behind a trusted proxy: the forwarded client", "the hop the trusted proxy appended"])
def test_ipmatch_believes_forwarded_for_from_trusted_proxies_only(
    peer: str, forwarded: bytes | None, trusted: bool, allowed: bool
) -> None:
    ours = load_policy(*files("ipmatch", "ipmatch"), settings=IP_SETTINGS).policy
    headers = [(b"x-forwarded-for", forwarded)] if forwarded else []
    verdict = ours.decide("alice", (), "read", "data1", authenticated=True,
                          request=view(client=peer, headers=headers),
                          is_trusted=lambda address: trusted and address.startswith("10."))
    assert verdict.allowed is allowed


def test_a_decision_cached_for_one_client_address_never_answers_another() -> None:
    ours = load_policy(*files("ipmatch", "ipmatch"), settings=IP_SETTINGS).policy
    for _ in range(2):
        assert ours.decide("alice", (), "read", "data1", authenticated=True,
                           request=view(client="192.168.2.1")).allowed
        assert not ours.decide("alice", (), "read", "data1", authenticated=True,
                               request=view(client="192.168.3.1")).allowed
