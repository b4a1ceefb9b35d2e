"""docs/tracing.md stays true: its config loads, and every span its table names is one a
request through gatekeeper records (in process, the SDK's in-memory exporter)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.otel import OtelTracing
from gatekeeper.settings import Settings
from gatekeeper.settings.tracing import TracingSettings
from tests.conftest import Upstream, gatekeeper_config
from tests.support.asgi import InProcess, serve
from tests.support.docs import load_block, yaml_blocks
from tests.support.fakes import bearer, mint
from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "tracing.md").read_text(encoding="utf-8")


def test_the_example_config_loads_with_its_tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = yaml_blocks(DOC)
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.tracing.otlp_endpoint == "http://otel-collector.observability:4318/v1/traces"
    assert (settings.tracing.service_name, settings.tracing.sample_ratio) == ("orders-gatekeeper", 0.1)


def test_the_spans_the_table_names_are_recorded(issuer: DevIssuer, upstream: Upstream) -> None:
    table = DOC.split("### The spans", 1)[1].split("\n\n", 2)[1]
    named = re.findall(r"^\| `([a-z]+)` \|", table, flags=re.M)
    assert named == ["authenticate", "authorize", "upstream"]
    exporter = InMemorySpanExporter()
    tracing = OtelTracing(TracingSettings(), SimpleSpanProcessor(exporter))
    settings = Settings.model_validate(gatekeeper_config(issuer, upstream.url))
    token = mint(issuer)

    async def scenario(gk: InProcess) -> int:
        return (await gk.http("POST", "/echo", headers=[bearer(token)])).status

    assert serve(settings, scenario, tracing=tracing) == 200
    recorded = {span.name for span in exporter.get_finished_spans()}
    assert {*named, "POST"} <= recorded
    assert any(name.startswith("GET /") for name in recorded)  # the identity provider's
