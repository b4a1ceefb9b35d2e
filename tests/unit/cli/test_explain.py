"""`gatekeeper policy explain`, run as a real process on the shipped files.

Rule lines are looked up in the files, never hard-coded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.cli.test_policy import (
    EXAMPLE_OPTIONS,
    HOST_MODEL,
    MODEL,
    POLICY,
    field,
    line_of,
    run,
    write_config,
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def test_a_deny_names_the_nearest_rule_and_the_term_that_failed(config: Path) -> None:
    result = run("policy", "explain", "--sub", "dana", "--role", "editor", "GET", "/admin/users",
                 config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "deny"
    assert field(result.stdout, "reason") == "no_matching_rule"
    admin = line_of(POLICY, "p, role:admin, /admin/*, *, allow")
    nearest = lines.index("  nearest rules that did not match (the first term that failed):")
    assert lines[nearest + 1].split() == [admin, "p,", "role:admin,", "/admin/*,", "*,", "allow"]
    assert lines[nearest + 2].strip() == ("g(r.sub, p.sub) -> false  "
                                          "(r.sub = 'dana', p.sub = 'role:admin')")


def test_an_allow_names_the_rule_and_where_each_role_came_from(config: Path) -> None:
    result = run("policy", "explain", "--sub", "carol", "--role", "admin", "GET", "/api/p1/items",
                 config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    decided = line_of(POLICY, "p, role:viewer, /api/:project/items, GET|HEAD, allow")
    assert field(result.stdout, "decided") == decided
    g_line = line_of(POLICY, "g, role:editor, role:viewer")
    assert f"role:viewer         g line {g_line}  (role:admin -> role:editor -> role:viewer)" \
        in result.stdout
    assert f"    {decided}  p, role:viewer, /api/:project/items, GET|HEAD, allow  <- decided" \
        in result.stdout.splitlines()


@pytest.mark.parametrize("arguments", [
    ["--sub", "bob", "--role", "viewer", "GET", "/api/p1/items"],
    ["--sub", "bob", "--role", "viewer", "POST", "/api/p1/items"],
    ["--sub", "carol", "--role", "admin", "DELETE", "/api/p1/items/audit"],
    ["--sub", "bob", "--claim", 'groups=["viewer"]', "HEAD", "/api/p1/items/7"],
    ["--anonymous", "GET", "/public/logo.png"],
    ["--anonymous", "GET", "/api/me"],
    ["--sub", "role:admin", "GET", "/admin/x"],
], ids=["a viewer reads", "a viewer may not write", "the audit deny wins",
        "roles from the groups claim", "anonymous on a public path", "anonymous elsewhere",
        "a user named as a role"])
def test_json_gives_what_policy_test_gives(config: Path, arguments: list[str]) -> None:
    explained = run("policy", "explain", "--json", *arguments, config=config)
    tested = run("policy", "test", *arguments, config=config)
    assert explained.returncode == tested.returncode, explained.stdout + explained.stderr
    data = json.loads(explained.stdout)
    assert data["allowed"] is (tested.returncode == 0)
    assert data["reason"] == field(tested.stdout, "reason")
    rule = field(tested.stdout, "rule")
    assert data["decided_by"] == (rule.split(":")[0] + ":" + rule.split(":")[1]
                                  if rule.startswith("policy.csv:") else None)


def test_a_malformed_target_exits_2(config: Path) -> None:
    result = run("policy", "explain", "--sub", "bob", "GET", "api/x", config=config)
    assert result.returncode == 2
    assert field(result.stdout, "reason") == "malformed_target"


@pytest.mark.parametrize("arguments", [
    ["--sub", "bob"],
    ["--sub", "bob", "--anonymous", "GET", "/x"],
    ["GET", "/x"],
    ["--sub", "bob", "--claim", "novalue", "GET", "/x"],
], ids=["no METHOD PATH", "both --sub and --anonymous", "neither --sub nor --anonymous",
        "a claim without a value"])
def test_usage_errors_exit_2(config: Path, arguments: list[str]) -> None:
    result = run("policy", "explain", *arguments, config=config)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("gatekeeper: ")


def test_a_policy_that_does_not_load_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "policy.csv"
    broken.write_text(POLICY.read_text() + "p, role:viewer, /x, GET, Deny\n")
    result = run("policy", "explain", "--sub", "bob", "GET", "/x",
                 config=write_config(tmp_path, MODEL, broken))
    assert result.returncode == 2
    assert "effect 'Deny' is neither 'allow' nor 'deny'" in result.stderr


EXAMPLES = MODEL.parent


@pytest.mark.parametrize(("example", "arguments", "allowed"), [
    pytest.param("tenants-domains", ["--sub", "u-1", "--role", "member", "--claim", "tenant=acme",
                                     "GET", "/api/projects/p1"], True, id="tenants-role-in-its-tenant"),
    pytest.param("tenants-domains", ["--sub", "u-1", "--role", "member", "GET", "/api/projects/p1"],
                 False, id="tenants-no-tenant-claim"),
    pytest.param("abac-documents", ["--sub", "alice", "GET", "/documents?owner=alice"], True,
                 id="abac-own-documents"),
    pytest.param("abac-documents", ["--sub", "alice", "GET", "/documents?owner=bob"], False,
                 id="abac-another-owner"),
])
def test_a_shipped_example_is_explained_as_policy_test_decides_it(
    tmp_path: Path, example: str, arguments: list[str], allowed: bool
) -> None:
    """With the policy section the example's header asks for (a tenant from a claim): explain
    loads the policy as the proxy and ``policy test`` load it, and agrees with ``policy test``."""
    config = write_config(tmp_path, EXAMPLES / f"{example}.model.conf",
                          EXAMPLES / f"{example}.policy.csv",
                          **EXAMPLE_OPTIONS.get(f"{example}.model.conf", {}))
    explained = run("policy", "explain", "--json", *arguments, config=config)
    tested = run("policy", "test", *arguments, config=config)
    assert tested.returncode == (0 if allowed else 1), tested.stdout + tested.stderr
    assert explained.returncode == tested.returncode, explained.stdout + explained.stderr
    data = json.loads(explained.stdout)
    assert data["allowed"] is allowed
    assert data["reason"] == field(tested.stdout, "reason")


@pytest.mark.parametrize(("arguments", "code"), [
    (["--host", "acme.example.com", "--client", "10.1.2.3"], 0),
    (["--host", "globex.example.com", "--client", "10.1.2.3"], 1),
    (["--host", "acme.example.com", "--client", "203.0.113.9"], 1),
], ids=["the tenant's host, inside the network", "another tenant's host", "outside the network"])
def test_explain_names_the_host_and_client_as_policy_test_does(
    tmp_path: Path, arguments: list[str], code: int,
) -> None:
    """A tenant by host and ipMatch read what --host and --client give, in explain as in test."""
    (tmp_path / "model.conf").write_text(HOST_MODEL)
    (tmp_path / "policy.csv").write_text("p, role:editor, acme.example.com, /docs/*, PUT\n"
                                         "g, u-7, role:editor, acme.example.com\n")
    config = write_config(tmp_path, tmp_path / "model.conf", tmp_path / "policy.csv",
                          domain={"host": True})
    explained = run("policy", "explain", "--json", "--sub", "u-7", *arguments, "PUT", "/docs/a",
                    config=config)
    tested = run("policy", "test", "--sub", "u-7", *arguments, "PUT", "/docs/a", config=config)
    assert (explained.returncode, tested.returncode) == (code, code), explained.stderr
    data = json.loads(explained.stdout)
    assert data["reason"] == field(tested.stdout, "reason")
    if code == 0:
        assert "role:editor" in [s["name"] for s in data["subjects"]]
