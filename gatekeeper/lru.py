"""A bounded least-recently-used map: the verified-token cache, the decision cache, the session
caches and the identity-header cache share it.

Bounded in entries *and* in bytes: an entry count alone lets the memory grow with what a client
controls — a decision cached per path (a path may be as long as the request line allows), a
token's claims, a session's tokens. Each entry is weighed once, when it is put, by
``approx_bytes`` of its key and value; the oldest go until both bounds hold, and an entry that
alone exceeds the byte bound is not kept at all.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_MAX_BYTES = 32 << 20  # per cache
_OBJECT = 64  # what a small object, a dict slot or a list slot costs besides its contents
_DEPTH = 12  # deeper than any claim set worth weighing; below it each object counts _OBJECT


def approx_bytes(value: object, depth: int = 0) -> int:
    """A cheap, generous estimate of the memory ``value`` holds: its strings' and bytes'
    lengths, plus a fixed cost per object (dataclasses by their fields)."""
    if isinstance(value, (str, bytes, bytearray)):
        return _OBJECT + len(value)
    if value is None or isinstance(value, (int, float)) or depth >= _DEPTH:
        return _OBJECT
    if isinstance(value, (tuple, list, set, frozenset)):
        return _OBJECT + sum([approx_bytes(item, depth + 1) for item in value])
    if isinstance(value, dict):
        return _OBJECT + sum([approx_bytes(k, depth + 1) + approx_bytes(v, depth + 1)
                              for k, v in value.items()])
    fields = getattr(type(value), "__dataclass_fields__", None)  # a dataclass: by its fields
    if fields:
        return _OBJECT + sum([approx_bytes(getattr(value, name, None), depth + 1) for name in fields])
    if isinstance(value, Mapping):  # the ABC check is slow: last
        return _OBJECT + sum([approx_bytes(k, depth + 1) + approx_bytes(v, depth + 1)
                              for k, v in value.items()])
    return _OBJECT


class LRU(Generic[K, V]):
    """At most ``size`` entries and about ``max_bytes``; a get refreshes an entry, a put past a
    bound drops the oldest. ``size`` 0 keeps nothing."""

    def __init__(self, size: int, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        if self._size == 0:
            return
        weight = approx_bytes(key) + approx_bytes(value)
        self.discard(key)
        if weight > self._max_bytes:
            return
        self._entries[key] = (value, weight)
        self._bytes += weight
        while len(self._entries) > self._size or self._bytes > self._max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def discard(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The weight of what is kept (``approx_bytes`` of keys and values)."""
        return self._bytes
