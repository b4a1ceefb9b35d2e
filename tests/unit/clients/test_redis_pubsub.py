"""clients/redis_pubsub.py against a real redis-server: what a listener is told, and when.

The revocation list and the session cache both build on it (tests/unit/test_revocation.py,
tests/unit/sessions/test_redis.py); here the helper alone: messages in order with a sign of life,
a silent (frozen) Redis noticed and subscribed to again, a listener's refusal a loss and a retry,
never a crash (an ACL's NOPERM: tests/unit/sessions/test_redis.py).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator

import pytest

from gatekeeper.clients.redis import RedisClient, connect
from gatekeeper.clients.redis_pubsub import Subscription
from gatekeeper.settings import RedisSettings
from tests.support.fakes import run
from tests.support.redis import RedisServer, run_redis


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with run_redis() as running:
        yield running


class Recorder:
    """A Listener that writes down what it is told."""

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[str] = []
        self.messages: list[object] = []
        self.refuse = refuse

    async def on_subscribed(self) -> None:
        self.events.append("subscribed")
        if self.refuse:
            raise ConnectionError("the listener refuses this subscription")

    def on_message(self, data: object) -> None:
        self.messages.append(data)

    def on_heard(self) -> None:
        if self.events[-1:] != ["heard"]:
            self.events.append("heard")

    def on_lost(self, error: BaseException | None) -> None:
        self.events.append("lost" if error is None else f"lost: {type(error).__name__}")


def client_for(server: RedisServer) -> RedisClient:
    return connect(RedisSettings(url=server.url, timeout_seconds=0.3))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def test_messages_arrive_in_order_and_a_quiet_subscription_is_pinged(server: RedisServer) -> None:
    channel = f"ch-{secrets.token_hex(4)}"

    async def scenario() -> None:
        client, recorder = client_for(server), Recorder()
        subscription = Subscription(client, channel, recorder, ping_seconds=0.05, dead_seconds=2)
        subscription.start(name="test")
        try:
            await until(lambda: "subscribed" in recorder.events, "never subscribed")
            for n in range(5):
                await client.publish(channel, f"m{n}")
            await until(lambda: len(recorder.messages) == 5, "messages missing")
            assert recorder.messages == [f"m{n}".encode() for n in range(5)]
            heard = len(recorder.events)
            recorder.events.append("quiet")  # no message from here: only PONGs are heard
            await until(lambda: recorder.events[-1] == "heard", "a quiet subscription not pinged")
            assert recorder.events[:heard] == ["subscribed", "heard"]
        finally:
            await subscription.aclose()
            await client.aclose()
        assert recorder.events[-1] == "lost"  # closing: a loss without an error

    run(scenario())


def test_a_frozen_redis_is_a_loss_after_dead_seconds_and_a_new_subscription_after(
        server: RedisServer) -> None:
    channel = f"ch-{secrets.token_hex(4)}"

    async def scenario() -> None:
        client, recorder = client_for(server), Recorder()
        subscription = Subscription(client, channel, recorder, ping_seconds=0.1, dead_seconds=0.5)
        subscription.start(name="test")
        try:
            await until(lambda: "subscribed" in recorder.events, "never subscribed")
            server.freeze()
            try:
                await until(lambda: any(e.startswith("lost: ") for e in recorder.events),
                            "a silent Redis not noticed")
            finally:
                server.thaw()
            await until(lambda: recorder.events.count("subscribed") == 2, "not subscribed again")
            await client.publish(channel, "after")
            await until(lambda: recorder.messages == [b"after"], "nothing heard after the gap")
        finally:
            await subscription.aclose()
            await client.aclose()

    run(scenario())


def test_a_listener_that_refuses_a_subscription_gets_a_loss_and_a_retry(server: RedisServer) -> None:
    async def scenario() -> None:
        client, recorder = client_for(server), Recorder(refuse=True)
        subscription = Subscription(client, f"ch-{secrets.token_hex(4)}", recorder,
                                    ping_seconds=0.1, dead_seconds=1)
        task = subscription.start(name="test")
        try:
            await until(lambda: recorder.events.count("subscribed") >= 2, "no retry")
            assert recorder.events[:2] == ["subscribed", "lost: ConnectionError"]
            assert not task.done()  # never a crash
        finally:
            await subscription.aclose()
            await client.aclose()

    run(scenario())

