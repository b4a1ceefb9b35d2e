"""Prometheus metrics, in a registry owned by one app instance (no module-level collectors).

Every label value comes from a fixed set: a reason or result code written in gatekeeper's code,
a configured provider, issuer or rule. A value a client chooses (a provider's ``error=`` on the
callback) must never become a label, or each request adds a time series for good. Codes built
from outside input are mapped to a fixed set where they are made (oidc/routes.py,
oidc/provider.py); as a second line, each labelled metric here admits at most a bounded number of
distinct values per label and counts the rest under ``other``.
"""

from __future__ import annotations

import threading
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


_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """``multiprocess_dir``: with several workers, /metrics sums every worker's values."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        r = CollectorRegistry(auto_describe=True)
        self.registry = r
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self.requests = Bounded(Counter(
            "gatekeeper_requests", "Requests by outcome and reason code.",
            ["outcome", "reason", "status"], registry=r))
        self.request_seconds = Histogram(
            "gatekeeper_request_duration_seconds", "Total time from request to last byte sent.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_seconds = Histogram(
            "gatekeeper_upstream_duration_seconds", "Time until the app's response headers.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.jwks_fetches = Bounded(Counter(
            "gatekeeper_jwks_fetches", "JWKS fetches by issuer and result.",
            ["issuer", "result"], registry=r))
        self.token_cache = Counter(
            "gatekeeper_token_cache", "Verified-token cache lookups.", ["result"], registry=r)
        self.token_cache_hits = self.token_cache.labels(result="hit")
        self.token_cache_misses = self.token_cache.labels(result="miss")
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
        self.rate_limit_checks = Bounded(Counter(
            "gatekeeper_rate_limit_checks", "Requests checked against rate_limits, by rule (its index) "
            "and result: allowed, limited (429), unavailable (Redis down: let through unchecked).",
            ["rule", "result"], registry=r))
