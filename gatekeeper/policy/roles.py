"""Role resolution for one role type (``g``, ``g2``…), as Casbin's role managers answer it.

Casbin's ``has_link(name1, name2[, domain])`` follows ``g`` lines from ``name1`` for at most
``max_hierarchy_level - 1`` links. Its role managers also create a node for every name they are
asked about and keep it, so a stream of new paths (``g2(r.obj, p.obj)``) or subjects would grow
them without bound; here the lines are read once and each answer is computed from them, with
bounded caches.

- Domains (``g = _, _, _``; Casbin's ``DomainManager``): the links of a domain are its own lines,
  plus — with a domain matching function (``add_named_domain_matching_func``) — the lines of
  every other domain ``d`` for which ``match(domain, d)`` holds (``g, alice, admin, *``).
- Role patterns (``add_named_matching_func``; Casbin's ``RoleManager`` with a matching
  function): the graph Casbin builds at load is built the same way (its own role manager, with
  the same function, reading the same lines in order) and kept as plain data. A name the lines
  do not hold starts from the roles of every name ``P`` with ``match(name, P)``; a role asked
  about that the lines do not hold is reached from any role ``P`` with ``match(role, P)``:
  what Casbin's node creation does (``copy_from``) for a freshly loaded Enforcer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from casbin.rbac.default_role_manager import RoleManager

from gatekeeper.lru import LRU

Matching = Callable[[str, str], Any]
_CACHED = 65536  # names (or name+domain pairs) whose reach is kept


def _matches(function: Matching, key: str, pattern: str) -> bool:
    try:  # Casbin's match_error_handler: a function that raises does not match
        return bool(function(key, pattern))
    except Exception:
        return False


class RoleLinks:
    """The ``g`` lines of one role type; ``reach`` and ``has_link`` answer as Casbin does."""

    def __init__(
        self,
        lines: Iterable[Sequence[str]],
        *,
        max_level: int = 10,
        matching: Matching | None = None,
        domain_matching: Matching | None = None,
    ) -> None:
        self.max_hops = max(max_level - 1, 0)
        self._matching = matching
        self._domain_matching = domain_matching
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for line in lines:
            by_domain.setdefault(line[2] if len(line) > 2 else "", []).append((line[0], line[1]))
        self._lines = by_domain
        self._graphs: LRU[str, dict[str, tuple[str, ...]]] = LRU(4096)
        # Reach of names that have links, kept up to _CACHED entries (the names come from the
        # policy's lines, and their domains from requests: bounded, and a plain dict is the
        # cheapest lookup on the decision path). Names without links are not kept.
        self._reach: dict[tuple[str, str], dict[str, int]] = {}
        if matching is not None:
            self._pattern_graph = self._stock_graph(by_domain.get("", []), matching)
            self._names = tuple(self._pattern_graph)

    def links(self, domain: str = "") -> list[tuple[str, str]]:
        """The (member, role) lines of ``domain``, in file order."""
        return list(self._lines.get(domain, ()))

    @staticmethod
    def _stock_graph(links: Sequence[tuple[str, str]], matching: Matching) -> dict[str, tuple[str, ...]]:
        manager = RoleManager(10)
        manager.add_matching_func(matching)
        for member, role in links:
            manager.add_link(member, role)
        return {name: tuple(r.name for r in node.roles) for name, node in manager.all_roles.items()}

    def roles_of(self, domain: str) -> dict[str, tuple[str, ...]]:
        """name → its direct roles in ``domain`` (a domain's own lines, and matching domains')."""
        if self._matching is not None:
            return self._pattern_graph
        graph = self._graphs.get(domain)
        if graph is not None:
            return graph
        links = list(self._lines.get(domain, ()))
        if self._domain_matching is not None:
            for other, more in self._lines.items():
                if other != domain and _matches(self._domain_matching, domain, other):
                    links += more
        built: dict[str, list[str]] = {}
        for member, role in links:
            built.setdefault(member, []).append(role)
        graph = {member: tuple(dict.fromkeys(roles)) for member, roles in built.items()}
        self._graphs.put(domain, graph)
        return graph

    def _first_roles(self, name: str, graph: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        known = graph.get(name)
        if known is not None or self._matching is None:
            return known or ()
        # A name the lines do not hold: Casbin's new node copies the roles of every pattern
        # that matches it.
        found: dict[str, None] = {}
        for pattern in self._names:
            if _matches(self._matching, name, pattern):
                found.update(dict.fromkeys(graph[pattern]))
        return tuple(found)

    def reach(self, name: str, domain: str = "") -> dict[str, int]:
        """Every role ``name`` holds in ``domain``, with the links it takes (``name`` itself: 0)."""
        key = (name, domain)
        known = self._reach.get(key)
        if known is not None:
            return known
        graph = self.roles_of(domain)
        if self._matching is None and name not in graph:
            return {name: 0}  # no lines for it: it holds nothing (a user known only by token)
        known = {name: 0}
        frontier = [name]
        for hops in range(1, self.max_hops + 1):
            reached: list[str] = []
            for current in frontier:
                roles = self._first_roles(current, graph) if hops == 1 else graph.get(current, ())
                for role in roles:
                    if role not in known:
                        known[role] = hops
                        reached.append(role)
            if not reached:
                break
            frontier = reached
        if len(self._reach) < _CACHED:
            self._reach[key] = known
        return known

    def has_link(self, name1: str, name2: str, domain: str = "") -> bool:
        reached = self.reach(name1, domain)
        if name2 in reached:
            return True
        if self._matching is None or name2 in self._pattern_graph:
            return False
        # A role the lines do not hold: Casbin's new node for it becomes a role of every member
        # of a pattern it matches: reached as soon as that pattern is.
        return any(hops >= 1 and _matches(self._matching, name2, role)
                   for role, hops in reached.items())

    def within(self, names: Iterable[str], domain: str, spent: int = 0) -> set[str]:
        """What ``names`` reach in ``domain`` when ``spent`` links were taken to get to them."""
        found: set[str] = set()
        for name in names:
            found.update(role for role, hops in self.reach(name, domain).items()
                         if hops + spent <= self.max_hops)
        return found

    @property
    def role_names(self) -> set[str]:
        return {role for links in self._lines.values() for _, role in links}
