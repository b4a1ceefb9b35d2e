"""Tracing, in process: the app always receives gatekeeper's own traceparent (the caller's
continued when valid, never passed on as sent), the access log carries the trace id, and with
the OpenTelemetry SDK the request's spans — authenticate, authorize, the hop to the app — are
recorded under one trace whose upstream span is the parent the app sees."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.otel import OtelTracing
from gatekeeper.settings.tracing import TracingSettings
from tests.conftest import Upstream
from tests.support.asgi import InProcess, request, serve
from tests.support.fakes import bearer, mint
from tests.support.spellings import spellings
from tests.support.upstream import RecordedRequest
from tests.unit.app.conftest import MakeSettings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE}-{CALLER_SPAN}-01"
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")


def traceparent_at_app(record: RecordedRequest) -> tuple[str, str, str]:
    values = record.header_values("traceparent")
    assert len(values) == 1, record.headers
    match = _TRACEPARENT.fullmatch(values[0])
    assert match is not None, values
    return match[1], match[2], match[3]


def access_lines(captured: str) -> list[dict[str, object]]:
    return [line for line in map(json.loads, captured.splitlines()) if "decision" in line]


def test_the_callers_trace_is_continued_with_gatekeepers_span_as_the_parent(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer = request(make_settings(), "GET", "/echo", headers=[
        bearer(mint(issuer)), (b"traceparent", INCOMING.encode()), (b"tracestate", b"congo=t61")])
    assert answer.status == 200
    seen = upstream.recorder.last
    trace_id, parent, flags = traceparent_at_app(seen)
    assert (trace_id, flags) == (TRACE, "01") and parent != CALLER_SPAN
    assert seen.header_values("tracestate") == ["congo=t61"]
    assert [line["trace_id"] for line in access_lines(capsys.readouterr().out)] == [TRACE]


def test_without_a_traceparent_a_trace_is_started_and_logged(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request(make_settings(), "GET", "/echo", headers=[bearer(mint(issuer))])
    trace_id, _parent, flags = traceparent_at_app(upstream.recorder.last)
    assert flags == "00"  # nothing records it: the app's tracer samples as it likes
    assert [line["trace_id"] for line in access_lines(capsys.readouterr().out)] == [trace_id]


def test_a_refused_request_is_logged_with_its_trace(
    make_settings: MakeSettings, upstream: Upstream, capsys: pytest.CaptureFixture[str],
) -> None:
    answer = request(make_settings(), "GET", "/echo", headers=[(b"traceparent", INCOMING.encode())])
    assert answer.status == 401 and len(upstream.recorder) == 0
    assert [line["trace_id"] for line in access_lines(capsys.readouterr().out)] == [TRACE]


@pytest.mark.parametrize("name", [
    name for name in [*spellings("Traceparent"), *spellings("Tracestate")]
    if name.lower() != "traceparent"])  # that one is read (and continued): the tests above
def test_no_spelling_of_the_trace_headers_reaches_the_app_as_sent(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, name: str,
) -> None:
    """An app's tracer (or a WSGI server's HTTP_TRACEPARENT) reads only gatekeeper's copy."""
    planted = f"00-{'a' * 32}-{'b' * 16}-01"
    request(make_settings(), "GET", "/echo", headers=[bearer(mint(issuer)), (name, planted)])
    seen = upstream.recorder.last
    folded = {n.decode().lower().replace("_", "-").replace(".", "-") for n, _ in seen.headers}
    assert "a" * 32 not in str(seen.headers)
    assert {"traceparent"} <= folded
    assert traceparent_at_app(seen)[0] != "a" * 32


@pytest.mark.parametrize("value", [
    pytest.param(f"01-{TRACE}-{CALLER_SPAN}-01-\xff\xfe".encode("latin-1"),
                 id="later version, non-ASCII field"),
    pytest.param(b"\xff" * 55, id="55 non-ASCII bytes"),
    pytest.param(INCOMING.encode() + "é".encode(), id="UTF-8 after version 00"),
])
def test_a_traceparent_of_any_bytes_is_answered_and_starts_a_new_trace(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, value: bytes,
) -> None:
    """Header values are bytes: one the trace reader cannot decode is a malformed trace, not a 500."""
    answer = request(make_settings(), "GET", "/echo",
                     headers=[bearer(mint(issuer)), (b"traceparent", value)])
    assert answer.status == 200
    assert traceparent_at_app(upstream.recorder.last)[0] != TRACE


FOREIGN = ["b3", "X-B3-TraceId", "X-B3-SpanId", "X-B3-Sampled", "uber-trace-id", "uberctx-tenant",
           "X-Datadog-Trace-Id", "X-Datadog-Parent-Id", "X-Amzn-Trace-Id", "X-Cloud-Trace-Context",
           "baggage", "sw8", "ot-baggage-user", "grpc-trace-bin"]


@pytest.mark.parametrize("continue_incoming", [False, True])
def test_other_trace_formats_pass_only_while_callers_may_choose_the_trace(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, continue_incoming: bool,
) -> None:
    """With continue_incoming false, no format the app's tracer might read instead of
    traceparent (B3, Jaeger, Datadog, X-Ray…) reaches it, in any spelling."""
    planted = [(spelled, f"planted-{i}-{j}") for i, name in enumerate(FOREIGN)
               for j, spelled in enumerate(spellings(name))]
    settings = make_settings(tracing={"continue_incoming": continue_incoming})
    request(settings, "GET", "/echo", headers=[bearer(mint(issuer)), *planted])
    seen = str(upstream.recorder.last.headers)
    reached = [value for _, value in planted if value in seen]
    assert reached == ([] if not continue_incoming else [value for _, value in planted])


def test_continue_incoming_false_starts_every_trace_here(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings(tracing={"continue_incoming": False})
    request(settings, "GET", "/echo", headers=[bearer(mint(issuer)), (b"traceparent", INCOMING.encode())])
    assert traceparent_at_app(upstream.recorder.last)[0] != TRACE


# -- recorded by the OpenTelemetry SDK --------------------------------------------------------


def recorded(settings: TracingSettings | None = None) -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return OtelTracing(settings or TracingSettings(), SimpleSpanProcessor(exporter)), exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_proxied_request_records_its_stages_under_one_trace(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracing, exporter = recorded()
    token = mint(issuer)

    async def scenario(gk: InProcess) -> int:
        answer = await gk.http("GET", "/echo", headers=[
            bearer(token), (b"traceparent", INCOMING.encode())])
        return answer.status

    assert serve(make_settings(), scenario, tracing=tracing) == 200
    spans = by_name(exporter.get_finished_spans())
    server, upstream_span = spans["GET"], spans["upstream"]
    stages = [spans[name] for name in ("GET", "authenticate", "authorize", "upstream")]
    assert {format(s.context.trace_id, "032x") for s in stages if s.context} == {TRACE}
    assert server.kind == SpanKind.SERVER and upstream_span.kind == SpanKind.CLIENT
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.context is not None and upstream_span.context is not None
    for child in ("authenticate", "authorize", "upstream"):
        parent = spans[child].parent
        assert parent is not None and parent.span_id == server.context.span_id, child
    assert server.attributes is not None and server.attributes["http.response.status_code"] == 200
    # The app's parent is the recorded upstream span; the log names the same trace.
    trace_id, parent_id, flags = traceparent_at_app(upstream.recorder.last)
    assert (trace_id, parent_id, flags) == (TRACE, format(upstream_span.context.span_id, "016x"), "01")
    assert [line["trace_id"] for line in access_lines(capsys.readouterr().out)] == [TRACE]


def test_a_new_trace_takes_the_recorded_ids(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tracing, exporter = recorded()
    token = mint(issuer)

    async def scenario(gk: InProcess) -> int:
        return (await gk.http("GET", "/echo", headers=[bearer(token)])).status

    assert serve(make_settings(), scenario, tracing=tracing) == 200
    spans = by_name(exporter.get_finished_spans())
    assert spans["GET"].parent is None and spans["GET"].context is not None
    recorded_trace = format(spans["GET"].context.trace_id, "032x")
    assert traceparent_at_app(upstream.recorder.last)[0] == recorded_trace
    assert [line["trace_id"] for line in access_lines(capsys.readouterr().out)] == [recorded_trace]


def test_a_refused_request_is_recorded_without_an_upstream_hop(
    make_settings: MakeSettings, upstream: Upstream,
) -> None:
    tracing, exporter = recorded()

    async def scenario(gk: InProcess) -> int:
        return (await gk.http("GET", "/echo")).status

    assert serve(make_settings(), scenario, tracing=tracing) == 401
    spans = by_name(exporter.get_finished_spans())
    assert "upstream" not in spans and len(upstream.recorder) == 0
    attributes = spans["GET"].attributes or {}
    assert (attributes["http.response.status_code"], attributes["gk.decision"]) == (
        401, "unauthenticated")


def test_calls_to_the_identity_provider_are_spans(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    """Discovery and the JWKS fetch (at start-up, and on an unknown key) are CLIENT spans
    naming the method and path, never the query."""
    tracing, exporter = recorded()
    token = mint(issuer)

    async def scenario(gk: InProcess) -> int:
        return (await gk.http("GET", "/echo", headers=[bearer(token)])).status

    assert serve(make_settings(), scenario, tracing=tracing) == 200
    names = {s.name for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT}
    assert {"GET /.well-known/openid-configuration", f"GET {urlsplit(issuer.jwks_uri).path}"} <= names


def test_a_sampled_out_trace_is_not_recorded_but_still_propagated(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    tracing, exporter = recorded(TracingSettings(sample_ratio=0))
    token = mint(issuer)

    async def scenario(gk: InProcess) -> int:
        return (await gk.http("GET", "/echo", headers=[bearer(token)])).status

    assert serve(make_settings(), scenario, tracing=tracing) == 200
    assert [s for s in exporter.get_finished_spans() if s.name == "GET"] == []
    assert traceparent_at_app(upstream.recorder.last)[2] == "00"
