"""Prometheus metrics, in a registry owned by one app instance (no module-level collectors).

Every label value comes from a fixed set: a reason or result code written in gatekeeper's code,
a configured provider, issuer or rule. A value a client chooses (a provider's ``error=`` on the
callback) must never become a label, or each request adds a time series for good. Codes built
from outside input are mapped to a fixed set where they are made (oidc/routes.py,
oidc/provider.py); as a second line, each labelled metric here admits at most a bounded number of
distinct values per label and counts the rest under ``other``.

The per-request instruments (the request counter, the token cache's, the two latency
histograms) are updated in batches: a request adds to plain per-process counts, and those go
into prometheus-client's values (a lock each; with several workers, a write to the shared
multiprocess file each) on a short timer and before every scrape (``Metrics.flush``). So
/metrics is exact at scrape time for the worker that answers it; another worker's last
``FLUSH_INTERVAL_SECONDS`` may be missing.
"""

from __future__ import annotations

import asyncio
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.metrics import MetricWrapperBase

OTHER = "other"
MAX_LABEL_VALUES = 256  # distinct values per label of one metric; more are counted as OTHER

M = TypeVar("M", bound=MetricWrapperBase)


class Bounded(Generic[M]):
    """A labelled metric whose every label takes at most ``max_values`` distinct values."""

    def __init__(self, metric: M, max_values: int = MAX_LABEL_VALUES) -> None:
        self.metric = metric
        self._max = max_values
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()  # prometheus-client's children may be made off the loop

    def labels(self, **values: object) -> M:
        with self._lock:
            bounded = {name: self._admit(name, str(value)) for name, value in values.items()}
        return self.metric.labels(**bounded)

    def _admit(self, name: str, value: str) -> str:
        seen = self._seen.setdefault(name, set())
        if value in seen:
            return value
        if len(seen) >= self._max:
            return OTHER
        seen.add(value)
        return value

    def __getattr__(self, name: str) -> Any:  # collect(), clear(), … of the metric itself
        return getattr(self.metric, name)


FLUSH_INTERVAL_SECONDS = 0.02  # the access log's tick: a scrape of another worker lags at most this
_CHILDREN_KEPT = 4096


class HistogramBatch:
    """A label-less Histogram observed in batches: ``observe`` is a list index and an addition,
    ``flush`` adds what was observed since to the histogram.

    prometheus-client keeps a histogram's bucket values non-cumulative (``_buckets``, one per
    upper bound, ``+Inf`` last) next to its ``_sum``: a batch adds its per-bucket counts there.
    tests/unit/test_metrics.py pins that a flushed batch exposes exactly what the same
    observations made one by one would.
    """

    __slots__ = ("_bounds", "_counts", "_due", "_pending", "_sum", "metric")

    def __init__(self, metric: Histogram, due: Callable[[], None]) -> None:
        self.metric = metric  # what the registry exposes (and the docs test reads)
        self._bounds: tuple[float, ...] = tuple(metric._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._pending = False
        self._due = due

    def observe(self, amount: float) -> None:
        # The first bound >= amount: the bucket Histogram.observe's `amount <= bound` picks.
        self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount
        if not self._pending:
            self._pending = True
            self._due()

    def flush(self) -> None:
        if not self._pending:
            return
        counts, total = self._counts, self._sum
        self._counts, self._sum, self._pending = [0] * len(self._bounds), 0.0, False
        buckets = self.metric._buckets
        for index, count in enumerate(counts):
            if count:
                buckets[index].inc(count)
        self.metric._sum.inc(total)


class ChildBatch:
    """One counter child incremented in batches (``inc`` adds to a number; ``flush`` adds that
    to the child): for a child that counts every request, like the token cache's hits."""

    __slots__ = ("_child", "_count", "_due")

    def __init__(self, child: Counter, due: Callable[[], None]) -> None:
        self._child = child
        self._count = 0.0
        self._due = due

    def inc(self, amount: float = 1) -> None:
        first = not self._count
        self._count += amount
        if first:
            self._due()

    def flush(self) -> None:
        if self._count:
            count, self._count = self._count, 0.0
            self._child.inc(count)


class CounterBatch:
    """A bounded labelled Counter incremented in batches: ``inc`` counts per label values in a
    dict; ``flush`` adds them to the counter's children (looked up once each, then kept)."""

    __slots__ = ("_bounded", "_children", "_due", "_names", "_pending")

    def __init__(self, bounded: Bounded[Counter], due: Callable[[], None]) -> None:
        self._bounded = bounded
        self._names: tuple[str, ...] = tuple(bounded.metric._labelnames)
        self._children: dict[tuple[object, ...], Counter] = {}
        self._pending: dict[tuple[object, ...], int] = {}
        self._due = due

    def inc(self, *values: object) -> None:
        """Count one, with ``values`` for the label names in their order."""
        pending = self._pending
        first = not pending
        pending[values] = pending.get(values, 0) + 1
        if first:
            self._due()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        for values, count in pending.items():
            child = self._children.get(values)
            if child is None:
                child = self._bounded.labels(**dict(zip(self._names, values, strict=True)))
                if len(self._children) < _CHILDREN_KEPT:  # the metric bounds its values; so does this
                    self._children[values] = child
            child.inc(count)


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """``multiprocess_dir``: with several workers, /metrics sums every worker's values."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        r = CollectorRegistry(auto_describe=True)
        self.registry = r
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self.requests = Bounded(Counter(
            "gatekeeper_requests", "Requests by outcome and reason code.",
            ["outcome", "reason", "status"], registry=r))
        self.request_seconds = HistogramBatch(Histogram(
            "gatekeeper_request_duration_seconds", "Total time from request to last byte sent.",
            buckets=_LATENCY_BUCKETS, registry=r), self._due)
        self.upstream_seconds = HistogramBatch(Histogram(
            "gatekeeper_upstream_duration_seconds", "Time until the app's response headers.",
            buckets=_LATENCY_BUCKETS, registry=r), self._due)
        self._request_counts = CounterBatch(self.requests, self._due)
        self.jwks_fetches = Bounded(Counter(
            "gatekeeper_jwks_fetches", "JWKS fetches by issuer and result.",
            ["issuer", "result"], registry=r))
        self.token_cache = Counter(
            "gatekeeper_token_cache", "Verified-token cache lookups.", ["result"], registry=r)
        self.token_cache_hits = ChildBatch(self.token_cache.labels(result="hit"), self._due)
        self.token_cache_misses = ChildBatch(self.token_cache.labels(result="miss"), self._due)
        self.policy_reloads = Bounded(Counter(
            "gatekeeper_policy_reloads", "Policy loads by result.", ["result"], registry=r))
        self.policy_loaded_at = Gauge(
            "gatekeeper_policy_loaded_timestamp_seconds", "When the active policy was loaded.",
            registry=r, multiprocess_mode="max")
        self.policy_active = Bounded(Gauge(
            "gatekeeper_policy_active", "1 for the active policy's digest, 0 for replaced ones.",
            ["digest"], registry=r, multiprocess_mode="max"))
        self.policy_rules = Gauge(
            "gatekeeper_policy_rules", "Rules in the active policy.", registry=r,
            multiprocess_mode="max")
        self.websockets = Gauge(
            "gatekeeper_websockets_open", "Proxied WebSocket sessions open.", registry=r,
            multiprocess_mode="livesum")
        self.logins = Bounded(Counter(
            "gatekeeper_logins", "Browser logins by provider and result code.",
            ["provider", "result"], registry=r))
        self.session_refreshes = Bounded(Counter(
            "gatekeeper_session_refreshes", "Token refreshes of browser sessions by result.",
            ["provider", "result"], registry=r))
        self.revocation_entries = Gauge(
            "gatekeeper_revocation_entries", "Revoked token ids and subjects held in memory.",
            registry=r, multiprocess_mode="livemax")
        self.revocation_synced_at = Gauge(
            "gatekeeper_revocation_last_sync_timestamp_seconds",
            "Last good sync of the revocation list with Redis; authenticated requests get 503 "
            "once it is older than revocation.max_stale_seconds.",
            registry=r, multiprocess_mode="livemin")
        self.revocation_sync_failures = Bounded(Counter(
            "gatekeeper_revocation_sync_failures", "Failed revocation syncs with Redis.",
            ["operation"], registry=r))
        self.session_invalidation_failures = Bounded(Counter(
            "gatekeeper_session_invalidation_failures",
            "Redis sessions: failed PUBLISHes of a session change and lost subscriptions to them.",
            ["operation"], registry=r))
        self.session_cache_subscribed = Gauge(
            "gatekeeper_session_cache_subscribed",
            "Redis sessions: 1 while this process receives every session change (copies are "
            "kept), 0 while every request reads Redis.",
            registry=r, multiprocess_mode="livemin")
        self.backchannel_calls = Bounded(Counter(
            "gatekeeper_backchannel_calls", "Calls to an issuer's back channel that requests "
            "waited for (answers served from a cache are not calls), by kind (introspection, "
            "token_exchange), issuer and result: accepted (an active token, an issued token), "
            "refused (inactive, or the provider said no), unavailable (down, slow, garbled: 503).",
            ["kind", "issuer", "result"], registry=r))
        self.rate_limit_checks = Bounded(Counter(
            "gatekeeper_rate_limit_checks", "Requests checked against rate_limits, by rule (its index) "
            "and result: allowed, limited (429), unavailable (Redis down: let through unchecked).",
            ["rule", "result"], registry=r))

    def count_request(self, outcome: str, reason: str, status: int) -> None:
        """One request in ``gatekeeper_requests_total`` (batched: see the module docstring)."""
        self._request_counts.inc(outcome, reason, status)

    def flush(self) -> None:
        """Put every batched value into the registry: before a scrape, on the timer, at exit."""
        handle, self._flush_handle = self._flush_handle, None
        if handle is not None:
            handle.cancel()
        self._request_counts.flush()
        self.token_cache_hits.flush()
        self.token_cache_misses.flush()
        self.request_seconds.flush()
        self.upstream_seconds.flush()

    def _due(self) -> None:
        """A batch went from empty to holding values: flush them soon (at once outside an
        event loop). Called once per batch and flush, not per request."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_handle is not None and self._flush_loop is loop:
            return  # (a timer on a loop that has ended since would never fire)
        self._flush_loop = loop
        self._flush_handle = loop.call_later(FLUSH_INTERVAL_SECONDS, self.flush)
