"""`gatekeeper policy diff OLD NEW`, run as a real process on real files (and a real git repo).

OLD is a copy of the shipped RBAC example; NEW is that copy with one line edited, so every
change the diff reports must come from that line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.cli.test_policy import (
    CASES,
    EXAMPLE_OPTIONS,
    MODEL,
    POLICY,
    line_of,
    run,
    write_config,
)

EDITOR_WRITES = "p, role:editor, /api/:project/items/:id, PUT|PATCH|DELETE, allow"
EDITOR_NO_DELETE = "p, role:editor, /api/:project/items/:id, PUT|PATCH, allow"
ME = "p, role:authenticated, /api/me, GET, allow"


def versions(tmp_path: Path, old_line: str, new_line: str) -> tuple[Path, Path, Path]:
    """(config naming the old files, old dir, new dir): new differs by one line."""
    old, new = tmp_path / "old", tmp_path / "new"
    for directory in (old, new):
        directory.mkdir()
        shutil.copy(MODEL, directory / MODEL.name)
    shutil.copy(POLICY, old / POLICY.name)
    text = POLICY.read_text()
    assert old_line in text
    (new / POLICY.name).write_text(text.replace(old_line, new_line))
    return write_config(tmp_path, old / MODEL.name, old / POLICY.name), old, new


def diff_json(*arguments: str, config: Path) -> tuple[int, dict[str, Any]]:
    result = run("policy", "diff", "--json", *arguments, config=config)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


def test_the_same_policy_changes_nothing_and_exits_0(tmp_path: Path) -> None:
    config, old, _ = versions(tmp_path, ME, ME)
    result = run("policy", "diff", "config", str(old), config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("0 decisions change (0 not covered by --allow-change)")


def test_generated_edge_cases_find_a_narrowed_rule(tmp_path: Path) -> None:
    config, old, new = versions(tmp_path, EDITOR_WRITES, EDITOR_NO_DELETE)
    code, data = diff_json(str(old), str(new), config=config)
    assert code == 1
    changed = {(c["who"], c["method"], c["path"]) for c in data["changes"]}
    assert ("role editor alone", "DELETE", "/api/x1/items/x1") in changed
    assert ("role admin alone", "DELETE", "/api/x1/items/x1") in changed
    assert all(c["method"] == "DELETE" and not c["new"]["allowed"] and c["old"]["allowed"]
               for c in data["changes"]), data["changes"]
    assert data["uncovered"] == len(data["changes"]) and data["compared"]["generated"] > 100


def test_the_table_lists_each_change(tmp_path: Path) -> None:
    config, old, new = versions(tmp_path, EDITOR_WRITES, EDITOR_NO_DELETE)
    result = run("policy", "diff", str(old), str(new), config=config)
    assert result.returncode == 1
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows[0] == ["SOURCE", "WHO", "REQUEST", "OLD", "NEW", "ALLOWED", "BY"]
    assert ["generated", "role", "editor", "alone", "DELETE", "/api/x1/items/x1", "allow",
            f"({line_of(POLICY, EDITOR_WRITES)})", "deny", "(no_matching_rule)", "-"] in rows


@pytest.mark.parametrize(("patterns", "code"), [
    (["DELETE /api/*"], 0),
    (["to:deny"], 0),
    (["role:editor"], 1),
    (["role:editor", "role:admin"], 0),
    (["to:allow"], 1),
    (["GET /api/*"], 1),
], ids=["method and path cover every change", "every change is a narrowing",
        "editors alone: admins still change", "editors and admins",
        "no change is a widening", "another method"])
def test_allow_change_decides_the_exit_code(tmp_path: Path, patterns: list[str], code: int) -> None:
    config, old, new = versions(tmp_path, EDITOR_WRITES, EDITOR_NO_DELETE)
    arguments = [word for pattern in patterns for word in ("--allow-change", pattern)]
    got, data = diff_json(str(old), str(new), *arguments, config=config)
    assert got == code, data
    assert data["changes"]  # covered or not, they are listed
    assert data["uncovered"] == sum(c["covered_by"] is None for c in data["changes"])


def test_the_cases_file_is_decided_under_both(tmp_path: Path) -> None:
    config, old, new = versions(tmp_path, EDITOR_WRITES, EDITOR_NO_DELETE)
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "- name: editors delete items\n"
        "  request: {sub: dana, roles: [editor], method: DELETE, path: /api/p1/items/7}\n"
        "  expect: allow\n"
        "- request: {sub: bob, roles: [viewer], method: GET, path: /api/p1/items}\n"
        "  expect: allow\n")
    code, data = diff_json(str(old), str(new), "--cases", str(cases), "--no-generated",
                           config=config)
    assert code == 1
    assert data["compared"] == {"cases": 2, "traffic": 0, "generated": 0}
    assert [(c["source"], c["who"], c["method"], c["path"]) for c in data["changes"]] == [
        ("cases", "dana [editor] (editors delete items)", "DELETE", "/api/p1/items/7")]
    assert (data["changes"][0]["old"]["rule"], data["changes"][0]["new"]["reason"]) == (
        line_of(POLICY, EDITOR_WRITES), "no_matching_rule")


def test_the_shipped_cases_file_is_read(tmp_path: Path) -> None:
    config, old, _ = versions(tmp_path, ME, ME)
    code, data = diff_json("config", str(old), "--cases", str(CASES), "--no-generated",
                           config=config)
    assert code == 0 and data["changes"] == []
    requests = {json.dumps({**case["request"], "method": case["request"]["method"].upper()},
                           sort_keys=True) for case in yaml.safe_load(CASES.read_text())}
    assert data["compared"]["cases"] == len(requests) > 20  # each distinct request once


def access_line(method: str, path: str, subject: str) -> str:
    """An access-log line with the fields docs/operations.md documents."""
    return json.dumps({"request_id": "0f6c2c1e9d6a4b7f", "method": method, "path": path,
                       "status": 200, "subject": subject, "decision": "allow",
                       "reason": "policy_allow", "rule": "policy.csv:17", "total_ms": 3.3,
                       "upstream_ms": 0.8, "client": "10.42.3.17",
                       "time": "2026-11-26T11:18:17.073Z"})


def test_traffic_routes_and_subjects_are_decided_under_both(tmp_path: Path) -> None:
    config, old, new = versions(tmp_path, ME, "p, role:viewer, /api/me, GET, allow")
    log = tmp_path / "access.log"
    log.write_text("\n".join([
        access_line("GET", "/api/me", "alice"),
        access_line("GET", "/api/me", "alice"),
        access_line("get", "/public/logo.png", "anonymous"),
        '{"time": "2026-11-26T08:05:33.412Z", "level": "info", "message": "policy loaded"}',
        "not json",
    ]) + "\n")
    code, data = diff_json(str(old), str(new), "--traffic", str(log), "--no-generated",
                           config=config)
    assert code == 1
    changed = {(c["who"], c["method"], c["path"]) for c in data["changes"]}
    # Callers with role:viewer (viewer, editor, admin) keep it; the others lose it.
    assert changed == {("alice (as logged: no token roles)", "GET", "/api/me"),
                       ("someone (no roles)", "GET", "/api/me")}
    assert data["compared"]["traffic"] > 4
    assert any("2 line(s) are not access-log lines" in note for note in data["notes"])


def git(directory: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(directory), *arguments], check=True, capture_output=True,
                   timeout=60)


def test_a_git_revision_is_a_version(tmp_path: Path) -> None:
    config, old, _ = versions(tmp_path, ME, ME)
    git(old, "init", "-q")
    git(old, "add", MODEL.name, POLICY.name)
    git(old, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "v1")
    (old / POLICY.name).write_text(POLICY.read_text().replace(EDITOR_WRITES, EDITOR_NO_DELETE))
    code, data = diff_json("git:HEAD", "config", config=config)
    assert code == 1 and data["changes"]
    assert all(c["method"] == "DELETE" for c in data["changes"])
    same = run("policy", "diff", "git:HEAD", "git:HEAD", config=config)
    assert same.returncode == 0, same.stdout + same.stderr


@pytest.mark.parametrize(("arguments", "message"), [
    (["config", "/no/such/dir"], "give config, a directory, MODEL,POLICY or git:REV"),
    (["config", "config", "--allow-change", "ROLE=admin"], "is none of METHOD"),
    (["config", "git:no-such-revision"], "new: git show no-such-revision:model.conf failed"),
    (["config", "config", "--no-generated"], "nothing to compare"),
    (["config", "BROKEN"], "effect 'Deny' is neither 'allow' nor 'deny'"),
], ids=["an unknown version", "an unknown pattern word", "an unknown git revision",
        "no request source", "a new policy that does not load"])
def test_usage_errors_exit_2(tmp_path: Path, arguments: list[str], message: str) -> None:
    config, old, _ = versions(tmp_path, ME, ME)
    git(old, "init", "-q")
    broken = tmp_path / "broken.csv"
    broken.write_text("p, role:viewer, /x, GET, Deny\n")
    arguments = [f"{old / MODEL.name},{broken}" if a == "BROKEN" else a for a in arguments]
    result = run("policy", "diff", *arguments, config=config)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr


TENANTS = MODEL.parent / "tenants-domains"
GLOBEX_BETA = "p, role:member, globex, /api/beta/*, GET|HEAD, allow"


def test_a_tenants_policy_is_loaded_with_its_policy_section(tmp_path: Path) -> None:
    """The tenants example needs policy.domain: both versions are loaded with the config's
    policy section, as the proxy loads them, and a rule moved to another tenant shows."""
    old, new = tmp_path / "old", tmp_path / "new"
    model, policy = TENANTS.with_suffix(".model.conf"), TENANTS.with_suffix(".policy.csv")
    for directory in (old, new):
        directory.mkdir()
        shutil.copy(model, directory / model.name)
    shutil.copy(policy, old / policy.name)
    text = policy.read_text()
    assert GLOBEX_BETA in text
    (new / policy.name).write_text(text.replace(GLOBEX_BETA, GLOBEX_BETA.replace("globex", "acme")))
    config = write_config(tmp_path, old / model.name, old / policy.name,
                          **EXAMPLE_OPTIONS[model.name])
    cases = TENANTS.parent / "tenants-domains_test.yaml"
    code, data = diff_json(str(old), str(new), "--cases", str(cases), "--no-generated",
                           config=config)
    assert code == 1
    changed = {(c["who"].split(" (")[0], c["path"], c["old"]["allowed"], c["new"]["allowed"])
               for c in data["changes"]}
    assert ("u-1 [member]", "/api/beta/x", True, False) in changed
    assert ("u-1 [member]", "/api/beta/x", False, True) in changed
