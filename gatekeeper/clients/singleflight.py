"""One call at a time per key to an issuer's back channel (introspection, token exchange):
requests that need the same answer while it is being fetched share that one call.

``call(key, fetch)`` starts ``fetch()`` as a task unless one for ``key`` is in flight, and
awaits it shielded: a caller that goes away (a client disconnect) does not cancel the call the
others wait for. When the task ends, ``landed(key, task)`` sees it once — to cache an answer, to
count the call — before any waiter resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self, landed: Callable[[K, asyncio.Task[V]], None]) -> None:
        self._landed = landed
        self._inflight: dict[K, asyncio.Task[V]] = {}

    def in_flight(self, key: K) -> bool:
        return key in self._inflight

    async def call(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        self._inflight.pop(key, None)
        self._landed(key, task)


def call_result(task: asyncio.Task[V]) -> V | None:
    """The task's value, or None when it was cancelled or raised (nothing to keep)."""
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
