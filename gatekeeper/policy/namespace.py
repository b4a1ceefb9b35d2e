"""Lint: plain role names in a policy, now that roles reach it as ``role:<name>`` (subjects.py).

Each finding names the line and the rename that migrates it. The engine already refuses, as a
subject, every plain name a policy uses as a role; these warnings say why a rule stopped applying.
"""

from __future__ import annotations

from collections.abc import Sequence

from gatekeeper.policy.engine import Rule
from gatekeeper.subjects import BUILTIN_ROLES, ROLE_PREFIX, fold

_WHY = "token roles reach the policy as role:NAME"


def role_namespace_warnings(
    rules: Sequence[Rule], g_lines: Sequence[tuple[str, Sequence[str], str]], p_tokens: Sequence[str]
) -> list[str]:
    subjects = ([(rule.values[list(p_tokens).index("p_sub")], rule.source) for rule in rules]
                if "p_sub" in p_tokens else [])
    targets = [(values[1], where) for key, values, where in g_lines if key == "g" and len(values) >= 2]
    prefixed = any(name.startswith(ROLE_PREFIX) for name, _ in [*subjects, *targets])
    warnings: list[str] = []
    seen: set[str] = set()

    def warn(name: str, where: str, text: str) -> None:
        if name not in seen:
            seen.add(name)
            warnings.append(f"{where}: {text}")

    for name, where in [*targets, *subjects]:
        if name.startswith(ROLE_PREFIX):
            continue
        if fold(name).startswith(ROLE_PREFIX):
            warn(name, where, f"{name!r} is neither a role nor a user: write the prefix exactly "
                              f"{ROLE_PREFIX!r} (lower case, no spaces)")
        elif name in BUILTIN_ROLES:
            warn(name, where, f"{name!r} is now {ROLE_PREFIX}{name}: rename it (as written, no "
                              "caller holds it)")
        elif (name, where) in targets:
            warn(name, where, f"role {name!r} has no {ROLE_PREFIX} prefix: {_WHY}, so write "
                              f"{ROLE_PREFIX}{name}; a caller whose subject is {name!r} is refused")
        elif not prefixed:
            warn(name, where, f"subject {name!r} has no {ROLE_PREFIX} prefix: {_WHY}, so write "
                              f"{ROLE_PREFIX}{name} if it is a role; until this policy names a "
                              f"role:, a caller whose subject is {name!r} is refused")
    return warnings
