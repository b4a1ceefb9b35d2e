"""The project's default policy (policies/), copied for a gatekeeper under test."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["copy_default_policy"]

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def copy_default_policy(directory: Path, extra_rules: str = "") -> dict[str, str]:
    """policies/model.conf and policy.csv (plus ``extra_rules`` appended) copied into
    ``directory``; the ``policy`` config naming the copies."""
    shutil.copy(POLICIES / "model.conf", directory / "model.conf")
    (directory / "policy.csv").write_text((POLICIES / "policy.csv").read_text() + extra_rules)
    return {"model": str(directory / "model.conf"), "policy": str(directory / "policy.csv")}
