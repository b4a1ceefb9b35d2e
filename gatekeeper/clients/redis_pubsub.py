"""One Redis pub/sub channel kept subscribed for the life of a process: the revocation list's
updates and the session cache's invalidations both ride on it.

    subscription = Subscription(client, "gatekeeper:sessions", listener, ping_seconds=0.25,
                                dead_seconds=3.0)
    task = subscription.start(name="session-invalidations")   # a task, until aclose()
    await subscription.aclose()

One connection per channel and process. A connection that fails, or stays silent for
``dead_seconds`` although it was PINGed, is closed and opened again after a backoff (0.1 s
doubling to 2 s, jittered, so replicas do not reconnect in lockstep). The listener hears every
step, so it can tell "nothing published since this moment was missed" (``on_subscribed``, then
``on_heard``) from "messages may have been missed" (``on_lost``):

- messages on one connection arrive in the order Redis sent them, so a PONG (or any message)
  proves that everything published before the PING has been handed to the listener;
- redis-py's PubSub can reconnect and resubscribe by itself; a second SUBSCRIBE confirmation on a
  running subscription means it did, and is treated as a loss (the gap may have hidden messages).

Every Redis error, an ACL's NOPERM included, is a loss followed by a retry, never a crash: what a
listener degrades to meanwhile is its own choice (the revocation list resyncs; the session cache
reads through).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from typing import Any, Protocol

from gatekeeper.clients.redis import REDIS_ERRORS, RedisClient

BACKOFF_FIRST, BACKOFF_MAX = 0.1, 2.0  # between subscribe attempts while Redis is away
CONFIRM_SECONDS = 5.0  # SUBSCRIBE must be confirmed within this
_READ_SECONDS = 1.0  # the loop wakes at least this often to watch for silence


class Listener(Protocol):
    """What a subscription tells its owner. Called on the subscription's own task."""

    async def on_subscribed(self) -> None:
        """SUBSCRIBE is confirmed: from now on nothing published is missed, until ``on_lost``.
        Raising one of ``REDIS_ERRORS`` ends this attempt (a loss, then a retry)."""

    def on_message(self, data: object) -> None:
        """A message published on the channel (``bytes``, as the client does not decode)."""

    def on_heard(self) -> None:
        """A sign of life (a message or a PONG): every message published before it was received."""

    def on_lost(self, error: BaseException | None) -> None:
        """The subscription ended (``None``: the process is closing). Messages may be missed
        from now until the next ``on_subscribed``."""


class Subscription:
    """``channel`` on ``client``, subscribed again whenever the connection fails or goes quiet."""

    def __init__(self, client: RedisClient, channel: str, listener: Listener, *,
                 ping_seconds: float, dead_seconds: float) -> None:
        self._client = client
        self.channel = channel
        self._listener = listener
        self._ping_seconds = ping_seconds
        self._dead_seconds = dead_seconds
        self._read_seconds = min(_READ_SECONDS, ping_seconds)
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self, *, name: str) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name=name)
        return self._task

    async def aclose(self) -> None:
        self._closing = True
        if self._task is not None:
            await stop_tasks([self._task])
            self._task = None

    async def _run(self) -> None:
        """Subscribe, listen, and on any failure start again, until closed."""
        backoff = BACKOFF_FIRST
        while not self._closing:
            pubsub: Any = self._client.pubsub()  # redis-py's PubSub is untyped
            error: BaseException | None = None
            try:
                await pubsub.subscribe(self.channel)
                await _confirmed(pubsub)
                backoff = BACKOFF_FIRST
                await self._listener.on_subscribed()
                await self._listen(pubsub)
            except REDIS_ERRORS as exc:
                error = exc
            finally:
                self._listener.on_lost(error)
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _listen(self, pubsub: Any) -> None:
        """Hand messages over until the connection fails or goes silent (a PING gets no PONG)."""
        heard, pinged = time.monotonic(), False
        while not self._closing:
            message = await pubsub.get_message(timeout=self._read_seconds)
            now = time.monotonic()
            if message is None:
                if now - heard > self._dead_seconds:
                    raise TimeoutError(f"no answer on the subscription to {self.channel}")
                if now - heard >= self._ping_seconds and not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            kind = message.get("type")
            if kind == "subscribe":  # redis-py subscribed again on a new connection: a gap
                raise ConnectionError(f"the subscription to {self.channel} was renewed underneath")
            heard, pinged = now, False
            if kind == "message":
                self._listener.on_message(message.get("data"))
            self._listener.on_heard()


async def _confirmed(pubsub: Any) -> None:
    """Wait for SUBSCRIBE's confirmation: only then can nothing published be missed."""
    deadline = time.monotonic() + CONFIRM_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        message = await pubsub.get_message(timeout=remaining)
        if message is not None and message.get("type") == "subscribe":
            return
    raise TimeoutError("SUBSCRIBE was not confirmed")


async def stop_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` until they have ended. redis-py's timed reads can swallow a cancellation
    (asyncio.timeout turns it into a timeout it then reports as "no message"): cancel again."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
