"""docs/policy-page.md stays true: its config is valid, its pictures exist, its links resolve,
and its parameter table is what /policy/explain takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gatekeeper.errors import BadRequest
from gatekeeper.metrics import Metrics
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.ops.recent import Traffic
from gatekeeper.policy.reload import PolicyHolder
from tests.support.docs import load_block, yaml_blocks
from tests.support.paths import ROOT

PAGE = ROOT / "docs" / "policy-page.md"
DOC = PAGE.read_text(encoding="utf-8")


def test_the_config_block_is_valid_and_keeps_the_defaults(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = yaml_blocks(DOC)
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.admin.trusted_peers == ["127.0.0.0/8", "::1/128"]
    assert settings.admin.token is not None


def test_every_picture_is_checked_in() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", DOC)
    assert len(images) >= 3
    for image in images:
        assert (PAGE.parent / image).is_file(), image


def test_the_guides_link_to_the_page() -> None:
    assert "(docs/policy-page.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(policy-page.md)" in (ROOT / "docs" / "policies.md").read_text(encoding="utf-8")


def test_the_parameter_table_is_what_explain_takes(tmp_path: Path) -> None:
    section = DOC[DOC.index("| parameter | meaning |"):]
    documented = {name for cell in re.findall(r"^\| ([^|]+) \|", section, re.M)[2:]
                  for name in re.findall(r"`([a-z]+)(?:=1)?`", cell)}
    page = PolicyPage(PolicyHolder(tmp_path / "m", tmp_path / "p", Metrics()), Traffic(),
                      public_paths=[], roles_claims=[])
    for name in documented:  # each is taken...
        try:
            page.trial([(name, "1" if name == "anonymous" else "/x" if name == "path" else "x")])
        except BadRequest as exc:
            assert "not a parameter" not in exc.description, (name, exc.description)
    with pytest.raises(BadRequest, match="not a parameter"):  # ...and nothing else is
        page.trial([("colour", "red")])
    assert documented == {"sub", "anonymous", "role", "claim", "method", "path", "host", "client"}
