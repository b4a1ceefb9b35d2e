"""Process lifecycle and operations: SIGTERM drain, readiness, metrics, the access log."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream, gatekeeper_config
from tests.e2e.test_proxy import access_log_entries
from tests.support.fakes import mint
from tests.support.poll import eventually
from tests.support.servers import free_port

ACCESS_LOG_FIELDS = {"time", "method", "path", "status", "subject", "decision", "reason",
                     "total_ms", "upstream_ms", "request_id"}


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    return mint(issuer, "alice")


def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _refuses_connections(gk: Gatekeeper) -> bool:
    host, port = gk.config["listen"].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return True
    return False


# -- SIGTERM ------------------------------------------------------------------------------------------


def test_sigterm_lets_the_in_flight_request_finish_and_refuses_new_ones(
    gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, token: str
) -> None:
    gk = gatekeeper_factory(drain_seconds=5)
    result: list[httpx.Response | BaseException] = []

    def in_flight() -> None:
        try:
            with gk.client() as client:
                result.append(client.get("/slow", params={"seconds": "2"},
                                         headers={"Authorization": f"Bearer {token}",
                                                  "X-Request-Id": "drained-request-0001"}))
        except BaseException as exc:
            result.append(exc)

    before = len(upstream.recorder.by_path("/slow"))
    thread = threading.Thread(target=in_flight)
    thread.start()
    try:
        _poll(lambda: len(upstream.recorder.by_path("/slow")) > before, 10, "the app to get /slow")
        gk.process.send_signal(signal.SIGTERM)
        _poll(lambda: _refuses_connections(gk), 5, "the listener to close")
        # The app holds /slow for 2 s: the listener closed while the request was still open.
        still_in_flight = not result
    finally:
        thread.join(30)
    assert not thread.is_alive() and len(result) == 1
    assert still_in_flight
    response = result[0]
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200
    assert response.json() == {"slept": 2.0}
    try:
        gk.process.proc.wait(gk.config["drain_seconds"] + 10)  # bounded: the process must end
    except subprocess.TimeoutExpired:
        pytest.fail(f"gatekeeper still running after SIGTERM:\n{gk.process.output()}")
    # Its access log line was written out before the process ended (lines are batched).
    drained = [e for e in map(json.loads, gk.access_log()) if e.get("request_id") == "drained-request-0001"]
    assert [(e["path"], e["status"]) for e in drained] == [("/slow", 200)]


def test_sigterm_exits_with_code_zero(
    gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, token: str
) -> None:
    gk = gatekeeper_factory(drain_seconds=5)
    gk.process.send_signal(signal.SIGTERM)
    try:
        code = gk.process.proc.wait(gk.config["drain_seconds"] + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gatekeeper still running after SIGTERM:\n{gk.process.output()}")
    assert code == 0, gk.process.output()
    stopping = [entry for entry in map(json.loads, (line for line in gk.process.output().splitlines()
                                                    if line.startswith("{")))
                if entry.get("message") == "stopping: finishing in-flight requests"]
    assert [(e["signal"], e["drain_seconds"]) for e in stopping] == [("SIGTERM", 5)]


def test_sigterm_turns_readiness_off_at_once_while_requests_drain(
    gatekeeper_factory: Callable[..., Gatekeeper], upstream: Upstream, token: str
) -> None:
    """Kubernetes stops routing to a pod whose readiness fails: say so before the drain ends."""
    gk = gatekeeper_factory(drain_seconds=10)
    with gk.admin() as admin:
        assert admin.get("/readyz").json()["checks"]["draining"]["ok"] is True
    done = threading.Event()

    def in_flight() -> None:
        with gk.client() as client:
            client.get("/slow", params={"seconds": "3"}, headers={"Authorization": f"Bearer {token}"})
        done.set()

    before = len(upstream.recorder.by_path("/slow"))
    thread = threading.Thread(target=in_flight)
    thread.start()
    try:
        _poll(lambda: len(upstream.recorder.by_path("/slow")) > before, 10, "the app to get /slow")
        gk.process.send_signal(signal.SIGTERM)
        with gk.admin() as admin:
            ready = admin.get("/readyz")
        assert not done.is_set()  # still draining: the admin listener answered meanwhile
        assert ready.status_code == 503
        assert "draining" in ready.json()["failing"]
    finally:
        thread.join(30)


def test_sighup_without_a_policy_is_logged_and_does_not_stop_gatekeeper(
    gatekeeper_factory: Callable[..., Gatekeeper]
) -> None:
    gk = gatekeeper_factory()
    assert "policy" not in gk.config
    gk.process.send_signal(signal.SIGHUP)

    def logged() -> list[dict[str, object]]:
        lines = [line for line in gk.process.output().splitlines() if line.startswith("{")]
        return [e for e in map(json.loads, lines) if e.get("message") == "SIGHUP: no policy to reload"]

    _poll(lambda: bool(logged()) or gk.process.proc.poll() is not None, 10, "the SIGHUP log line")
    assert gk.process.proc.poll() is None, gk.process.output()[-2000:]
    assert len(logged()) == 1
    with gk.admin() as admin:
        assert admin.get("/healthz").status_code == 200


# -- a port that cannot be bound ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["listen", "admin_listen"])
def test_a_port_in_use_is_one_line_naming_the_key_and_no_ready(
    issuer: DevIssuer, upstream: Upstream, tmp_path: Path, key: str
) -> None:
    config = gatekeeper_config(issuer, upstream.url)
    host, port = config[key].rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        path = tmp_path / "gatekeeper.yaml"
        path.write_text(yaml.safe_dump(config))
        result = subprocess.run([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                                capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "gatekeeper ready" not in output
    naming = [line for line in output.splitlines() if config[key] in line]
    assert len(naming) == 1, output
    entry = json.loads(naming[0])
    assert (entry["message"], entry["error"]) == (
        "startup failed", f"{key} {config[key]}: cannot bind (Address already in use)")


# -- readiness ----------------------------------------------------------------------------------------


def test_readyz_is_503_naming_the_upstream_when_the_app_is_down(
    gatekeeper_factory: Callable[..., Gatekeeper],
) -> None:
    gk = gatekeeper_factory(upstream=f"http://127.0.0.1:{free_port()}")
    with gk.admin() as admin:
        assert admin.get("/healthz").status_code == 200  # the process serves
        ready = admin.get("/readyz")
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False
    assert body["failing"] == ["upstream"]
    assert body["checks"]["upstream"]["ok"] is False


def test_readyz_is_200_when_everything_is_up(gatekeeper: Gatekeeper) -> None:
    # Start-up never waits for the issuer: the first key fetch may still be under way when the
    # process answers /healthz, so readiness is waited for (bounded), then checked whole.
    def ready_now() -> bool:
        with gatekeeper.admin() as admin:
            return admin.get("/readyz").status_code == 200

    assert eventually(ready_now, 15)
    with gatekeeper.admin() as admin:
        ready = admin.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["failing"] == []


# -- metrics ------------------------------------------------------------------------------------------


def test_metrics_count_requests_by_outcome_and_reason_with_latency_histograms(
    gatekeeper: Gatekeeper, token: str
) -> None:
    with gatekeeper.client() as client:
        assert client.get("/echo/m", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/echo/m").status_code == 401
        assert client.get("/public/m").status_code == 200
    with gatekeeper.admin() as admin:
        text = admin.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    requests = {(s.labels["outcome"], s.labels["reason"], s.labels["status"]): s.value
                for s in families["gatekeeper_requests"].samples if s.name.endswith("_total")}
    assert requests[("allow", "authenticated", "200")] >= 1
    assert requests[("unauthenticated", "no_credentials", "401")] >= 1
    assert requests[("allow", "public_path", "200")] >= 1

    for histogram in ("gatekeeper_request_duration_seconds", "gatekeeper_upstream_duration_seconds"):
        samples = families[histogram].samples
        count = next(s.value for s in samples if s.name == histogram + "_count")
        assert count >= 2, histogram  # two requests reached the app
        assert any(s.name == histogram + "_bucket" and s.labels["le"] == "+Inf" for s in samples)

    fetches = {(s.labels["issuer"], s.labels["result"]): s.value
               for s in families["gatekeeper_jwks_fetches"].samples if s.name.endswith("_total")}
    issuer = gatekeeper.config["auth"]["issuers"][0]["issuer"]
    assert fetches[(issuer, "success")] >= 1  # the keys were loaded at start


# -- access log ---------------------------------------------------------------------------------------


def test_one_access_log_line_per_request_without_query_token_or_cookie(
    gatekeeper: Gatekeeper, token: str
) -> None:
    ids = [f"access-log-test-{i:04d}" for i in range(3)]
    with gatekeeper.client() as client:
        client.get("/echo/logged", params={"q": "query-secret-value"},
                   headers={"Authorization": f"Bearer {token}", "X-Request-Id": ids[0],
                            "Cookie": "session=cookie-secret-value"})
        client.get("/echo/logged", params={"q": "query-secret-value"},
                   headers={"Authorization": "Bearer not.a.token", "X-Request-Id": ids[1]})
        client.get("/echo/%2e%2e/logged", headers={"X-Request-Id": ids[2]})
    entries = {}
    for request_id in ids:
        lines = access_log_entries(gatekeeper, request_id)
        assert len(lines) == 1, lines
        assert set(lines[0]) >= ACCESS_LOG_FIELDS, lines[0]
        entries[request_id] = lines[0]
    output = gatekeeper.process.output()

    allowed, bad_token, malformed = (entries[i] for i in ids)
    assert (allowed["method"], allowed["path"], allowed["status"]) == ("GET", "/echo/logged", 200)
    assert (allowed["subject"], allowed["decision"], allowed["reason"]) == (
        "alice", "allow", "authenticated")
    assert isinstance(allowed["upstream_ms"], float) and allowed["total_ms"] >= allowed["upstream_ms"]
    assert (bad_token["status"], bad_token["decision"], bad_token["reason"]) == (
        401, "unauthenticated", "malformed_token")
    assert bad_token["upstream_ms"] is None
    assert (malformed["status"], malformed["reason"]) == (400, "malformed_target")

    for secret in ("query-secret-value", "cookie-secret-value", token, token.split(".")[2],
                   "not.a.token"):
        assert secret not in output, secret
