"""The README is part of the public surface: its config reference and examples must stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from gatekeeper.settings.file import load_settings
from gatekeeper.settings.reference import BEGIN, END, render
from tests.support.paths import ROOT

README = (ROOT / "README.md").read_text()


def test_config_reference_matches_the_model() -> None:
    start, end = README.index(BEGIN), README.index(END) + len(END)
    assert README[start:end] == render(), "run: python -m gatekeeper.settings.reference and paste into README"


def test_every_yaml_example_in_the_readme_is_a_valid_config(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    assert blocks
    for index, block in enumerate(blocks):
        path = tmp_path / f"example{index}.yaml"
        path.write_text(block)
        assert isinstance(yaml.safe_load(block), dict)
        # Secrets referenced as ${VAR}: any value long enough for a session secret.
        environ = {name: "x" * 40 for name in re.findall(r"\$\{([A-Z_]+)\}", block)}
        load_settings(path, environ=environ)


def test_readme_names_the_commands_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in README and "make test" in ci
    assert "make demo" in README


def test_cli_help_lists_the_documented_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "gatekeeper", "--help"], capture_output=True,
                            text=True, timeout=30, check=True)
    for command in ("run", "check", "demo"):
        assert command in result.stdout
