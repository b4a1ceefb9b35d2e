"""Prometheus metrics, in a registry owned by one app instance (no module-level collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """``multiprocess_dir``: with several workers, /metrics sums every worker's values."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        r = CollectorRegistry(auto_describe=True)
        self.registry = r
        if multiprocess_dir is not None:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        self.requests = Counter(
            "gatekeeper_requests", "Requests by outcome and reason code.",
            ["outcome", "reason", "status"], registry=r)
        self.request_seconds = Histogram(
            "gatekeeper_request_duration_seconds", "Total time from request to last byte sent.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_seconds = Histogram(
            "gatekeeper_upstream_duration_seconds", "Time until the app's response headers.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.jwks_fetches = Counter(
            "gatekeeper_jwks_fetches", "JWKS fetches by issuer and result.",
            ["issuer", "result"], registry=r)
        self.token_cache = Counter(
            "gatekeeper_token_cache", "Verified-token cache lookups.", ["result"], registry=r)
        self.token_cache_hits = self.token_cache.labels(result="hit")
        self.token_cache_misses = self.token_cache.labels(result="miss")
        self.policy_reloads = Counter(
            "gatekeeper_policy_reloads", "Policy loads by result.", ["result"], registry=r)
        self.policy_loaded_at = Gauge(
            "gatekeeper_policy_loaded_timestamp_seconds", "When the active policy was loaded.",
            registry=r, multiprocess_mode="max")
        self.policy_active = Gauge(
            "gatekeeper_policy_active", "1 for the active policy's digest, 0 for replaced ones.",
            ["digest"], registry=r, multiprocess_mode="max")
        self.policy_rules = Gauge(
            "gatekeeper_policy_rules", "Rules in the active policy.", registry=r,
            multiprocess_mode="max")
        self.websockets = Gauge(
            "gatekeeper_websockets_open", "Proxied WebSocket sessions open.", registry=r,
            multiprocess_mode="livesum")
        self.logins = Counter(
            "gatekeeper_logins", "Browser logins by provider and result code.",
            ["provider", "result"], registry=r)
        self.session_refreshes = Counter(
            "gatekeeper_session_refreshes", "Token refreshes of browser sessions by result.",
            ["provider", "result"], registry=r)
        self.revocation_entries = Gauge(
            "gatekeeper_revocation_entries", "Revoked token ids and subjects held in memory.",
            registry=r, multiprocess_mode="livemax")
        self.revocation_synced_at = Gauge(
            "gatekeeper_revocation_last_sync_timestamp_seconds",
            "Last good sync of the revocation list with Redis; authenticated requests get 503 "
            "once it is older than revocation.max_stale_seconds.",
            registry=r, multiprocess_mode="livemin")
        self.revocation_sync_failures = Counter(
            "gatekeeper_revocation_sync_failures", "Failed revocation syncs with Redis.",
            ["operation"], registry=r)
        self.rate_limit_checks = Counter(
            "gatekeeper_rate_limit_checks", "Requests checked against rate_limits, by rule (its index) "
            "and result: allowed, limited (429), unavailable (Redis down: let through unchecked).",
            ["rule", "result"], registry=r)
