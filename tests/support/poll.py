"""Waiting for something another process does, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["eventually"]


def eventually(check: Callable[[], object], seconds: float = 10.0) -> bool:
    """Whether ``check()`` turned true within ``seconds`` (asked every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
