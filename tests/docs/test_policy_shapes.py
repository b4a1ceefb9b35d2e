"""Every worked example of docs/policies.md's shape sections (tenants, role patterns, subject
priority, request field names, ipMatch) is a test: its model, policy, settings and cases, decided as
``gatekeeper policy test --cases`` decides them (the proxy's own authorizer, the canonical path,
the case's Host and client address)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.cli.policy import _CASES, Decider, check_case
from gatekeeper.policy.loader import load_policy
from gatekeeper.settings.routes import PolicySettings
from tests.support.paths import ROOT

TUTORIAL = ROOT / "docs" / "policies.md"
_BLOCK = re.compile(r"^```(ini model|csv policy|yaml settings|yaml cases)\n(.*?)^```", re.S | re.M)
PARTS = ("ini model", "csv policy", "yaml settings", "yaml cases")


def _section_of(text: str, at: int) -> str:
    return text[:at].rsplit("\n## ", 1)[1].split("\n", 1)[0]


def examples() -> list[Any]:
    text = TUTORIAL.read_text(encoding="utf-8")
    found = [(m.group(1), m.group(2), _section_of(text, m.start())) for m in _BLOCK.finditer(text)]
    assert [kind for kind, _, _ in found] == list(PARTS) * (len(found) // len(PARTS)), \
        "each worked example is a model, a policy, settings and cases, in that order"
    params: list[Any] = []
    seen: dict[str, int] = {}
    for start in range(0, len(found), len(PARTS)):
        group = found[start:start + len(PARTS)]
        section = group[0][2]
        seen[section] = seen.get(section, 0) + 1
        params.append(pytest.param(*(body for _, body, _ in group), id=f"{section} #{seen[section]}"))
    return params


EXAMPLES = examples()


def test_every_shape_section_has_a_worked_example() -> None:
    sections = {p.id.rsplit(" #", 1)[0] for p in EXAMPLES}
    assert sections == {"Tenants (Casbin domains)", "Role patterns", "Subject priority",
                        "Other request field names", "ipMatch on the client address"}


@pytest.mark.parametrize(("model", "policy", "settings", "cases"), EXAMPLES)
def test_the_worked_example_decides_as_the_page_says(
    tmp_path: Path, model: str, policy: str, settings: str, cases: str
) -> None:
    (tmp_path / "model.conf").write_text(model)
    (tmp_path / "policy.csv").write_text(policy)
    options = PolicySettings(**(yaml.safe_load(settings)["policy"] or {}))
    report = load_policy(tmp_path / "model.conf", tmp_path / "policy.csv", settings=options)
    assert report.warnings == []
    decider = Decider(report.policy, public_paths=[], roles_claims=[], subject_prefixes={})
    table = _CASES.validate_python(yaml.safe_load(cases))
    assert len(table) >= 3
    for case in table:
        assert check_case(decider, case) is None, case.name


def test_the_migration_table_is_one_row_per_feature_with_a_known_status() -> None:
    """'Migrating an existing Casbin policy': rows colleagues add stay mergeable and readable."""
    page = TUTORIAL.read_text(encoding="utf-8").split("## Migrating an existing Casbin policy")[1]
    rows = [line for line in page.split("\n## ")[0].splitlines() if line.startswith("| ")][2:]
    assert len(rows) >= 10
    features = []
    for line in rows:
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 3, line
        assert cells[1] in {"supported", "refused", "not applicable"}, line
        assert cells[2], line  # how, or why not
        features.append(cells[0])
    assert len(features) == len(set(features))
