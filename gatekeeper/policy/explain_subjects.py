"""The subjects side of an explanation (explain.py): each name the request holds, and the token
value or ``g`` line (with its place in the policy file) it was reached through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casbin.persist.adapter import _extract_tokens

from gatekeeper.policy.engine import ExplainView
from gatekeeper.subjects import ANONYMOUS_ROLE, AUTHENTICATED_ROLE, as_role


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    via: str  # token subject | token role | role:authenticated | role:anonymous | g line F:N
    chain: tuple[str, ...]  # from what the token gave to this name, through g lines

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "via": self.via, "chain": list(self.chain)}


def subjects_held(view: ExplainView, subject: str | None, roles: Sequence[str],
              sources: Mapping[tuple[str, str], str]) -> tuple[Subject, ...]:
    """Each name the request holds, reached first from what the token gave (a breadth-first
    walk of the g links: the shortest chain). The set is the engine's own."""
    given: list[tuple[str, str]] = []
    if subject is not None:
        given.append((subject, "token subject"))
        given += [(as_role(role), "token role") for role in roles]
        given.append((AUTHENTICATED_ROLE, "role:authenticated"))
    given.append((ANONYMOUS_ROLE, "role:anonymous"))
    found: dict[str, Subject] = {}
    frontier: list[Subject] = []
    for name, via in given:
        if name not in found and name in view.subjects:
            found[name] = Subject(name, via, (name,))
            frontier.append(found[name])
    while frontier:
        reached: list[Subject] = []
        for held in frontier:
            for role in view.role_links.get(held.name, ()):
                if role in found or role not in view.subjects:
                    continue
                where = sources.get((held.name, role))
                found[role] = Subject(role, f"g line {where}" if where else "g line",
                                      (*held.chain, role))
                reached.append(found[role])
        frontier = reached
    return tuple(found.values())


def g_sources(policy_file: Path, view: ExplainView) -> dict[tuple[str, str], str]:
    """(member, role) -> "policy.csv:7", read from the file (the request's tenant's lines, with
    tenants); nothing when the file no longer holds the loaded links (changed since the load,
    or links that come from a domain pattern: a wrong line is worse than none)."""
    try:
        with policy_file.open(encoding="utf-8", newline="") as file:  # as the loader reads it
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return {}
    sources: dict[tuple[str, str], str] = {}
    for number, raw in enumerate(text.split("\n"), start=1):  # as the loader numbers lines
        line = raw.strip()
        if not line.startswith("g"):
            continue
        try:
            tokens = _extract_tokens(line)
        except IndexError:
            continue
        if tokens[0] != "g":
            continue
        # g, member, role (no tenants) or g, member, role, tenant: the request's tenant's lines
        if len(tokens) == 3 or (len(tokens) == 4 and tokens[3] == view.domain):
            sources.setdefault((tokens[1], tokens[2]), f"{policy_file.name}:{number}")
    loaded = {(member, role) for member, held in view.role_links.items() for role in held}
    return sources if set(sources) == loaded else {}
