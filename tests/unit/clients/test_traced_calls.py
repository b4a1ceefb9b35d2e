"""The calls gatekeeper makes on its own, as spans when tracing records: each Redis command
(named by the command, never a key or value) on a real redis-server, and each control-plane
HTTP call (named by method and path, never the query)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gatekeeper.clients.redis import connect
from gatekeeper.clients.traced_http import TracedTransport
from gatekeeper.otel import OtelTracing
from gatekeeper.settings import RedisSettings
from gatekeeper.settings.tracing import TracingSettings
from gatekeeper.tracing import NO_TRACING
from tests.support.redis import RedisServer, run_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with run_redis() as server:
        yield server


def recorder() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return OtelTracing(TracingSettings(), SimpleSpanProcessor(exporter)), exporter


def test_each_redis_command_is_a_span_named_by_the_command(redis_server: RedisServer) -> None:
    tracing, exporter = recorder()

    async def scenario() -> object:
        client = connect(RedisSettings(url=redis_server.url), tracing)
        try:
            await client.set("gk:secret-key-name", "secret-value")
            return await client.get("gk:secret-key-name")
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == b"secret-value"
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans if s.name.startswith("redis ")] == ["redis SET", "redis GET"]
    assert all(s.kind == SpanKind.CLIENT for s in spans)
    assert "secret" not in repr([(s.name, s.attributes) for s in spans])


def test_without_tracing_the_redis_client_is_untouched(redis_server: RedisServer) -> None:
    client = connect(RedisSettings(url=redis_server.url), NO_TRACING)
    assert "execute_command" not in vars(client)
    asyncio.run(client.aclose())


def test_a_control_plane_call_is_a_span_without_its_query() -> None:
    tracing, exporter = recorder()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    async def scenario() -> int:
        transport = TracedTransport(httpx.MockTransport(answer), tracing)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post("https://idp.test/token?code=secret-code", data={"a": "b"})
            return response.status_code

    assert asyncio.run(scenario()) == 200
    [span] = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("POST /token", SpanKind.CLIENT)
    assert span.attributes == {"server.address": "idp.test"}
