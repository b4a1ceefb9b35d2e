"""Tenants (Casbin domains, request field names) and ABAC (eval(p.rule), r.obj.NAME) in one
model: the two features came from branches written apart, and each reads the request in its
own way — the domain from a claim, the attributes from the query. Here both decide together,
on the field names a model chooses, and the decision cache keys on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.loader import PolicyError, load_policy
from gatekeeper.request import RequestView
from gatekeeper.settings.routes import DomainSource, PolicySettings
from tests.support.policy import ALLOW_UNLESS_DENIED, casbin_model, write_policy

TENANT_CLAIM = PolicySettings(domain=DomainSource(claim="tenant"))

DOMAINS_EVAL = casbin_model(
    "sub, dom, obj, act, claims", "sub, dom, obj, act, rule, eft",
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act"
    " && eval(p.rule)", roles="_, _, _", effect=ALLOW_UNLESS_DENIED,
    more="[object_attributes]\nOwner = query owner\n")

DOMAINS_EVAL_RULES = """\
p, role:member, acme, /documents, GET, r.obj.Owner == r.sub && r.claims.level >= 2, allow
p, role:member, acme, /documents, DELETE, g(r.sub, "role:admin", r.dom), allow
g, alice, role:admin, acme
"""

# Casbin's by-position request (user, tenant, thing, action): the path is r.thing.
NAMED = casbin_model(
    "user, tenant, thing, action", "sub, dom, obj, act, rule",
    "g(r.user, p.sub, r.tenant) && r.tenant == p.dom && keyMatch2(r.thing, p.obj)"
    " && r.action == p.act && r.thing.Owner == r.user && eval(p.rule)", roles="_, _, _",
    more="[object_attributes]\nOwner = query owner\nTeam = path /teams/:Team/*\n")

NAMED_RULES = 'p, role:member, acme, /teams/*, GET, r.thing.Team in ("red", "blue")\n'


def load(tmp_path: Path, model: str, rules: str, cache_size: int = 0) -> CompiledPolicy:
    files = write_policy(tmp_path, model, rules)
    return load_policy(Path(files["model"]), Path(files["policy"]), cache_size=cache_size,
                       settings=TENANT_CLAIM).policy


def decide(policy: CompiledPolicy, sub: str, method: str, target: str,
           claims: dict[str, Any], cache_key: Any = None) -> bool:
    raw_path, _, query = target.encode().partition(b"?")
    path = raw_path.decode()
    request = RequestView({"method": method, "path": path, "raw_path": raw_path,
                           "query_string": query, "headers": [], "client": ("127.0.0.1", 1)},
                          path)
    return policy.decide(sub, ("member",), method, path, authenticated=True, claims=claims,
                         cache_key=cache_key, request=request).allowed


@pytest.mark.parametrize(("sub", "method", "target", "claims", "allowed"), [
    pytest.param("alice", "GET", "/documents?owner=alice", {"tenant": "acme", "level": 2}, True,
                 id="own-documents-in-the-tenant"),
    pytest.param("alice", "GET", "/documents?owner=alice", {"tenant": "globex", "level": 2},
                 False, id="another-tenant"),
    pytest.param("alice", "GET", "/documents?owner=alice", {"level": 2}, False,
                 id="no-tenant-claim"),
    pytest.param("alice", "GET", "/documents?owner=bob", {"tenant": "acme", "level": 2}, False,
                 id="another-owner"),
    pytest.param("alice", "GET", "/documents?owner=alice", {"tenant": "acme", "level": 1}, False,
                 id="claim-condition-fails"),
    pytest.param("alice", "DELETE", "/documents", {"tenant": "acme"}, True,
                 id="rule-calls-g-with-the-tenant"),
    pytest.param("bob", "DELETE", "/documents", {"tenant": "acme"}, False,
                 id="rule-g-not-an-admin"),
])
def test_a_domain_and_a_rule_condition_decide_together(
    tmp_path: Path, sub: str, method: str, target: str, claims: dict[str, Any], allowed: bool
) -> None:
    policy = load(tmp_path, DOMAINS_EVAL, DOMAINS_EVAL_RULES)
    assert decide(policy, sub, method, target, claims) is allowed


def test_the_cache_key_holds_the_tenant_and_the_attributes(tmp_path: Path) -> None:
    """One token (one cache_key), and the same path: the tenant and ?owner= still decide."""
    policy = load(tmp_path, DOMAINS_EVAL, DOMAINS_EVAL_RULES, cache_size=100)
    token = ("alice-token",)
    acme = {"tenant": "acme", "level": 2}
    assert decide(policy, "alice", "GET", "/documents?owner=alice", acme, token)
    assert not decide(policy, "alice", "GET", "/documents?owner=bob", acme, token)
    assert not decide(policy, "alice", "GET", "/documents?owner=alice",
                      {"tenant": "globex", "level": 2}, token)
    assert decide(policy, "alice", "GET", "/documents?owner=alice", acme, token)


@pytest.mark.parametrize(("target", "allowed"), [
    pytest.param("/teams/red/x?owner=alice", True, id="own-team-page"),
    pytest.param("/teams/green/x?owner=alice", False, id="team-not-in-the-rule"),
    pytest.param("/teams/red/x?owner=bob", False, id="another-owner"),
])
def test_attributes_are_read_on_the_field_the_path_feeds(
    tmp_path: Path, target: str, allowed: bool
) -> None:
    """``r = user, tenant, thing, action``: r.thing is the path, so r.thing.Owner is the
    declared attribute, in the matcher and in a rule's expression alike."""
    policy = load(tmp_path, NAMED, NAMED_RULES)
    assert decide(policy, "alice", "GET", target, {"tenant": "acme"}) is allowed


def test_r_obj_attributes_are_refused_when_obj_is_not_the_path(tmp_path: Path) -> None:
    """With the path in r.thing, r.user.Owner (the subject's) is refused at load, naming the
    claims as where a subject's attributes are."""
    with pytest.raises(PolicyError, match=r"r\.user\.Owner.*claims"):
        load(tmp_path, NAMED.replace("r.thing.Owner == r.user", "r.user.Owner == r.user"),
             NAMED_RULES)
