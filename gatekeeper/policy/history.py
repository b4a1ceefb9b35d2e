"""The policy's reload history: what was loaded or refused, when, and why; bounded.

The policy page (ops/policy_page.py) shows it; the log has the same events as lines. Only the
last ``MAX_EVENTS`` are kept, and each refusal keeps at most ``MAX_PROBLEMS`` of its problems:
a file edited in a loop cannot make the process grow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

MAX_EVENTS = 32
MAX_PROBLEMS = 20

Result = Literal["loaded", "refused", "restored"]


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    at: float  # time.time()
    reason: str  # "startup", "SIGHUP", "file change"
    result: Result  # loaded (swapped in), refused (old kept), restored (files hold the active again)
    digest: str | None  # the policy serving after the event
    rules: int | None  # its rule count
    problems: tuple[str, ...] = ()  # a refusal's 'file:line: reason' lines (at most MAX_PROBLEMS)
    more_problems: int = 0  # how many more the refusal had


class ReloadHistory:
    """Newest last; iterate with ``newest_first()``."""

    def __init__(self, limit: int = MAX_EVENTS) -> None:
        self._events: deque[ReloadEvent] = deque(maxlen=limit)

    def record(self, at: float, reason: str, result: Result, digest: str | None,
               rules: int | None, problems: Sequence[str] = ()) -> None:
        kept = tuple(problems[:MAX_PROBLEMS])
        self._events.append(ReloadEvent(at, reason, result, digest, rules, kept,
                                        max(len(problems) - len(kept), 0)))

    def newest_first(self) -> Iterator[ReloadEvent]:
        return reversed(self._events)

    def __len__(self) -> int:
        return len(self._events)
