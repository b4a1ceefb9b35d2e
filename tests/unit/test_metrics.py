"""Metric label values come from bounded sets, whatever the callers pass; the per-request
instruments are batched, and a scrape still sees every value recorded before it
(gatekeeper/metrics.py)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from gatekeeper.metrics import MAX_LABEL_VALUES, OTHER, Bounded, HistogramBatch, Metrics
from gatekeeper.ops.admin import Check, create_admin_app
from tests.support.fakes import run


def test_a_label_takes_at_most_its_bound_of_values_then_other() -> None:
    registry = CollectorRegistry()
    counter = Bounded(Counter("t", "t", ["reason", "status"], registry=registry), max_values=3)
    for i in range(1000):
        counter.labels(reason=f"r{i}", status="200").inc()
    samples = {(s.labels["reason"], s.labels["status"]): s.value
               for s in next(iter(registry.collect())).samples if s.name == "t_total"}
    assert samples == {("r0", "200"): 1, ("r1", "200"): 1, ("r2", "200"): 1, (OTHER, "200"): 997}


def test_every_labelled_metric_of_gatekeeper_is_bounded() -> None:
    metrics = Metrics()
    labelled = [name for name, value in vars(metrics).items()
                if getattr(value, "_labelnames", None) or getattr(getattr(value, "metric", None),
                                                               "_labelnames", None)]
    unbounded = [name for name in labelled if not isinstance(getattr(metrics, name), Bounded)
                 and not name.startswith("token_cache")]  # its two children are fixed at start
    assert labelled and unbounded == []


# -- batched per-request instruments ------------------------------------------------------------

def _exposed(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in registry.collect() for s in family.samples
            if not s.name.endswith("_created")]


@pytest.mark.parametrize("values", [
    [0.0002, 0.0005, 0.0007, 0.003, 0.003, 0.8],
    [0.0, -0.001, 10.0, 10.5, 1e9],  # the first bucket, +Inf
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],  # on bounds
    [],
], ids=["typical latencies", "below the first and above the last bound", "exactly on each bound",
        "nothing observed"])
def test_a_flushed_batch_exposes_exactly_what_observing_one_by_one_does(values: list[float]) -> None:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    buckets = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
    one_by_one = Histogram("h", "h", buckets=buckets, registry=direct)
    batch = HistogramBatch(Histogram("h", "h", buckets=buckets, registry=batched), lambda: None)
    for value in values:
        one_by_one.observe(value)
        batch.observe(value)
    batch.flush()
    batch.flush()  # a second flush adds nothing
    assert _exposed(batched) == _exposed(direct)


def _requests(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value(
        "gatekeeper_requests_total", {"outcome": "allow", "reason": "authenticated", "status": "200"})


def _count(metrics: Metrics, histogram: str) -> float | None:
    return metrics.registry.get_sample_value(histogram + "_count")


def test_per_request_values_wait_in_the_batch_until_a_flush_then_all_arrive() -> None:
    async def record() -> tuple[list[float | None], list[float | None]]:
        metrics = Metrics()
        for _ in range(5):
            metrics.count_request("allow", "authenticated", 200)
            metrics.request_seconds.observe(0.002)
            metrics.upstream_seconds.observe(0.001)
            metrics.token_cache_hits.inc()
        hit = {"result": "hit"}
        waiting = [_requests(metrics), _count(metrics, "gatekeeper_request_duration_seconds"),
                   _count(metrics, "gatekeeper_upstream_duration_seconds"),
                   metrics.registry.get_sample_value("gatekeeper_token_cache_total", hit)]
        metrics.flush()
        return waiting, [_requests(metrics), _count(metrics, "gatekeeper_request_duration_seconds"),
                         _count(metrics, "gatekeeper_upstream_duration_seconds"),
                         metrics.registry.get_sample_value("gatekeeper_token_cache_total", hit)]

    waiting, flushed = run(record())
    assert waiting == [None, 0, 0, 0]  # not one lock or shared-file write per request
    assert flushed == [5, 5, 5, 5]


def test_the_timer_flushes_a_batch_without_a_scrape() -> None:
    async def record() -> float | None:
        metrics = Metrics()
        metrics.count_request("allow", "authenticated", 200)
        for _ in range(200):  # bounded: 2 s at most
            if _requests(metrics) is not None:
                break
            await asyncio.sleep(0.01)
        return _requests(metrics)

    assert run(record()) == 1


def test_outside_an_event_loop_a_value_is_counted_at_once() -> None:
    metrics = Metrics()
    metrics.count_request("allow", "authenticated", 200)
    metrics.request_seconds.observe(0.002)
    assert _requests(metrics) == 1
    assert _count(metrics, "gatekeeper_request_duration_seconds") == 1


def test_a_scrape_sees_every_request_recorded_before_it() -> None:
    async def scrape() -> str:
        metrics = Metrics()
        admin = create_admin_app(metrics, {}, _Upstream())  # type: ignore[arg-type]
        for status in (200, 200, 200, 401):
            metrics.count_request("allow" if status == 200 else "unauthenticated",
                                  "authenticated" if status == 200 else "no_credentials", status)
            metrics.request_seconds.observe(0.003)
        transport = httpx.ASGITransport(app=admin)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return (await client.get("/metrics")).text

    text = run(scrape())
    assert 'gatekeeper_requests_total{outcome="allow",reason="authenticated",status="200"} 3.0' in text
    assert ('gatekeeper_requests_total{outcome="unauthenticated",reason="no_credentials",'
            'status="401"} 1.0') in text
    assert "gatekeeper_request_duration_seconds_count 4.0" in text


def test_request_labels_stay_bounded_when_counted_in_batches() -> None:
    metrics = Metrics()
    for i in range(MAX_LABEL_VALUES + 50):
        metrics.count_request("error", f"code{i}", 400)
    reasons = {s.labels["reason"] for family in metrics.registry.collect()
               if family.name == "gatekeeper_requests" for s in family.samples
               if s.name.endswith("_total")}
    assert len(reasons) == MAX_LABEL_VALUES + 1 and OTHER in reasons


class _Upstream:
    async def check(self) -> Check:
        return Check(True, "up")
