"""Tracing end to end: a gatekeeper process exports its spans by OTLP/HTTP to a real receiver
process on loopback, and the app behind it sees the recorded upstream span as its parent."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream
from tests.support.fakes import mint
from tests.support.poll import eventually
from tests.support.servers import free_port, run_process

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SERVER, CLIENT = 2, 3  # OTLP SpanKind numbers


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    out = tmp_path_factory.mktemp("otlp") / "spans.jsonl"
    out.touch()
    port = free_port()
    with run_process([sys.executable, "-m", "tests.support.otlp_receiver", str(port), str(out)],
                     ready_port=port):
        yield f"http://127.0.0.1:{port}/v1/traces", out


def spans(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_spans_of_a_request_reach_the_receiver_in_the_callers_trace(
    gatekeeper_factory: Callable[..., Gatekeeper], receiver: tuple[str, Path], issuer: DevIssuer,
    upstream: Upstream,
) -> None:
    endpoint, out = receiver
    gk = gatekeeper_factory(tracing={"otlp_endpoint": endpoint, "service_name": "gk-e2e"},
                            env={"OTEL_BSP_SCHEDULE_DELAY": "50"})  # export within 50 ms
    upstream.recorder.clear()
    response = httpx.get(f"{gk.url}/echo", headers={
        "authorization": f"Bearer {mint(issuer)}", "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"})
    assert response.status_code == 200

    def ours() -> list[dict[str, Any]]:
        return [s for s in spans(out) if s["trace_id"] == TRACE]

    assert eventually(lambda: {"GET", "authenticate", "authorize", "upstream"}
                      <= {s["name"] for s in ours()}), ours()
    found = {s["name"]: s for s in ours()}
    server = found["GET"]
    assert (server["kind"], server["parent_span_id"], server["service"]) == (SERVER, CALLER_SPAN, "gk-e2e")
    assert found["upstream"]["kind"] == CLIENT
    for child in ("authenticate", "authorize", "upstream"):
        assert found[child]["parent_span_id"] == server["span_id"], child
    sent = upstream.recorder.last.header_values("traceparent")
    assert sent == [f"00-{TRACE}-{found['upstream']['span_id']}-01"]
    # The provider calls at start-up were exported too, in traces of their own.
    assert eventually(lambda: any(s["name"] == "GET /.well-known/openid-configuration"
                                  for s in spans(out)))


def test_an_endpoint_without_the_sdk_is_refused_at_start(tmp_path: Path) -> None:
    """Where the SDK is not installed, the config is refused naming the key (simulated by
    hiding the package from the child's import path)."""
    hide = tmp_path / "hide"
    (hide / "opentelemetry").mkdir(parents=True)
    (hide / "opentelemetry" / "__init__.py").write_text("raise ImportError('hidden')\n")
    config = tmp_path / "gatekeeper.yaml"
    config.write_text("upstream: http://127.0.0.1:9\n"
                      "tracing:\n  otlp_endpoint: http://127.0.0.1:4318/v1/traces\n")
    done = subprocess.run([sys.executable, "-m", "gatekeeper", "check", "--config", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(hide), "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "tracing.otlp_endpoint" in done.stderr and "gatekeeper[tracing]" in done.stderr
