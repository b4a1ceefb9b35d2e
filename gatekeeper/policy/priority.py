"""``subjectPriority(p.eft) || deny``: the first matching rule decides, rules ordered by their
subject's place in the role hierarchy, as Casbin's ``sort_policies_by_subject_hierarchy`` orders
them: the subjects nobody inherits from first (level 0), then those they inherit from, and so
on; the file order within a level.

Casbin sorts once, at load, over its ``g`` lines. Here a caller's token roles are links too —
of one request only — and they move roles down the hierarchy (a role someone holds is no longer
a leaf), so the order is worked out over the ``g`` lines plus the request's own links, once per
set of links (cached), exactly as the stock Enforcer would order them with those links loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gatekeeper.lru import LRU


class HierarchyCycle(ValueError):
    """The links make a cycle: Casbin refuses to order the rules."""


def subject_levels(links: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each subject's level: peel the subjects that are nobody's parent, round after round."""
    pending = list(links)
    unsorted = {name for link in pending for name in link}
    levels: dict[str, int] = {}
    level = 0
    while pending:
        parents = {parent for _, parent in pending if parent != ""}
        leaves = unsorted - parents
        if not leaves:
            raise HierarchyCycle(f"the role links make a cycle among {sorted(unsorted)}")
        levels.update(dict.fromkeys(leaves, level))
        pending = [(child, parent) for child, parent in pending if child not in leaves]
        unsorted -= leaves
        level += 1
    levels.update(dict.fromkeys(unsorted, level))
    return levels


_CYCLE: dict[str, int] = {}  # cached for links that close a cycle (compared by identity)


class SubjectPriority:
    """Orders candidate rules for one request; ``subject_at``: the rule field Casbin sorts by
    (its first)."""

    def __init__(self, links: Sequence[tuple[str, str]], subject_at: int = 0,
                 cache_size: int = 4096) -> None:
        self._links = tuple(links)
        self._subject_at = subject_at
        subject_levels(self._links)  # a cycle in the g lines: refused at load (raises)
        self._levels: LRU[tuple[str, tuple[str, ...]], dict[str, int]] = LRU(cache_size)

    def order(self, positions: Iterable[int], rules: Sequence[Sequence[str]], subject: str,
              held: Sequence[str]) -> list[int] | None:
        """``positions`` by (level of the rule's subject, position); None when the request's
        links (``subject`` → each of ``held``) close a cycle: no order, no decision."""
        key = (subject, tuple(sorted(held)))
        levels = self._levels.get(key)
        if levels is None:
            try:
                levels = subject_levels([*self._links, *((subject, role) for role in held)])
            except HierarchyCycle:
                levels = _CYCLE
            self._levels.put(key, levels)
        if levels is _CYCLE:
            return None
        at = self._subject_at
        return sorted(positions, key=lambda position: (levels.get(rules[position][at], 0), position))
