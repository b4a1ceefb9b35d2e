"""Small fakes every test file may share: a clock a test moves by hand, ``run()`` for a
coroutine from a plain test, and bearer tokens minted by the dev issuer with the tests' audience.

Real components everywhere else: these stand in only for time and for the event-loop plumbing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from gatekeeper.dev.issuer import DevIssuer

T = TypeVar("T")

AUDIENCE = "api"  # what tests/conftest.py's gatekeepers accept (auth.issuers[].audience)
T0 = 1_700_000_000.0  # a fixed epoch second for clocks that must not depend on today


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine to its end on a fresh event loop (plain pytest has no async tests)."""
    return asyncio.run(coro)


class FakeClock:
    """A clock that stands still until the test moves it: pass it where the code takes a
    ``clock: Callable[[], float]``. ``now`` may be set directly or moved with ``advance``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def mint(issuer: DevIssuer, subject: str = "alice", *, ttl_seconds: int = 3600,
         claims: Mapping[str, Any] | None = None, **kwargs: Any) -> str:
    """A bearer token for ``subject`` from ``issuer``, for the tests' audience, valid an hour
    unless told otherwise; other keywords go to ``DevIssuer.mint`` (alg, kid, omit, ...)."""
    kwargs.setdefault("audience", AUDIENCE)
    return issuer.mint(subject, ttl_seconds=ttl_seconds, claims=claims, **kwargs)


def bearer(token: str) -> tuple[bytes, bytes]:
    """The Authorization header carrying ``token``, as a raw ASGI header."""
    return (b"authorization", b"Bearer " + token.encode("ascii"))
