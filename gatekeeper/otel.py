"""Tracing recorded with the OpenTelemetry SDK and exported by OTLP/HTTP (``tracing`` extra).

Spans: the request (SERVER), its authenticate and authorize stages, the hop to the app (CLIENT;
the app's ``traceparent`` names it), and calls to the identity provider and Redis (CLIENT),
which find their parent through OpenTelemetry's context: the request's span is made current for
the task serving it (one task per request), and a call made for a request hangs under it. The
provider is this object's own, never OpenTelemetry's global one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gatekeeper.exchange import Exchange
from gatekeeper.settings.tracing import TracingSettings
from gatekeeper.tracecontext import RequestSpan


def exporting(settings: TracingSettings) -> OtelTracing:
    """Spans batched and sent to ``settings.otlp_endpoint``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OtelTracing(settings, BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))


class _Request:
    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self._span = span
        self._token = token

    def end(self, status: int, outcome: str) -> None:
        self._span.set_attribute("http.response.status_code", status)
        self._span.set_attribute("gk.decision", outcome)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR))
        self._span.end()
        otel_context.detach(self._token)  # type: ignore[arg-type]


class OtelTracing:
    def __init__(self, settings: TracingSettings, processor: SpanProcessor) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("gatekeeper")

    def begin(self, exchange: Exchange) -> RequestSpan | None:
        ours = exchange.trace
        parent = otel_context.Context()  # a new trace: the sampler decides
        if ours is not None and ours.continued and ours.parent_id is not None:
            caller = SpanContext(int(ours.trace_id, 16), int(ours.parent_id, 16), is_remote=True,
                                 trace_flags=TraceFlags(int(ours.flags, 16)))
            parent = trace.set_span_in_context(NonRecordingSpan(caller))
        span = self._tracer.start_span(
            f"{exchange.method}", context=parent, kind=SpanKind.SERVER,
            attributes={"http.request.method": exchange.method, "url.path": exchange.path,
                        "gk.request_id": exchange.request_id})
        _adopt(exchange, span)
        return _Request(span, otel_context.attach(trace.set_span_in_context(span)))

    def stage(self, name: str) -> AbstractContextManager[object]:
        return self._tracer.start_as_current_span(name)

    @contextmanager
    def upstream(self, exchange: Exchange) -> Iterator[object]:
        with self._tracer.start_as_current_span("upstream", kind=SpanKind.CLIENT) as span:
            _adopt(exchange, span)
            yield span

    def call(self, name: str, target: str) -> AbstractContextManager[object]:
        return self._tracer.start_as_current_span(name, kind=SpanKind.CLIENT,
                                                  attributes={"server.address": target})

    def shutdown(self) -> None:
        self.provider.shutdown()


def _adopt(exchange: Exchange, span: Any) -> None:
    """The ids the app and the access log see are the recorded span's."""
    trace_context = exchange.trace
    if trace_context is None:
        return
    recorded = span.get_span_context()
    trace_context.trace_id = format(recorded.trace_id, "032x")
    trace_context.span_id = format(recorded.span_id, "016x")
    trace_context.flags = "01" if recorded.trace_flags.sampled else "00"
