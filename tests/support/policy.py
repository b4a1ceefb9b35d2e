"""The project's default policy (policies/) for tests, and the stock casbin Enforcer kept quiet."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from gatekeeper.settings.routes import DomainSource, PolicySettings

__all__ = ["SHIPPED_SETTINGS", "casbin_quiet", "copy_default_policy"]

POLICIES = Path(__file__).resolve().parents[2] / "policies"

# The policy settings a shipped example needs beyond its two files (its header says so).
SHIPPED_SETTINGS = {
    "tenants-domains.policy.csv": PolicySettings(domain=DomainSource(claim="tenant"),
                                                 domain_matching="keyMatch"),
}


def copy_default_policy(directory: Path, extra_rules: str = "") -> dict[str, str]:
    """policies/model.conf and policy.csv (plus ``extra_rules`` appended) copied into
    ``directory``; the ``policy`` config naming the copies."""
    shutil.copy(POLICIES / "model.conf", directory / "model.conf")
    (directory / "policy.csv").write_text((POLICIES / "policy.csv").read_text() + extra_rules)
    return {"model": str(directory / "model.conf"), "policy": str(directory / "policy.csv")}


@contextlib.contextmanager
def casbin_quiet() -> Iterator[None]:
    """The stock casbin Enforcer logs every decision: only its errors, while inside."""
    logger = logging.getLogger("casbin")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
