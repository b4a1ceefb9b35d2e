"""Policies for tests: the project's default (policies/), a Casbin model's text from its parts,
the two files written for a ``policy`` section, and the stock casbin Enforcer kept quiet."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gatekeeper.settings.routes import DomainSource, PolicySettings

__all__ = ["ALLOW", "ALLOW_UNLESS_DENIED", "SHIPPED_SETTINGS", "casbin_model", "casbin_quiet",
           "copy_default_policy", "write_policy"]

POLICIES = Path(__file__).resolve().parents[2] / "policies"

# The policy settings a shipped example needs beyond its two files (its header says so).
SHIPPED_SETTINGS = {
    "tenants-domains.policy.csv": PolicySettings(domain=DomainSource(claim="tenant"),
                                                 domain_matching="keyMatch"),
}


ALLOW = "some(where (p.eft == allow))"
ALLOW_UNLESS_DENIED = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"


def casbin_model(request: str, policy: str, matchers: str, *, roles: str | None = "_, _",
                 effect: str = ALLOW, more: str = "") -> str:
    """A model.conf's text: ``r = request``, ``p = policy``, ``g = roles`` (none when None),
    ``e = effect``, ``m = matchers``, then ``more`` (gatekeeper's [object_attributes])."""
    sections = [f"[request_definition]\nr = {request}\n", f"[policy_definition]\np = {policy}\n"]
    if roles is not None:
        sections.append(f"[role_definition]\ng = {roles}\n")
    sections += [f"[policy_effect]\ne = {effect}\n", f"[matchers]\nm = {matchers}\n"]
    if more:
        sections.append(more)
    return "\n".join(sections)


def write_policy(directory: Path, model: str, rules: str, **settings: Any) -> dict[str, Any]:
    """model.conf and policy.csv written into ``directory``; the ``policy`` config naming them
    (``settings``: its other keys)."""
    (directory / "model.conf").write_text(model)
    (directory / "policy.csv").write_text(rules)
    return {"model": str(directory / "model.conf"), "policy": str(directory / "policy.csv"),
            **settings}


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
