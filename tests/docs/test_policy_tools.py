"""docs/policies.md's worked examples of `policy explain` and `policy diff`, run as written.

Each ```console block is a command and its output: the command runs in a directory laid out as
the tutorial says (its config as gatekeeper.yaml, the shipped policies/ beside it, and for the
diff a new/ copy with the edit the text describes), and must print exactly that output.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

TUTORIAL = ROOT / "docs" / "policies.md"
POLICIES = ROOT / "policies"
EDITOR_WRITES = "p, role:editor, /api/:project/items/:id, PUT|PATCH|DELETE, allow"
EDITOR_NO_DELETE = "p, role:editor, /api/:project/items/:id, PUT|PATCH, allow"


def console_blocks() -> list[tuple[str, str]]:
    text = TUTORIAL.read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n\$ (.*?)\n(.*?)```", text, flags=re.S)
    return [(command, output.rstrip("\n")) for command, output in blocks
            if command.startswith(("gatekeeper policy explain", "gatekeeper policy diff"))]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    shutil.copytree(POLICIES, tmp_path / "policies")
    shutil.copytree(POLICIES, tmp_path / "new")
    policy = tmp_path / "new" / "policy.csv"
    policy.write_text(policy.read_text().replace(EDITOR_WRITES, EDITOR_NO_DELETE))
    blocks = re.findall(r"```yaml\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.S)
    config = next(b for b in blocks if isinstance(yaml.safe_load(b), dict)
                  and "policies/policy.csv" in b)
    (tmp_path / "gatekeeper.yaml").write_text(config)
    return tmp_path


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "gatekeeper"
    return subprocess.run([sys.executable, "-m", "gatekeeper", *words[1:]], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")})


def test_the_tutorial_shows_both_tools() -> None:
    commands = [command.split()[2] for command, _ in console_blocks()]
    assert commands == ["explain", "diff"]
    assert f"`{EDITOR_NO_DELETE}`" in TUTORIAL.read_text(encoding="utf-8")


@pytest.mark.parametrize(("command", "output"), console_blocks(),
                         ids=lambda value: value.split()[2] if value.startswith("gatekeeper") else "")
def test_each_worked_example_prints_what_the_tutorial_shows(
    layout: Path, command: str, output: str
) -> None:
    result = run(command, layout)
    assert result.returncode == 1, result.stderr  # a deny; changes not covered
    assert result.stdout.rstrip("\n") == output


def test_the_diff_passes_once_the_change_is_allowed(layout: Path) -> None:
    command = next(c for c, _ in console_blocks() if " diff " in c)
    result = run(f"{command} --allow-change 'DELETE /api/*'", layout)
    assert result.returncode == 0, result.stdout + result.stderr
