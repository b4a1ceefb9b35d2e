"""docs/policies.md, "Conditions per rule: eval() and attributes": the worked example is a test.

Its table of tokens, requests and answers is decided through the shipped
policies/abac-documents.* files the way the proxy decides (the target canonicalized, the query
read from the request), and its "Try one" commands are run through ``gatekeeper policy test``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.paths import canonical_path
from gatekeeper.policy.loader import load_policy
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")
SECTION = DOC.split("## Conditions per rule: eval() and attributes\n")[1].split("\n## ")[0]
POLICIES = ROOT / "policies"
ROW = re.compile(r"^\| `(\{.*\})` \| `([A-Z]+) (\S+)` \| (allow|deny) \|$", re.M)
ROWS = ROW.findall(SECTION)


def test_the_worked_example_has_its_table() -> None:
    assert len(ROWS) >= 12
    assert {answer for *_, answer in ROWS} == {"allow", "deny"}


@pytest.mark.parametrize(("token", "method", "target", "answer"), ROWS,
                         ids=[f"{m} {t} for {tok}" for tok, m, t, _ in ROWS])
def test_each_row_of_the_worked_example_is_decided_as_written(
    token: str, method: str, target: str, answer: str
) -> None:
    claims: dict[str, Any] = json.loads(token)
    principal = Principal(subject=claims["sub"], roles=tuple(claims.get("roles", ())),
                          claims=claims, via="bearer")
    policy = load_policy(POLICIES / "abac-documents.model.conf",
                         POLICIES / "abac-documents.policy.csv").policy
    raw_path, _, query = target.encode().partition(b"?")
    path = canonical_path(raw_path)
    request = RequestView({"method": method, "path": path, "raw_path": raw_path,
                           "query_string": query, "headers": [], "client": ("127.0.0.1", 1)},
                          path)
    verdict = policy.decide(principal.subject, principal.roles, method, path,
                            authenticated=True, claims=claims, cache_key=principal,
                            request=request)
    assert verdict.allowed is (answer == "allow"), verdict


def _try_commands() -> list[tuple[list[str], int]]:
    """The "Try one" paragraph: the command (allow, exit 0), then its variations (deny, 1)."""
    paragraph = SECTION.split("Try one: ")[1].split("\n\n")[0]
    found = [re.search(pattern, paragraph) for pattern in (
        r"`(gatekeeper policy test [^`]+)`", r"with `(--claim [^`]+)` it denies",
        r"so does `(--sub [^`]+)`")]
    assert all(found), paragraph
    command, claim, other = (shlex.split(m.group(1)) for m in found if m is not None)
    with_claim = command[:command.index("--claim")] + claim + command[-2:]
    base = command[:command.index("--sub")]
    return [(command, 0), (with_claim, 1), (base + other, 1)]


def test_the_try_one_commands_answer_as_the_section_says(tmp_path: Path) -> None:
    config = next(block for block in re.findall(r"```yaml\n(.*?)```", DOC, flags=re.S)
                  if "policies/abac-documents.model.conf" in block)
    (tmp_path / "policies").symlink_to(POLICIES)
    (tmp_path / "gatekeeper.yaml").write_text(config)
    for command, code in _try_commands():
        assert command[:3] == ["gatekeeper", "policy", "test"]
        argv = [sys.executable, "-m", "gatekeeper", *command[1:]]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path,
                                check=False)
        assert result.returncode == code, (command, result.stdout, result.stderr)
