"""`gatekeeper policy test`, `policy check` and `check`, run as real processes on real files.

Configs point at the shipped ``policies/`` files by absolute path, or at broken copies in a
temporary directory. Rule lines are looked up in the files, never hard-coded, so editing a
comment in ``policy.csv`` does not break these tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import ROOT
from tests.support.policy import casbin_model

POLICIES = ROOT / "policies"
MODEL, POLICY = POLICIES / "model.conf", POLICIES / "policy.csv"
TENANTS_MODEL, TENANTS_POLICY = POLICIES / "tenants.model.conf", POLICIES / "tenants.policy.csv"
CASES = POLICIES / "policy_test.yaml"


def run(*args: str, config: Path | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    command = [sys.executable, "-m", "gatekeeper", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**clean, **(env or {})})


def write_config(directory: Path, model: Path = MODEL, policy: Path = POLICY,
                 public_paths: tuple[str, ...] = ("/public/*",), **options: Any) -> Path:
    """``options``: more of the ``policy:`` section (domain, role_matching…)."""
    path = directory / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump({"public_paths": list(public_paths), "policy": {
        "model": str(model), "policy": str(policy), **options}}))
    return path


# What a shipped example needs in the policy section beyond its files (its header says so).
EXAMPLE_OPTIONS: dict[str, dict[str, Any]] = {
    "tenants-domains.model.conf": {"domain": {"claim": "tenant"}, "domain_matching": "keyMatch"},
}


def line_of(path: Path, rule: str) -> str:
    """``policy.csv:20`` for the line holding exactly ``rule``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip() == rule:
            return f"{path.name}:{number}"
    raise AssertionError(f"{rule!r} not in {path}")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in:\n{output}")


# ---------------------------------------------------------------- policy test: one request


VIEWER_READS = "p, role:viewer, /api/:project/items, GET|HEAD, allow"
AUDIT_DENY = "p, role:authenticated, /api/:project/items/audit, DELETE, deny"


def test_an_allowed_request_exits_0_and_names_the_rule(config: Path) -> None:
    result = run("policy", "test", "--sub", "bob", "--role", "viewer", "GET", "/api/p1/items",
                 config=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "allow"
    assert field(result.stdout, "rule") == f"{line_of(POLICY, VIEWER_READS)}: {VIEWER_READS}"
    assert field(result.stdout, "request") == "GET /api/p1/items"


def test_a_deny_rule_exits_1_and_names_the_rule_and_the_inherited_subjects(config: Path) -> None:
    result = run("policy", "test", "--sub", "carol", "--role", "admin", "DELETE",
                 "/api/p1/items/audit", config=config)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "deny"
    assert field(result.stdout, "rule").startswith(f"{line_of(POLICY, AUDIT_DENY)}: p, ")
    assert field(result.stdout, "reason") == "policy_deny"
    assert field(result.stdout, "subjects") == \
        "carol, role:admin, role:anonymous, role:authenticated, role:editor, role:viewer"


def test_no_matching_rule_is_a_default_deny(config: Path) -> None:
    result = run("policy", "test", "--sub", "erin", "GET", "/api/p1/items", config=config)
    assert result.returncode == 1
    assert field(result.stdout, "rule") == "no allow rule matched: default deny"
    assert field(result.stdout, "subjects") == "erin, role:anonymous, role:authenticated"


ALLOW_WINS_MODEL = MODEL.read_text().replace(
    "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "e = some(where (p.eft == allow))")


def test_a_rule_that_never_decides_is_not_named_as_the_decider(tmp_path: Path) -> None:
    """Under ``some(where (p.eft == allow))`` a deny rule decides nothing: a request it matches
    with no allow is the default deny. (Casbin's own explain names the last matching rule.)"""
    assert MODEL.read_text() != ALLOW_WINS_MODEL
    model, policy = tmp_path / "model.conf", tmp_path / "policy.csv"
    model.write_text(ALLOW_WINS_MODEL)
    policy.write_text("p, role:viewer, /reports/*, GET, allow\n"
                      "p, role:viewer, /admin/*, GET, deny\n")
    config = write_config(tmp_path, model, policy)
    denied = run("policy", "test", "--sub", "bob", "--role", "viewer", "GET", "/admin/x",
                 config=config)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "a deny rule never decides" in denied.stderr  # the lint says so at load, too
    assert (field(denied.stdout, "rule"), field(denied.stdout, "reason")) == (
        "no allow rule matched: default deny", "no_matching_rule")
    allowed = run("policy", "test", "--sub", "bob", "--role", "viewer", "GET", "/reports/x",
                  config=config)
    assert allowed.returncode == 0
    assert field(allowed.stdout, "rule") == "policy.csv:1: p, role:viewer, /reports/*, GET, allow"


def test_a_misspelled_effect_is_an_error_naming_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.csv"
    policy.write_text(POLICY.read_text().replace(AUDIT_DENY, AUDIT_DENY.replace("deny", "Deny")))
    config = write_config(tmp_path, policy=policy)
    for command in (("check",), ("policy", "test", "--sub", "carol", "--role", "admin",
                                 "DELETE", "/api/p1/items/audit")):
        result = run(*command, config=config)
        assert result.returncode == 2, result.stdout
        assert f"{line_of(POLICY, AUDIT_DENY)}: effect 'Deny' is neither 'allow' nor 'deny'" \
            in result.stderr


@pytest.mark.parametrize(("method", "code", "decided"), [
    ("get", 0, "GET"),
    ("delete", 1, "DELETE"),
], ids=["a lowercase get is allowed as GET", "a lowercase delete still meets the deny"])
def test_the_method_is_decided_upper_case(config: Path, method: str, code: int, decided: str) -> None:
    path = "/api/p1/items" if decided == "GET" else "/api/p1/items/audit"
    result = run("policy", "test", "--sub", "carol", "--role", "admin", method, path, config=config)
    assert result.returncode == code, result.stdout + result.stderr
    assert field(result.stdout, "request") == f"{decided} {path}"


def test_anonymous_callers_are_considered_only_on_public_paths(config: Path) -> None:
    public = run("policy", "test", "--anonymous", "GET", "/public/logo.png", config=config)
    assert public.returncode == 0
    assert field(public.stdout, "rule").startswith(
        line_of(POLICY, "p, role:anonymous, /public/*, GET|HEAD, allow"))
    private = run("policy", "test", "--anonymous", "GET", "/admin/", config=config)
    assert private.returncode == 1
    assert field(private.stdout, "reason") == "no_credentials"


def test_the_canonical_path_is_the_one_decided(config: Path) -> None:
    result = run("policy", "test", "--anonymous", "GET", "/public/../admin/x?next=/public/",
                 config=config)
    assert result.returncode == 1
    assert field(result.stdout, "request") == (
        "GET /admin/x  (canonical form of /public/../admin/x?next=/public/)")
    assert field(result.stdout, "reason") == "no_credentials"


def test_a_malformed_target_prints_the_400_reason_and_exits_2(config: Path) -> None:
    result = run("policy", "test", "--sub", "bob", "GET", "/public/%2e%2e/admin", config=config)
    assert result.returncode == 2
    assert result.stdout.startswith("400 malformed request target: encoded dot segment")


def test_roles_come_from_the_roles_claims_too(config: Path) -> None:
    result = run("policy", "test", "--sub", "bob", "--claim", 'groups=["viewer"]', "GET",
                 "/api/p1/items", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "role:viewer" in field(result.stdout, "subjects").split(", ")


@pytest.mark.skipif(not TENANTS_MODEL.exists(), reason="no claims-using example in policies/")
@pytest.mark.parametrize(("tenant", "code"), [("acme", 0), ("globex", 1)],
                         ids=["the own tenant is allowed", "another tenant is denied"])
def test_claims_reach_an_abac_model(tmp_path: Path, tenant: str, code: int) -> None:
    config = write_config(tmp_path, TENANTS_MODEL, TENANTS_POLICY)
    result = run("policy", "test", "--sub", "ann", "--role", "member", "--claim", f"tenant={tenant}",
                 "GET", "/tenants/acme/projects", config=config)
    assert result.returncode == code, result.stdout + result.stderr


def test_the_config_may_come_from_gatekeeper_config(config: Path) -> None:
    result = run("policy", "test", "--sub", "carol", "--role", "admin", "GET", "/admin/x",
                 env={"GATEKEEPER_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


def test_a_config_without_policy_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("public_paths: ['/public/*']\n")
    result = run("policy", "test", "--sub", "bob", "GET", "/", config=path)
    assert result.returncode == 2
    assert "has no 'policy:' section" in result.stderr


@pytest.mark.parametrize("arguments", [
    ["--sub", "bob", "--anonymous", "GET", "/"],
    ["GET", "/"],
    ["--sub", "bob", "GET"],
    ["--sub", "bob", "--claim", "tenant", "GET", "/"],
    ["--sub", "bob", "--cases", str(CASES), "GET", "/"],
], ids=["a user cannot also be anonymous", "a request needs a sub or --anonymous",
        "a request needs a path", "a claim is KEY=VALUE", "cases and a request do not mix"])
def test_usage_errors_exit_2(config: Path, arguments: list[str]) -> None:
    result = run("policy", "test", *arguments, config=config)
    assert result.returncode == 2
    assert result.stderr.startswith("gatekeeper: ")
    assert result.stdout == ""


# ---------------------------------------------------------------- policy test --cases


def test_the_shipped_cases_pass(config: Path) -> None:
    result = run("policy", "test", "--cases", str(CASES), config=config)
    count = len(yaml.safe_load(CASES.read_text()))
    assert count >= 12
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"{count} passed, 0 failed"


def test_failing_cases_are_named_and_exit_1(config: Path, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump([
        {"name": "viewers read", "expect": "allow",
         "request": {"sub": "bob", "roles": ["viewer"], "method": "GET", "path": "/api/p1/items"}},
        {"name": "wrong expectation", "expect": "deny",
         "request": {"sub": "bob", "roles": ["viewer"], "method": "GET", "path": "/api/p1/items"}},
        {"name": "wrong rule", "expect": "deny", "rule": line_of(POLICY, VIEWER_READS),
         "request": {"sub": "carol", "roles": ["admin"], "method": "DELETE",
                     "path": "/api/p1/items/audit"}},
    ]))
    result = run("policy", "test", "--cases", str(cases), config=config)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "PASS  viewers read"
    assert lines[1].startswith("FAIL  wrong expectation: expected deny, got allow")
    assert lines[2].startswith(f"FAIL  wrong rule: expected rule {line_of(POLICY, VIEWER_READS)}, "
                               f"decided by {line_of(POLICY, AUDIT_DENY)}")
    assert lines[-1] == "1 passed, 2 failed"


def test_an_invalid_cases_file_exits_2_with_key_paths(config: Path, tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump([
        {"expect": "allow", "request": {"sub": "bob", "method": "GET", "path": "/"}},
        {"expect": "maybe", "request": {"sub": "bob", "path": "/"}},
        {"expect": "deny", "request": {"anonymous": True, "sub": "x", "method": "GET", "path": "/"}},
    ]))
    result = run("policy", "test", "--cases", str(cases), config=config)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"gatekeeper: {cases}: case 2: expect: Input should be 'allow' or 'deny'" in result.stderr
    assert f"{cases}: case 2: request.method: Field required" in result.stderr
    assert f"{cases}: case 3: request: an anonymous request has no sub" in result.stderr


# ---------------------------------------------------------------- policy check and check


def broken_copy(tmp_path: Path, extra_policy_line: str = "", matcher_function: str = "") -> Path:
    policy = tmp_path / "policy.csv"
    policy.write_text(POLICY.read_text() + extra_policy_line + "\n")
    model = tmp_path / "model.conf"
    text = MODEL.read_text()
    model.write_text(text.replace("keyMatch2(", matcher_function + "(") if matcher_function else text)
    return write_config(tmp_path, model, policy)


def last_line(path: Path) -> int:
    return len(path.read_text().splitlines())


def matcher_line(path: Path) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if line.startswith("m ="))


@pytest.mark.parametrize(("line", "function", "expected"), [
    ("p, viewer, /api/x, GET", "", "policy.csv:{policy}: p takes 4 fields, found 3"),
    ("x, viewer, /api/x, GET, allow", "", "policy.csv:{policy}: unknown rule type 'x'"),
    ("g, alice, admin, extra", "", "policy.csv:{policy}: g takes 2 fields, found 3"),
    ("", "fooMatch", "model.conf:{model}: "),
], ids=["a wrong field count", "an unknown rule type", "a g line with too many fields",
        "an unknown matcher function"])
def test_policy_check_reports_each_problem_with_file_and_line(
    tmp_path: Path, line: str, function: str, expected: str
) -> None:
    config = broken_copy(tmp_path, line, function)
    where = expected.format(policy=last_line(tmp_path / "policy.csv"),
                            model=matcher_line(tmp_path / "model.conf"))
    result = run("policy", "check", config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(problem.startswith(where) or problem.startswith(f"{tmp_path}/{where}")
               for problem in result.stdout.splitlines()), result.stdout
    assert result.stdout.splitlines()[-1].endswith("1 problem, 0 warnings")


def test_policy_check_passes_with_warnings(tmp_path: Path) -> None:
    config = broken_copy(tmp_path, "p, role:viewer, /api/:project/items, GET|HEAD, allow\n"
                                   "p, role:editor, /reports/*, GET, allow\n"
                                   "p, role:editor, /reports/*, *, deny")
    lines = (tmp_path / "policy.csv").read_text().splitlines()
    result = run("policy", "check", config=config)
    assert result.returncode == 0, result.stdout
    assert f"warning: policy.csv:{len(lines) - 2}: duplicate of {line_of(POLICY, VIEWER_READS)}" \
        in result.stdout
    assert f"warning: policy.csv:{len(lines) - 1}: this allow never decides: " \
           f"policy.csv:{len(lines)} denies every request it matches" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("0 problems, 2 warnings")


LEGACY = """\
g, admin, editor
g, alice-uuid, admin
p, editor, /api/*, GET, allow
p, authenticated, /me, GET, allow
p, Role:ops, /ops/*, GET, allow
"""


def test_policy_check_names_every_plain_role_with_its_new_spelling(tmp_path: Path) -> None:
    """issue 11 §1.8 migration: a policy written before role: is told what to rename."""
    (tmp_path / "policy.csv").write_text(LEGACY)
    config = write_config(tmp_path, MODEL, tmp_path / "policy.csv")
    result = run("policy", "check", config=config)
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    expected = {
        "policy.csv:1": "role 'editor' has no role: prefix", "policy.csv:2": "role 'admin' has no",
        "policy.csv:4": "'authenticated' is now role:authenticated",
        "policy.csv:5": "'Role:ops' is neither a role nor a user",
    }
    for where, words in expected.items():
        assert any(w.startswith("warning: policy.csv:") and where in w and words in w
                   for w in warnings), (where, result.stdout)
    assert any("write role:editor" in w for w in warnings), result.stdout
    assert not any("alice-uuid" in w for w in warnings), result.stdout  # a user, as written


def test_a_plain_role_name_no_longer_grants_and_its_namesake_is_refused(tmp_path: Path) -> None:
    (tmp_path / "policy.csv").write_text(LEGACY)
    config = write_config(tmp_path, MODEL, tmp_path / "policy.csv")
    as_role = run("policy", "test", "--sub", "u-1", "--role", "editor", "GET", "/api/x",
                  config=config)
    assert as_role.returncode == 1 and field(as_role.stdout, "reason") == "no_matching_rule"
    for sub in ("editor", "admin", "Editor", " authenticated", "role:editor"):
        named = run("policy", "test", "--sub", sub, "GET", "/api/x", config=config)
        assert named.returncode == 1, (sub, named.stdout)
        assert field(named.stdout, "reason") == "subject_names_a_role", (sub, named.stdout)


@pytest.mark.parametrize("model", sorted(POLICIES.glob("*model.conf")), ids=lambda p: p.name)
def test_every_shipped_example_passes_policy_check_without_warnings(
    tmp_path: Path, model: Path
) -> None:
    policy = model.with_name(model.name.replace("model.conf", "policy.csv"))
    result = run("policy", "check", config=write_config(tmp_path, model, policy,
                                                         **EXAMPLE_OPTIONS.get(model.name, {})))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].endswith("0 problems, 0 warnings"), result.stdout


def test_check_loads_the_policy_and_reports_its_problems(tmp_path: Path) -> None:
    config = broken_copy(tmp_path, "p, viewer, /api/x, GET")
    result = run("check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "gatekeeper: invalid configuration (1 problem):"
    assert result.stderr.splitlines()[1].strip() == (
        f"policy.csv:{last_line(tmp_path / 'policy.csv')}: p takes 4 fields, found 3")


def test_check_names_the_policy_when_it_is_good(config: Path) -> None:
    result = run("check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rules = sum(1 for line in POLICY.read_text().splitlines() if line.startswith("p,"))
    assert f"policy policy.csv: {rules} rules" in result.stdout


def test_policy_check_lints_methods_as_a_regexmatch_model_compares_them(tmp_path: Path) -> None:
    """Under ``regexMatch(r.act, p.act)`` a rule's method is a pattern: ``^(GET|POST)$`` is
    fine; a pattern no upper-case method can match is the finding (was: "unknown method")."""
    model = tmp_path / "model.conf"
    model.write_text(MODEL.read_text().replace("methodMatch(r.act, p.act)",
                                               "regexMatch(r.act, p.act)"))
    policy = tmp_path / "policy.csv"
    policy.write_text("p, role:viewer, /api/*, ^(GET|POST)$, allow\n"
                      "p, role:viewer, /x/*, (GET)|(HEAD), allow\np, role:viewer, /y/*, ^get$, allow\n")
    result = run("policy", "check", config=write_config(tmp_path, model, policy))
    assert result.returncode == 0, result.stdout
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: policy.csv:3: method pattern '^get$' matches no known "
                        "(upper-case) method"], result.stdout


def test_iss_gives_the_sub_its_issuers_prefix(tmp_path: Path) -> None:
    """issue 11 §1.9: with two issuers, --iss decides as the proxy names that issuer's user."""
    (tmp_path / "policy.csv").write_text("g, https://main.example#alice, role:admin\n"
                                         "p, role:admin, /admin/*, *, allow\n")
    config = write_config(tmp_path, MODEL, tmp_path / "policy.csv")
    settings = yaml.safe_load(config.read_text())
    settings["auth"] = {"issuers": [{"issuer": "https://main.example", "audience": ["api"]},
                                    {"issuer": "https://partner.example", "audience": ["api"]}]}
    config.write_text(yaml.safe_dump(settings))
    main = run("policy", "test", "--iss", "https://main.example", "--sub", "alice", "GET", "/admin/x",
               config=config)
    assert main.returncode == 0, main.stdout + main.stderr
    assert field(main.stdout, "subjects").startswith("https://main.example#alice, ")
    partner = run("policy", "test", "--iss", "https://partner.example", "--sub", "alice", "GET",
                  "/admin/x", config=config)
    assert partner.returncode == 1 and field(partner.stdout, "reason") == "no_matching_rule"
    unknown = run("policy", "test", "--iss", "https://other.example", "--sub", "alice", "GET", "/x",
                  config=config)
    assert unknown.returncode == 2 and "not a configured issuer" in unknown.stderr


HOST_MODEL = casbin_model(
    "sub, dom, obj, act, client", "sub, dom, obj, act",
    "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act"
    ' && ipMatch(r.client, "10.0.0.0/8")', roles="_, _, _")


@pytest.mark.parametrize(("arguments", "code", "reason"), [
    (["--host", "acme.example.com", "--client", "10.1.2.3"], 0, "policy_allow"),
    (["--host", "ACME.example.com:8443", "--client", "10.1.2.3"], 0, "policy_allow"),
    (["--host", "globex.example.com", "--client", "10.1.2.3"], 1, "no_matching_rule"),
    (["--host", "acme.example.com", "--client", "203.0.113.9"], 1, "no_matching_rule"),
    (["--host", "a.example.com, b.example.com", "--client", "10.1.2.3"], 1, "bad_host"),
], ids=["the tenant's host, inside the network", "its host in capitals with a port",
        "another tenant's host", "outside the network", "a list of hosts"])
def test_one_request_names_its_host_and_client_address(
    tmp_path: Path, arguments: list[str], code: int, reason: str
) -> None:
    (tmp_path / "model.conf").write_text(HOST_MODEL)
    (tmp_path / "policy.csv").write_text("p, role:editor, acme.example.com, /docs/*, PUT\n"
                                         "g, u-7, role:editor, acme.example.com\n")
    config = write_config(tmp_path, tmp_path / "model.conf", tmp_path / "policy.csv",
                          domain={"host": True})
    result = run("policy", "test", "--sub", "u-7", *arguments, "PUT", "/docs/a", config=config)
    assert result.returncode == code, result.stdout + result.stderr
    assert field(result.stdout, "reason") == reason, result.stdout
