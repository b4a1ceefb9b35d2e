"""Every shipped example in policies/, decided as the proxy decides it, and the tutorial kept true.

Each example has a decision table. A request goes the proxy's way: the target through
``canonical_path``, then ``CompiledPolicy.decide`` with the caller's subject, token roles and
claims (a fresh ``Principal`` as the cache key, as ``PolicyAuthorizer`` passes). Whether an
anonymous caller reaches the policy at all (``public_paths``) is the authorizer's business and
is tested with it; here anonymous rows are the requests that do reach it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.paths import canonical_path
from gatekeeper.policy.engine import PolicyVerdict
from gatekeeper.policy.loader import LoadReport, load_policy
from gatekeeper.principal import ANONYMOUS, Principal
from gatekeeper.request import RequestView
from gatekeeper.settings.file import load_settings
from tests.support.paths import ROOT
from tests.support.policy import SHIPPED_SETTINGS

POLICIES = ROOT / "policies"
TUTORIAL = ROOT / "docs" / "policies.md"


def model_for(policy_file: Path) -> Path:
    """``policy.csv`` ↔ ``model.conf``; ``NAME.policy.csv`` ↔ ``NAME.model.conf``."""
    if policy_file.name == "policy.csv":
        return policy_file.with_name("model.conf")
    return policy_file.with_name(policy_file.name.removesuffix(".policy.csv") + ".model.conf")


SETTINGS = SHIPPED_SETTINGS


@cache
def load(policy_name: str) -> LoadReport:
    policy_file = POLICIES / policy_name
    return load_policy(model_for(policy_file), policy_file, settings=SETTINGS.get(policy_name))


@dataclass(frozen=True)
class Ask:
    """Who asks: a user with token roles and claims, or an anonymous caller."""

    sub: str | None = None  # None: an anonymous caller
    roles: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.sub is None

    def principal(self) -> Principal:
        if self.sub is None:
            return ANONYMOUS
        return Principal(subject=self.sub, roles=self.roles, claims={"sub": self.sub, **self.claims},
                         via="bearer")


def user(sub: str, *roles: str, **claims: Any) -> Ask:
    return Ask(sub, roles, claims)


ANYONE = Ask()


def decide(policy_name: str, who: Ask, method: str, target: str) -> PolicyVerdict:
    principal = who.principal()
    raw_path, _, query = target.encode().partition(b"?")
    path = canonical_path(raw_path)
    request = RequestView({"method": method, "path": path, "raw_path": raw_path,
                           "query_string": query, "headers": [], "client": ("127.0.0.1", 1)},
                          path)
    return load(policy_name).policy.decide(
        principal.subject, principal.roles, method, path,
        authenticated=not who.anonymous, claims=principal.claims, cache_key=principal,
        request=request,
    )


def row(sentence: str, who: Ask, method: str, target: str, expected: str | None) -> Any:
    """``expected``: 'allow by RULE', 'deny by RULE' (RULE = the rule's fields after 'p, ')
    or None for the default deny (no rule matched)."""
    return pytest.param(who, method, target, expected, id=sentence)


def check(policy_name: str, who: Ask, method: str, target: str, expected: str | None) -> None:
    verdict = decide(policy_name, who, method, target)
    got = None if verdict.rule is None else (
        f"{'allow' if verdict.allowed else 'deny'} by {', '.join(verdict.rule.values)}")
    assert got == expected, f"{verdict.rule}"
    assert verdict.allowed == (expected is not None and expected.startswith("allow"))


# ------------------------------------------------------------------ policy.csv (default RBAC)

ALICE_VIEWER = user("alice", "viewer")
EVE_EDITOR = user("eve", "editor")
ADA_ADMIN = user("ada", "admin")

DEFAULT = [
    row("a viewer reads a project's items", ALICE_VIEWER, "GET", "/api/p1/items",
        "allow by role:viewer, /api/:project/items, GET|HEAD, allow"),
    row("a viewer reads one item", ALICE_VIEWER, "HEAD", "/api/p1/items/42",
        "allow by role:viewer, /api/:project/items/:id, GET|HEAD, allow"),
    row("a lower-case get is decided as GET", ALICE_VIEWER, "get", "/api/p1/items",
        "allow by role:viewer, /api/:project/items, GET|HEAD, allow"),
    row("a viewer may not create items", ALICE_VIEWER, "POST", "/api/p1/items", None),
    row("a lower-case post is refused as POST is", ALICE_VIEWER, "post", "/api/p1/items", None),
    row("an editor reads items as a viewer through g", EVE_EDITOR, "GET", "/api/p1/items",
        "allow by role:viewer, /api/:project/items, GET|HEAD, allow"),
    row("an editor deletes an item", EVE_EDITOR, "DELETE", "/api/p1/items/42",
        "allow by role:editor, /api/:project/items/:id, PUT|PATCH|DELETE, allow"),
    row("an editor may not delete the audit log", EVE_EDITOR, "DELETE", "/api/p1/items/audit",
        "deny by role:authenticated, /api/:project/items/audit, DELETE, deny"),
    row("an admin may not delete the audit log either", ADA_ADMIN, "DELETE", "/api/p1/items/audit",
        "deny by role:authenticated, /api/:project/items/audit, DELETE, deny"),
    row("an admin edits items as an editor through g", ADA_ADMIN, "PATCH", "/api/p1/items/42",
        "allow by role:editor, /api/:project/items/:id, PUT|PATCH|DELETE, allow"),
    row("an admin administers", ADA_ADMIN, "DELETE", "/admin/users/7",
        "allow by role:admin, /admin/*, *, allow"),
    row("an editor may not administer", EVE_EDITOR, "GET", "/admin/users", None),
    row("an editor may not reach /admin through a dot segment", EVE_EDITOR, "GET",
        "/api/p1/../../admin/users", None),
    row("an encoded letter is decoded before the decision", ADA_ADMIN, "GET", "/%61dmin/users",
        "allow by role:admin, /admin/*, *, allow"),
    row("anyone logged in reads /api/me", user("bob"), "GET", "/api/me",
        "allow by role:authenticated, /api/me, GET, allow"),
    row("a user without roles reads no items", user("bob"), "GET", "/api/p1/items", None),
    row("an anonymous caller reads a public file", ANYONE, "GET", "/public/logo.png",
        "allow by role:anonymous, /public/*, GET|HEAD, allow"),
    row("a logged-in caller may do what an anonymous one may", user("bob"), "GET", "/public/logo.png",
        "allow by role:anonymous, /public/*, GET|HEAD, allow"),
    row("an anonymous caller may not write a public file", ANYONE, "PUT", "/public/logo.png", None),
    row("an anonymous caller is not 'authenticated'", ANYONE, "GET", "/api/me", None),
    row(":project matches one segment only", ALICE_VIEWER, "GET", "/api/p1/sub/items", None),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), DEFAULT)
def test_default_rbac(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("policy.csv", who, method, target, expected)


# ------------------------------------------------------------------ tenants (ABAC)

ACME_MEMBER = user("u-1", "member", tenant="acme")
ACME_ADMIN = user("u-2", "tenant-admin", tenant="acme")
SUPPORT = user("u-3", "support")

TENANTS = [
    row("a member reads in their own tenant", ACME_MEMBER, "GET", "/tenants/acme/projects/1",
        "allow by role:member, /tenants/:tenant/*, GET|HEAD, allow"),
    row("a member may not read another tenant", ACME_MEMBER, "GET", "/tenants/globex/projects/1", None),
    row("a member without a tenant claim is denied, not an error", user("u-4", "member"), "GET",
        "/tenants/acme/projects/1", None),
    row("a tenant claim that is a list never equals a path segment",
        user("u-5", "member", tenant=["acme"]), "GET", "/tenants/acme/projects/1", None),
    row("a tenant claim that is null is denied", user("u-6", "member", tenant=None), "GET",
        "/tenants/acme/projects/1", None),
    row("a member writes their tenant's projects", ACME_MEMBER, "PUT", "/tenants/acme/projects/1",
        "allow by role:member, /tenants/:tenant/projects/*, POST|PUT|PATCH|DELETE, allow"),
    row("a member may not change their tenant's settings", ACME_MEMBER, "PUT",
        "/tenants/acme/settings/sso", None),
    row("a tenant admin changes settings in their own tenant", ACME_ADMIN, "PUT",
        "/tenants/acme/settings/sso", "allow by role:tenant-admin, /tenants/:tenant/settings/*, *, allow"),
    row("a tenant admin writes projects as a member through g", ACME_ADMIN, "POST",
        "/tenants/acme/projects/2",
        "allow by role:member, /tenants/:tenant/projects/*, POST|PUT|PATCH|DELETE, allow"),
    row("a tenant admin may not touch another tenant's settings", ACME_ADMIN, "PUT",
        "/tenants/globex/settings/sso", None),
    row("a tenant admin may not touch another tenant's projects", ACME_ADMIN, "DELETE",
        "/tenants/globex/projects/1", None),
    row("a tenant admin may not delete their own audit trail", ACME_ADMIN, "DELETE",
        "/tenants/acme/audit/2026", "deny by role:authenticated, /tenants/*/audit/*, DELETE, deny"),
    row("support reads any tenant without a tenant claim", SUPPORT, "GET", "/tenants/globex/projects/1",
        "allow by role:support, /tenants/*, GET|HEAD, allow"),
    row("support may not write", SUPPORT, "POST", "/tenants/globex/projects", None),
    row("a lower-case get is decided as GET", ACME_MEMBER, "get", "/tenants/acme/projects/1",
        "allow by role:member, /tenants/:tenant/*, GET|HEAD, allow"),
    row("a dot segment cannot climb into another tenant", ACME_MEMBER, "GET",
        "/tenants/acme/../globex/projects/1", None),
    row("an encoded tenant name is compared decoded", ACME_MEMBER, "GET", "/tenants/%61cme/projects/1",
        "allow by role:member, /tenants/:tenant/*, GET|HEAD, allow"),
    row("the tenant claim alone grants nothing", user("u-7", tenant="acme"), "GET",
        "/tenants/acme/projects/1", None),
    row("anyone logged in reads /me", user("u-7"), "GET", "/me",
        "allow by role:authenticated, /me, GET, allow"),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), TENANTS)
def test_tenants_abac(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("tenants.policy.csv", who, method, target, expected)


# ------------------------------------------------------------------ tenants as Casbin domains

ACME = user("u-1", "member", tenant="acme")
GLOBEX = user("u-1", "member", tenant="globex")
ACME_ADMIN_BY_TOKEN = user("u-2", "admin", tenant="acme")

TENANT_DOMAINS = [
    row("a member reads projects in the token's tenant", ACME, "GET", "/api/projects/1",
        "allow by role:member, *, /api/projects/*, GET|HEAD|POST|PUT|PATCH, allow"),
    row("a member may not change settings", ACME, "PUT", "/api/settings/sso", None),
    row("a token admin writes projects as a member in every tenant", ACME_ADMIN_BY_TOKEN, "PATCH",
        "/api/projects/1", "allow by role:member, *, /api/projects/*, GET|HEAD|POST|PUT|PATCH, allow"),
    row("a token admin changes its tenant's settings", ACME_ADMIN_BY_TOKEN, "PUT",
        "/api/settings/sso", "allow by role:admin, *, /api/settings/*, *, allow"),
    row("a g line grants u-42 admin in acme", user("u-42", tenant="acme"), "PUT", "/api/settings/sso",
        "allow by role:admin, *, /api/settings/*, *, allow"),
    row("u-42's grant does not hold in globex", user("u-42", tenant="globex"), "PUT",
        "/api/settings/sso", None),
    row("only globex members see the beta area", GLOBEX, "GET", "/api/beta/x",
        "allow by role:member, globex, /api/beta/*, GET|HEAD, allow"),
    row("acme members do not", ACME, "GET", "/api/beta/x", None),
    row("nobody deletes the audit trail", ACME_ADMIN_BY_TOKEN, "DELETE", "/api/audit/2026",
        "deny by role:authenticated, *, /api/audit/*, DELETE, deny"),
    row("members read the audit trail", ACME, "GET", "/api/audit/2026",
        "allow by role:member, *, /api/audit/*, GET|HEAD|DELETE, allow"),
    row("a token without a tenant claim is denied, not an error", user("u-1", "member"), "GET",
        "/api/projects/1", None),
    row("a tenant claim that is a list is no tenant", user("u-1", "member", tenant=["acme"]), "GET",
        "/api/projects/1", None),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), TENANT_DOMAINS)
def test_tenants_as_domains(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("tenants-domains.policy.csv", who, method, target, expected)


def test_the_tenants_as_domains_cases_file_passes(tmp_path: Path) -> None:
    """policies/tenants-domains_test.yaml through `gatekeeper policy test --cases`."""
    (tmp_path / "gatekeeper.yaml").write_text(yaml.safe_dump({"policy": {
        "model": str(POLICIES / "tenants-domains.model.conf"),
        "policy": str(POLICIES / "tenants-domains.policy.csv"),
        "domain": {"claim": "tenant"}, "domain_matching": "keyMatch"}}))
    cases = POLICIES / "tenants-domains_test.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "policy", "test", "--config",
         str(tmp_path / "gatekeeper.yaml"), "--cases", str(cases)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(yaml.safe_load(cases.read_text()))} passed, 0 failed" in result.stdout


# ------------------------------------------------------------------ deny-override

STAFF = user("s-1", "staff")
AUDITOR = user("a-1", "auditor")
ADMIN = user("ad-1", "admin")

DENY_OVERRIDE = [
    row("staff may do anything under /api", STAFF, "PUT", "/api/orders/7",
        "allow by role:staff, /api/*, *, allow"),
    row("staff read billing", STAFF, "GET", "/api/billing/invoices/7",
        "allow by role:staff, /api/*, *, allow"),
    row("staff may not delete billing records", STAFF, "DELETE", "/api/billing/invoices/7",
        "deny by role:staff, /api/billing/*, DELETE, deny"),
    row("a lower-case delete is denied as DELETE is", STAFF, "delete", "/api/billing/invoices/7",
        "deny by role:staff, /api/billing/*, DELETE, deny"),
    row("staff may not read the audit log", STAFF, "GET", "/api/audit/2026",
        "deny by role:staff, /api/audit/*, *, deny"),
    row("an auditor reads the audit log", AUDITOR, "GET", "/api/audit/2026",
        "allow by role:auditor, /api/audit/*, GET|HEAD, allow"),
    row("an auditor may not write the audit log", AUDITOR, "POST", "/api/audit/2026",
        "deny by role:authenticated, /api/audit/*, POST|PUT|PATCH|DELETE, deny"),
    row("an auditor has no other access", AUDITOR, "GET", "/api/orders/7", None),
    row("an admin inherits staff's allow through g", ADMIN, "PUT", "/api/orders/7",
        "allow by role:staff, /api/*, *, allow"),
    row("an admin inherits staff's deny through g", ADMIN, "DELETE", "/api/billing/invoices/7",
        "deny by role:staff, /api/billing/*, DELETE, deny"),
    row("an admin runs the admin area", ADMIN, "POST", "/admin/users",
        "allow by role:admin, /admin/*, *, allow"),
    row("staff may not run the admin area", STAFF, "POST", "/admin/users", None),
    row("staff who are also auditors are refused the audit log: deny wins",
        user("s-2", "staff", "auditor"), "GET", "/api/audit/2026",
            "deny by role:staff, /api/audit/*, *, deny"),
    row("a repeated slash does not dodge a deny", STAFF, "DELETE", "/api//billing/invoices/7",
        "deny by role:staff, /api/billing/*, DELETE, deny"),
    row("a user without roles gets nothing", user("u-1"), "GET", "/api/orders/7", None),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), DENY_OVERRIDE)
def test_deny_override(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("deny-override.policy.csv", who, method, target, expected)


# ------------------------------------------------------------------ public-read

READER = user("r-1")
MODERATOR = user("m-1", "moderator")

PUBLIC_READ = [
    row("an anonymous caller reads the API", ANYONE, "GET", "/api/posts/1",
        "allow by role:anonymous, /api/*, GET|HEAD, allow"),
    row("a lower-case head is decided as HEAD", ANYONE, "head", "/api/posts/1",
        "allow by role:anonymous, /api/*, GET|HEAD, allow"),
    row("an anonymous caller may not write", ANYONE, "POST", "/api/posts", None),
    row("a lower-case post from an anonymous caller is refused too", ANYONE, "post", "/api/posts", None),
    row("a logged-in caller reads through the anonymous rule", READER, "GET", "/api/posts/1",
        "allow by role:anonymous, /api/*, GET|HEAD, allow"),
    row("a logged-in caller writes", READER, "POST", "/api/posts",
        "allow by role:authenticated, /api/*, POST|PUT|PATCH|DELETE, allow"),
    row("a logged-in caller deletes", READER, "DELETE", "/api/posts/1",
        "allow by role:authenticated, /api/*, POST|PUT|PATCH|DELETE, allow"),
    row("nobody writes the archive", READER, "PUT", "/api/archive/2019/1",
        "deny by role:authenticated, /api/archive/*, POST|PUT|PATCH|DELETE, deny"),
    row("the archive stays readable", ANYONE, "GET", "/api/archive/2019/1",
        "allow by role:anonymous, /api/*, GET|HEAD, allow"),
    row("OPTIONS is in no rule", READER, "OPTIONS", "/api/posts", None),
    row("a moderator reads the reports queue", MODERATOR, "GET", "/admin/reports/9",
        "allow by role:moderator, /admin/reports/*, GET|HEAD, allow"),
    row("a plain user may not read the reports queue", READER, "GET", "/admin/reports/9", None),
    row("an admin reads the reports queue as a moderator through g", user("ad-1", "admin"), "GET",
        "/admin/reports/9", "allow by role:moderator, /admin/reports/*, GET|HEAD, allow"),
    row("an admin manages users", user("ad-1", "admin"), "DELETE", "/admin/users/7",
        "allow by role:admin, /admin/users/*, *, allow"),
    row("a moderator may not manage users", MODERATOR, "DELETE", "/admin/users/7", None),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), PUBLIC_READ)
def test_public_read(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("public-read.policy.csv", who, method, target, expected)


# ------------------------------------------------------------------ abac-documents (eval, attributes)

RED = user("u-2", teams=["red"], age=30)
WRITER = user("u-3", "writer", teams=["red"], clearance=2, age=30)
AUDITOR = user("u-6", "auditor", age=40)
OWN_LIST = "allow by role:authenticated, /documents, GET|HEAD, r.obj.Owner == r.sub, allow"
TEAM_READ = "allow by role:authenticated, /teams/:team/*, GET|HEAD, r.obj.Team in r.claims.teams, allow"
TEAM_WRITE = ("allow by role:writer, /teams/:team/pages/*, PUT|PATCH|DELETE, "
              "r.obj.Team in r.claims.teams && r.claims.clearance >= 2, allow")
RESTRICTED = "deny by role:authenticated, /teams/*/restricted/*, GET|HEAD, r.claims.age < 18, deny"
AUDIT = "allow by role:auditor, /*, GET|HEAD, True, allow"

ABAC = [
    row("a caller lists their own documents", user("u-1"), "GET", "/documents?owner=u-1", OWN_LIST),
    row("nobody lists another's documents", user("u-1"), "GET", "/documents?owner=u-2", None),
    row("a listing without ?owner= is denied", user("u-1"), "GET", "/documents", None),
    row("a repeated ?owner= is denied: frameworks differ on which one counts", user("u-1"), "GET",
        "/documents?owner=u-1&owner=u-2", None),
    row("?owner= beside ?Owner= is denied: ASP.NET reads them as one", user("u-1"), "GET",
        "/documents?owner=u-1&Owner=u-2", None),
    row("an encoded ?owner= is read decoded, as every framework reads it", user("u-1"), "GET",
        "/documents?own%65r=u%2D1", OWN_LIST),
    row("a member reads their team's pages", RED, "GET", "/teams/red/pages/1", TEAM_READ),
    row("a member does not read another team's pages", RED, "GET", "/teams/blue/pages/1", None),
    row("a token without a teams claim reads no team page", user("u-8"), "GET",
        "/teams/red/pages/1", None),
    row("a teams claim that is a string is never searched for a substring",
        user("u-9", teams="red-team"), "GET", "/teams/red/pages/1", None),
    row("a writer edits their team's pages", WRITER, "PUT", "/teams/red/pages/1", TEAM_WRITE),
    row("a writer below clearance 2 does not", user("u-4", "writer", teams=["red"], clearance=1),
        "PUT", "/teams/red/pages/1", None),
    row("a writer does not edit another team's pages", WRITER, "PUT", "/teams/blue/pages/1", None),
    row("restricted pages are denied under 18", user("u-5", teams=["red"], age=16), "GET",
        "/teams/red/restricted/1", RESTRICTED),
    row("and to a token without an age claim", user("u-10", teams=["red"]), "GET",
        "/teams/red/restricted/1", RESTRICTED),
    row("an adult member reads them", RED, "GET", "/teams/red/restricted/1", TEAM_READ),
    row("finance reads the reports", user("u-7", dept="finance"), "GET", "/reports/q3",
        "allow by role:authenticated, /reports/*, GET|HEAD, r.claims.dept in (\"finance\", "
        "\"audit\"), allow"),
    row("sales does not", user("u-7", dept="sales"), "GET", "/reports/q3", None),
    row("an auditor reads any team's pages", AUDITOR, "GET", "/teams/blue/pages/1", AUDIT),
    row("an auditor under 18 is still denied restricted pages", user("u-11", "auditor", age=16),
        "GET", "/teams/red/restricted/1", RESTRICTED),
    row("an auditor does not write", AUDITOR, "PUT", "/teams/red/pages/1", None),
]


@pytest.mark.parametrize(("who", "method", "target", "expected"), ABAC)
def test_abac_documents(who: Ask, method: str, target: str, expected: str | None) -> None:
    check("abac-documents.policy.csv", who, method, target, expected)


TABLES = {
    "abac-documents.policy.csv": ABAC,
    "policy.csv": DEFAULT,
    "tenants.policy.csv": TENANTS,
    "tenants-domains.policy.csv": TENANT_DOMAINS,
    "deny-override.policy.csv": DENY_OVERRIDE,
    "public-read.policy.csv": PUBLIC_READ,
}
SHIPPED = sorted(p.name for p in POLICIES.glob("*policy.csv"))
ALL_ROWS = [pytest.param(name, *case.values, id=f"{name}: {case.id}")
            for name, table in TABLES.items() for case in table]


@pytest.mark.parametrize(("policy_name", "who", "method", "target", "expected"), ALL_ROWS)
def test_the_method_is_decided_whatever_its_case(
    policy_name: str, who: Ask, method: str, target: str, expected: str | None
) -> None:
    upper = decide(policy_name, who, method.upper(), target)
    lower = decide(policy_name, who, method.lower(), target)
    assert (upper.allowed, upper.rule) == (lower.allowed, lower.rule)


# ------------------------------------------------------------------ users are never roles


def _role_names(policy_name: str) -> list[str]:
    """Every role a shipped policy names, without its prefix (builtins included)."""
    names = {"authenticated", "anonymous"}
    for line in (POLICIES / policy_name).read_text().splitlines():
        if line.startswith(("p,", "g,")):
            names |= {v.removeprefix("role:") for v in line.split(", ")[1:3] if v.startswith("role:")}
    return sorted(names)


SPELLINGS = {  # how a token's sub could try to read as the role NAME
    "the plain name": "{}", "the role: name": "role:{}", "upper case": "{U}",
    "ROLE: upper case": "ROLE:{U}", "a leading space": " {}", "a trailing tab": "{}\t",
    "a space after the colon": "role: {}", "full-width letters": "\uff52\uff4f\uff4c\uff45\uff1a{}",
    "a zero-width space inside": "role:\u200b{}",
}
CONFUSED = [pytest.param(name, role, spelling.replace("{U}", role.upper()).format(role),
                         id=f"{name}: a sub of {how} {role!r}")
            for name in SHIPPED for role in _role_names(name) for how, spelling in SPELLINGS.items()]


@pytest.mark.parametrize(("policy_name", "role", "sub"), CONFUSED)
def test_a_token_whose_sub_names_a_role_does_not_act_as_it(
    policy_name: str, role: str, sub: str
) -> None:
    """issue 11 §1.8: refused before any rule, whatever the path (the role's own rules too)."""
    paths = [next(v for v in rule.values if v.startswith("/")) for rule in load(policy_name).policy.rules]
    targets = [path.replace(":tenant", "acme").replace(":project", "p1").replace(":id", "7")
               .replace("*", "x") for path in paths]
    for target in targets:
        verdict = decide(policy_name, user(sub, tenant="acme"), "GET", target)
        assert (verdict.allowed, verdict.reason) == (False, "subject_names_a_role"), target


@pytest.mark.parametrize("policy_name", SHIPPED)
def test_a_token_role_named_like_a_user_reaches_only_role_rules(policy_name: str) -> None:
    """The reverse: a token role is role:NAME, so a role 'alice' is not the user alice."""
    policy = load(policy_name).policy
    assert all(s.startswith("role:") for s in policy.subjects("u-1", ["alice"], authenticated=True)
               if s != "u-1")
    assert "alice" not in policy.subjects("u-1", ["alice"], authenticated=True)


# ------------------------------------------------------------------ the files themselves


def test_every_shipped_example_has_a_decision_table_of_eight_cases_or_more() -> None:
    assert sorted(TABLES) == SHIPPED
    for name, table in TABLES.items():
        assert len(table) >= 8, name


@pytest.mark.parametrize("policy_name", SHIPPED)
def test_every_example_has_its_model_and_loads_without_warnings(policy_name: str) -> None:
    assert model_for(POLICIES / policy_name).is_file()
    assert load(policy_name).warnings == []


def test_every_model_has_a_policy() -> None:
    models = sorted(p.name for p in POLICIES.glob("*.conf"))
    assert models == sorted(model_for(POLICIES / name).name for name in SHIPPED)


@pytest.mark.parametrize("file_name", sorted(
    p.name for p in POLICIES.iterdir() if p.name.endswith((".conf", ".csv"))))
def test_every_file_starts_with_a_comment_header_naming_its_partner(file_name: str) -> None:
    lines = (POLICIES / file_name).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, "a header says what the example is for and how to use it"
    if file_name.endswith(".csv"):
        partner = model_for(POLICIES / file_name).name
    else:
        partner = next(n for n in SHIPPED if model_for(POLICIES / n).name == file_name)
    assert partner in "\n".join(header)


# ------------------------------------------------------------------ the tutorial


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)


def test_every_config_in_the_tutorial_is_valid(tmp_path: Path) -> None:
    configs = [b for b in _blocks("yaml") if isinstance(yaml.safe_load(b), dict)]
    assert len(configs) >= 4
    (tmp_path / "policies").symlink_to(POLICIES)  # as in the tutorial: next to the config
    for index, block in enumerate(configs):
        path = tmp_path / f"config{index}.yaml"
        path.write_text(block)
        settings = load_settings(path, environ={})
        assert settings.policy is not None, block
        assert settings.policy.model.relative_to(tmp_path) in {
            Path("policies") / p.name for p in POLICIES.glob("*.conf")}


def test_every_policy_snippet_in_the_tutorial_is_from_a_shipped_file() -> None:
    shipped = [p.read_text() for p in POLICIES.iterdir() if p.name.endswith((".conf", ".csv"))]
    snippets = _blocks("ini") + _blocks("csv")
    assert len(snippets) >= 8
    for snippet in snippets:
        assert any(snippet in text for text in shipped), snippet


def test_the_cases_file_in_the_tutorial_passes_against_the_shipped_policy(tmp_path: Path) -> None:
    cases = [b for b in _blocks("yaml") if isinstance(yaml.safe_load(b), list)]
    assert len(cases) == 1
    (tmp_path / "policies").mkdir()
    for source in POLICIES.iterdir():
        (tmp_path / "policies" / source.name).write_bytes(source.read_bytes())
    (tmp_path / "policy_test.yaml").write_text(cases[0])
    config = next(b for b in _blocks("yaml") if "policies/policy.csv" in b)
    (tmp_path / "gatekeeper.yaml").write_text(config)
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "policy", "test", "--config",
         str(tmp_path / "gatekeeper.yaml"), "--cases", str(tmp_path / "policy_test.yaml")],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
