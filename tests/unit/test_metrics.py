"""Metric label values come from bounded sets, whatever the callers pass (gatekeeper/metrics.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from gatekeeper.metrics import OTHER, Bounded, Metrics


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
