"""What the policy page samples from the traffic: the latest denies and the routes seen. Bounded.

The gate calls ``Traffic`` from its access-log step (edge/gate.py ``_record``), on every
request, so the cost there stays near nothing:

- a deny (401 or 403: the caller or the policy said no) appends the access-log entry the gate
  has already built — no copy — to a ring of ``MAX_DENIES``;
- a route (method, canonical path) already in the sample costs two dictionary look-ups and
  allocates nothing; a new one is added, the oldest going once ``MAX_ROUTES`` are held. Every
  key is bounded (the request line is), so is the sample.

Both live in one worker process: with ``workers > 1`` each worker has its own, and the admin
port (shared with SO_REUSEPORT) shows whichever worker the connection reached.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

MAX_DENIES = 100
MAX_ROUTES = 256
# A method is any RFC 9110 token: a client could send a new one each time. The standard ones
# always have room; the others share MAX_OTHER_METHODS, so made-up methods cannot crowd GET out.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
                              "CONNECT", "TRACE"})
MAX_OTHER_METHODS = 8


class RouteSample:
    """The latest ``limit`` distinct (method, path) pairs, in the order they were first seen."""

    def __init__(self, limit: int = MAX_ROUTES) -> None:
        self._limit = limit
        self._by_method: dict[str, dict[str, None]] = {}
        self._order: deque[tuple[str, str]] = deque()
        self._others = 0  # methods held outside STANDARD_METHODS

    def see(self, method: str, path: str) -> None:
        paths = self._by_method.get(method)
        if paths is None:
            standard = method in STANDARD_METHODS
            if not standard and self._others >= MAX_OTHER_METHODS:
                return
            paths = self._by_method[method] = {}
            self._others += not standard
        elif path in paths:
            return  # the common case: a route seen before, nothing allocated
        if len(self._order) >= self._limit:
            self._forget_oldest()
        paths[path] = None
        self._order.append((method, path))

    def _forget_oldest(self) -> None:
        method, path = self._order.popleft()
        paths = self._by_method[method]
        del paths[path]
        if not paths:  # its last route gone: the method gives its room back
            del self._by_method[method]
            self._others -= method not in STANDARD_METHODS

    def newest_first(self) -> list[tuple[str, str]]:
        return list(reversed(self._order))

    def __len__(self) -> int:
        return len(self._order)


class RecentDenies:
    """The access-log entries of the latest ``limit`` denied requests, newest last."""

    def __init__(self, limit: int = MAX_DENIES) -> None:
        self._entries: deque[Mapping[str, Any]] = deque(maxlen=limit)

    def add(self, entry: dict[str, Any]) -> None:
        if "time" not in entry:  # the access log is off: it did not stamp the entry
            now = time.time()
            entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        self._entries.append(entry)

    def newest_first(self) -> Iterator[Mapping[str, Any]]:
        newest: Iterator[Mapping[str, Any]] = reversed(self._entries)
        return newest

    def __len__(self) -> int:
        return len(self._entries)


class Traffic:
    """The gate's recorder (edge/gate.py ``TrafficRecorder``): both samples in one object."""

    def __init__(self, *, max_denies: int = MAX_DENIES, max_routes: int = MAX_ROUTES) -> None:
        self.denies = RecentDenies(max_denies)
        self.routes = RouteSample(max_routes)

    def route(self, method: str, path: str) -> None:
        self.routes.see(method, path)

    def denied(self, entry: dict[str, Any]) -> None:
        self.denies.add(entry)
