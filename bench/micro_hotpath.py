"""µs per piece of gatekeeper's per-request bookkeeping, in process (timeit, bounded).

    access-log write      AccessLog.write of the gate's entry, the 20 ms batch's join and write
                          amortized in (the stream discards: the encoding is what is measured)
    histogram observe     Metrics().request_seconds.observe
    record                Gate._record: the request counter, the latency histogram, the log line
    upstream headers      HeaderPolicy.upstream_headers: strip, hop-by-hop, forwarding, identity
                          (wrk's two headers; a browser's fourteen, with a session cookie)
    response headers      the proxy's filter of nginx's answer (strip_response_headers, or
                          HeaderPolicy.response_headers where it exists)
    decide                Pipeline.decide of a cached principal on an open path (no I/O)
    tracing, no exporter  what a request pays for W3C trace context without the SDK: read (or
                          start) the trace, the gate's hook, and the traceparent the app gets
                          (absent from checkouts without tracing)
    record + samples      Gate._record feeding the policy page's traffic samples (ops/recent.py),
                          for an allowed request and a denied one (compare with "record")
    cors …                with ``cors`` rules (issue 15 §5; skipped on a tree without cors.py):
                          the route lookup for a path no rule covers, a real request's grant for
                          an allowed Origin (kept per Origin value), the app's answer rewritten,
                          a preflight decided

Only public entry points that every version since the regroup has, so the same script measures
an earlier checkout side by side: ``PYTHONPATH=/tmp/before .venv/bin/python bench/micro_hotpath.py``.
Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls, timed in the process's
CPU time (min: the least disturbed run on a shared machine); bounded by count, a few seconds in
all.

    .venv/bin/python bench/micro_hotpath.py [--number 20000] [--repeat 7] [--json FILE]
"""

from __future__ import annotations

import asyncio
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from micro import IDENTITY_HEADERS, Known, drive, run

from gatekeeper.authz import AuthenticatedOnly, PublicPaths
from gatekeeper.edge.gate import Gate, GateSettings
from gatekeeper.exchange import Exchange
from gatekeeper.logs import AccessLog
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy, strip_response_headers
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import Decision, Outcome, Principal
from gatekeeper.settings.headers import HeaderSettings

TOKEN = "eyJhbGciOiJSUzI1NiJ9." + "x" * 400 + "." + "y" * 342
WRK_HEADERS = [(b"host", b"127.0.0.1:4180"), (b"authorization", b"Bearer " + TOKEN.encode())]
BROWSER_HEADERS = [
    (b"host", b"app.example.com"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"cache-control", b"max-age=0"),
    (b"sec-ch-ua", b'"Chromium";v="131", "Not_A Brand";v="24"'),
    (b"sec-fetch-dest", b"document"),
    (b"sec-fetch-mode", b"navigate"),
    (b"sec-fetch-site", b"same-origin"),
    (b"referer", b"https://app.example.com/items"),
    (b"x-request-id", b"0123456789abcdef01234567"),
    (b"cookie", b"_gatekeeper=" + b"s" * 2400 + b"; theme=dark; lang=en"),
]
NGINX_RESPONSE = [(b"Server", b"nginx/1.22.1"), (b"Date", b"Mon, 07 Dec 2026 20:00:00 GMT"),
                  (b"Content-Type", b"text/plain"), (b"Content-Length", b"3"),
                  (b"Connection", b"keep-alive")]


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _scope(headers: list[tuple[bytes, bytes]], path: str = "/items/1") -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
            "scheme": "http", "server": ("127.0.0.1", 4180)}


PRINCIPAL = Principal(subject="alice", roles=("admin", "user"),
                      claims={"sub": "alice", "email": "alice@example.com",
                              "roles": ["admin", "user"]},
                      via="bearer", issuer="http://127.0.0.1:9000", expires_at=time.time() + 3600,
                      token=TOKEN)
HEADER_SETTINGS = HeaderSettings(
    headers=IDENTITY_HEADERS, pass_access_token=False, pass_authorization_header=False, trusted_proxies=(),
    session_cookie="_gatekeeper")


def _cors_cases() -> dict[str, Callable[[], object]]:
    """The CORS pieces, where this version has them (cors.py, issue 15 §5)."""
    try:
        from gatekeeper.cors import CorsPolicy, owned_headers
        from gatekeeper.settings import CorsRule
    except ImportError:
        return {}
    policy = CorsPolicy([
        CorsRule(paths=["/api/*", "/graphql"], allowed_origins=["https://app.example.com",
                                                                "https://*.preview.example.com"],
                 allowed_methods=["GET", "POST", "PUT"], allowed_headers=["authorization", "content-type"],
                 exposed_headers=["x-request-id"], allow_credentials=True),
        CorsRule(paths=["/public/*"], allowed_origins=["*"])])
    route = policy.route("/api/items/1")
    assert route is not None
    origin = [*BROWSER_HEADERS, (b"origin", b"https://pr-42.preview.example.com")]
    real = Exchange({**_scope(origin, "/api/items/1")}, "/api/items/1", "0123456789abcdef01234567", 0.0)
    preflight = Exchange({**_scope([*origin, (b"access-control-request-method", b"PUT"),
                                    (b"access-control-request-headers", b"authorization,content-type")],
                                   "/api/items/1"), "method": "OPTIONS"},
                         "/api/items/1", "0123456789abcdef01234567", 0.0)
    grant = route.grant(real)
    return {
        "cors: route lookup, a path no rule covers": lambda: policy.route("/items/1"),
        "cors: grant for an allowed Origin (browser's 15 headers)": lambda: route.grant(real),
        "cors: the app's answer rewritten (nginx's 5 + the grant)":
            lambda: owned_headers(NGINX_RESPONSE, grant),
        "cors: a preflight decided (wildcard origin, 2 headers)": lambda: route.preflight(preflight),
    }


def cases() -> dict[str, Callable[[], object]]:
    discard = _Discard()
    log = AccessLog(stream=discard)
    metrics = Metrics()
    gate = Gate(None, None, None, None, metrics, AccessLog(stream=discard),  # type: ignore[arg-type]
                GateSettings(max_header_bytes=16384))
    scope = _scope(WRK_HEADERS)
    exchange = Exchange(scope, "/items/1", "0123456789abcdef01234567", time.perf_counter())
    exchange.upstream_seconds = 0.0004
    headers = HeaderPolicy(HEADER_SETTINGS)
    identity = headers.identity_headers(PRINCIPAL, TOKEN)
    decision = Decision(Outcome.ALLOW, "authenticated", PRINCIPAL, identity_headers=identity,
                        path="/items/1")
    browser = Exchange(_scope(BROWSER_HEADERS), "/items/1", "0123456789abcdef01234567", 0.0)
    pipeline = Pipeline([Known(PRINCIPAL)], AuthenticatedOnly(PublicPaths(["/public/*"])), headers)
    # What the proxy calls on the app's answer, in whichever version this is.
    response = getattr(headers, "response_headers", strip_response_headers)
    writes = 0

    def write() -> None:
        nonlocal writes
        log.write({"request_id": "0123456789abcdef01234567", "method": "GET", "path": "/items/1",
                   "status": 200, "subject": "alice", "decision": "allow",
                   "reason": "authenticated", "rule": None, "total_ms": 0.812,
                   "upstream_ms": 0.401, "client": "127.0.0.1"})
        writes += 1
        if writes % 400 == 0:  # ~8,000 req/s x 20 ms between the loop's flushes
            log.flush()

    records = 0

    def record() -> None:
        nonlocal records
        gate._record(scope, "0123456789abcdef01234567", exchange.started, exchange, decision, 200)
        records += 1
        if records % 400 == 0:
            for flush in _flushers(gate, metrics):
                flush()

    found = {
        **_tracing_cases(),
        "access-log write": write,
        "histogram observe": lambda: metrics.request_seconds.observe(0.0008),
        "record (counter + histogram + log line)": record,
        "upstream headers, wrk (2 headers)": lambda: headers.upstream_headers(
            exchange, identity, "0123456789abcdef01234567", b"127.0.0.1:4180"),
        "upstream headers, browser (14 headers)": lambda: headers.upstream_headers(
            browser, identity, "0123456789abcdef01234567", b"app.example.com"),
        "response headers (nginx's 5)": lambda: response(NGINX_RESPONSE),
        "decide (known principal, open path)": lambda: drive(pipeline.decide(exchange)),
        **_cors_cases(),
    }
    found.update(_sampled_record_cases(metrics, discard, scope, exchange, decision))
    return found


def _sampled_record_cases(metrics: Metrics, discard: _Discard, scope: dict[str, Any],
                          exchange: Exchange, decision: Decision) -> dict[str, Callable[[], object]]:
    """``Gate._record`` feeding the policy page's samples (ops/recent.py): an allowed request on
    a route seen before, and a denied one. Empty for a version without the policy page."""
    try:
        from gatekeeper.ops.recent import Traffic
    except ImportError:
        return {}
    gate = Gate(None, None, None, None, metrics, AccessLog(stream=discard),  # type: ignore[arg-type]
                GateSettings(max_header_bytes=16384), None, Traffic())
    denied = Decision(Outcome.UNAUTHORIZED, "no_matching_rule", decision.principal,
                      path="/items/1")
    calls = 0

    def record(chosen: Decision, status: int) -> None:
        nonlocal calls
        gate._record(scope, "0123456789abcdef01234567", exchange.started, exchange, chosen, status)
        calls += 1
        if calls % 400 == 0:
            for flush in _flushers(gate, metrics):
                flush()

    return {"record + policy-page samples, allowed (route seen before)": lambda: record(decision, 200),
            "record + policy-page samples, denied (ring append)": lambda: record(denied, 403)}


def _tracing_cases() -> dict[str, Callable[[], object]]:
    try:
        from gatekeeper.tracecontext import trace_of
        from gatekeeper.tracing import NO_TRACING
    except ImportError:  # a checkout from before tracing
        return {}
    read: Callable[[list[tuple[bytes, bytes]]], Any]
    try:  # a pool of OS randomness per gate (gatekeeper/randomids.py), passed as the gate does
        from gatekeeper.randomids import RandomIds
        pool = RandomIds()

        def read(headers: list[tuple[bytes, bytes]]) -> Any:
            return trace_of(headers, continue_incoming=True, ids=pool)
    except ImportError:  # a checkout from before the pool
        def read(headers: list[tuple[bytes, bytes]]) -> Any:
            return trace_of(headers, continue_incoming=True)  # type: ignore[call-arg]
    incoming = [*WRK_HEADERS, (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    exchange = Exchange(_scope(WRK_HEADERS), "/items/1", "0123456789abcdef01234567", 0.0)

    def request(headers: list[tuple[bytes, bytes]]) -> object:
        # The stage and upstream hooks are not called at all without an exporter.
        exchange.trace = trace = read(headers)
        exchange.span = NO_TRACING.begin(exchange)
        return trace.headers()

    return {
        "tracing, no exporter: a new trace": lambda: request(WRK_HEADERS),
        "tracing, no exporter: the caller's trace": lambda: request(incoming),
    }


def _flushers(gate: Gate, metrics: Metrics) -> list[Callable[[], None]]:
    """What the loop's timers would run between batches (whatever this version has)."""
    found = [gate._access_log.flush]
    flush = getattr(metrics, "flush", None)
    if flush is not None:
        found.append(flush)
    return found


async def measure(number: int, repeat: int) -> dict[str, float]:
    # Inside a running loop: the access log and the metrics schedule their flushes on it (the
    # timers never fire here; the cases flush by hand at the rate the loop would).
    # CPU time of this process, not wall time: on a shared machine the wall clock also counts the
    # time other processes hold the core.
    return {name: min(timeit.repeat(call, number=number, repeat=repeat, timer=time.process_time))
            / number * 1e6 for name, call in cases().items()}


if __name__ == "__main__":
    sys.exit(run(__doc__, lambda number, repeat: asyncio.run(measure(number, repeat))))
