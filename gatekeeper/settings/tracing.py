"""tracing: W3C trace context for the app, and spans exported by OTLP when configured."""

from __future__ import annotations

from pydantic import Field, field_validator

from gatekeeper.settings.common import FrozenModel, check_http_url


class TracingSettings(FrozenModel):
    continue_incoming: bool = Field(
        default=True,
        description="Continue the trace a valid `traceparent` from the caller names; false: "
        "every request starts a new trace (a public edge that does not want callers to choose "
        "trace ids; the caller's B3, Jaeger, Datadog, X-Ray… headers and `baggage` are then "
        "dropped too). The app always receives gatekeeper's own `traceparent`.")
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces URL (e.g. http://otel-collector:4318/v1/traces): spans "
        "for each request, authenticate, authorize, the upstream hop, calls to the identity "
        "provider and Redis. Needs the `tracing` extra (pip install 'gatekeeper[tracing]').")
    service_name: str = Field(default="gatekeeper", min_length=1, description="service.name of the spans.")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of new traces recorded; a continued trace follows the caller's "
        "sampled flag.")

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)
