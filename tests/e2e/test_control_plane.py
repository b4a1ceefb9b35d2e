"""Control-plane fetches are bounded in time and size (issue 11 §2.7).

A hostile issuer process on loopback (tests/support/hostile_issuer.py) drips, hangs, or answers
400 MB, a gzip bomb or deeply nested JSON to every discovery and JWKS request. Gatekeeper trusts
it next to an honest issuer, and must still:

- listen (``/healthz``) and serve the honest issuer's tokens, whatever the hostile one does;
- say in ``/readyz`` which issuer is not ready;
- answer a token of the hostile issuer 503 ``keys_unavailable`` (no keys: fail closed);
- keep its memory bounded (VmHWM, the peak resident size, read from /proc);
- exit promptly and cleanly on SIGTERM, even while a fetch is under way.

The same for a hostile OpenID Provider behind browser login. Each gatekeeper here has a 2 s
total deadline for control-plane calls, so every fetch gives up after 2 s at most.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, gatekeeper_config, served_issuer
from tests.support import forge
from tests.support.poll import eventually
from tests.support.servers import ProcessHandle, free_port, peak_rss_bytes, rss_bytes, run_process

MODES = ["drip", "hang", "huge", "huge-chunked", "gzip-bomb", "deep-json"]
DEADLINE = 2.0  # auth.jwks_fetch_timeout_seconds and oidc.http_timeout_seconds here
# Gatekeeper's own size is well under this; a body read whole (400 MB, 200 MB inflated) is not.
GROWTH_BOUND = 64 * 1024 * 1024
WAIT = 20.0  # for what the control plane does in the background


@contextmanager
def hostile_issuer(mode: str) -> Iterator[tuple[str, ProcessHandle]]:
    port = free_port()
    with run_process([sys.executable, "-m", "tests.support.hostile_issuer", "--port", str(port),
                      "--mode", mode], ready_port=port) as handle:
        yield f"http://127.0.0.1:{port}", handle


@contextmanager
def gatekeeper(config: dict[str, Any], tmp_path: Path) -> Iterator[Gatekeeper]:
    path = tmp_path / f"gatekeeper-{free_port()}.yaml"
    path.write_text(yaml.safe_dump(config))
    admin_url = f"http://{config['admin_listen']}"
    # Ready means /healthz answers: the public listener is up once the lifespan completed.
    with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                     ready_url=f"{admin_url}/healthz", timeout=15) as handle:
        yield Gatekeeper(url=f"http://{config['listen']}", admin_url=admin_url, process=handle,
                         config=config, config_path=path)


def readyz(gk: Gatekeeper) -> dict[str, Any]:
    with gk.admin() as admin:
        answer: dict[str, Any] = admin.get("/readyz").json()
        return answer


def forged_for(issuer: str) -> str:
    now = int(time.time())
    claims = {"iss": issuer, "sub": "mallory", "aud": AUDIENCE, "iat": now, "exp": now + 300}
    return forge.signed({"kid": "hostile-kid"}, claims, forge.attacker_key("RS256"), "RS256")


def stops_promptly_on_sigterm(handle: ProcessHandle) -> int:
    """SIGTERM; the exit code, once it exits (a bounded wait, far above a prompt exit)."""
    handle.send_signal(signal.SIGTERM)
    try:
        return handle.proc.wait(15)
    except subprocess.TimeoutExpired:
        raise AssertionError("gatekeeper ignored SIGTERM while an issuer misbehaved") from None


@pytest.fixture(scope="module")
def honest() -> Iterator[DevIssuer]:
    with served_issuer(algorithms=("RS256",)) as issuer:
        yield issuer


@pytest.mark.parametrize("mode", MODES)
def test_a_hostile_issuer_never_blocks_start_other_issuers_memory_or_shutdown(
    honest: DevIssuer, upstream: Upstream, tmp_path: Path, mode: str
) -> None:
    with hostile_issuer(mode) as (hostile, hostile_process):
        config = gatekeeper_config(honest, upstream.url, auth={
            "issuers": [{"issuer": hostile, "audience": [AUDIENCE], "algorithms": ["RS256"]},
                        {"issuer": honest.issuer, "audience": [AUDIENCE], "algorithms": ["RS256"]}],
            "jwks_fetch_timeout_seconds": DEADLINE, "jwks_min_refresh_seconds": 1})
        with gatekeeper(config, tmp_path) as gk:
            pid = gk.process.pid
            baseline = rss_bytes(pid)
            with gk.admin() as admin:
                assert admin.get("/healthz").status_code == 200
            assert eventually(lambda: readyz(gk)["checks"][f"issuer {honest.issuer}"]["ok"], WAIT)
            report = readyz(gk)
            assert report["ready"] is False, report
            assert f"issuer {hostile}" in report["failing"], report
            assert f"issuer {honest.issuer}" not in report["failing"], report

            with gk.client() as client:
                good = client.get("/x", headers={
                    "Authorization": f"Bearer {honest.mint('alice', audience=AUDIENCE)}"})
                assert good.status_code == 200, good.text
                bad = client.get("/x", headers={"Authorization": f"Bearer {forged_for(hostile)}"})
                assert bad.status_code == 503, bad.text
                assert bad.json()["error"] == "keys_unavailable"
            # The hostile issuer was asked at least twice (start-up, then the retry or the
            # token), and every answer was given up on.
            assert eventually(lambda: hostile_process.output().count("request ") >= 2, WAIT)

            peak = peak_rss_bytes(pid)
            assert peak - baseline < GROWTH_BOUND, (mode, baseline, peak)
            assert stops_promptly_on_sigterm(gk.process) == 0, gk.process.output()[-3000:]
            assert "Traceback" not in gk.process.output()


@pytest.mark.parametrize("mode", ["drip", "hang", "huge-chunked"])
def test_a_hostile_openid_provider_never_blocks_start_or_shutdown(
    honest: DevIssuer, upstream: Upstream, tmp_path: Path, mode: str
) -> None:
    with hostile_issuer(mode) as (hostile, _):
        port = free_port()
        config = gatekeeper_config(honest, upstream.url, listen=f"127.0.0.1:{port}", oidc={
            "issuer": hostile, "client_id": "gk", "client_secret": "s",
            "redirect_url": f"http://127.0.0.1:{port}/oauth2/callback",
            "http_timeout_seconds": DEADLINE},
            session={"secret": "control-plane-session-secret-0123456789", "cookie_secure": False},
            auth={"jwks_fetch_timeout_seconds": DEADLINE})
        with gatekeeper(config, tmp_path) as gk:
            baseline = rss_bytes(gk.process.pid)
            report = readyz(gk)
            assert "oidc" in report["failing"], report
            with gk.client() as client:
                # Bearer tokens of the honest issuer do not wait for the provider.
                good = client.get("/x", headers={
                    "Authorization": f"Bearer {honest.mint('alice', audience=AUDIENCE)}"})
                assert good.status_code == 200, good.text
                # Login needs the provider's endpoints: a clear failure, not a hang.
                start = client.get("/oauth2/start", headers={"accept": "text/html"})
            assert start.status_code in (502, 503), start.text
            assert peak_rss_bytes(gk.process.pid) - baseline < GROWTH_BOUND
            assert stops_promptly_on_sigterm(gk.process) == 0, gk.process.output()[-3000:]


def test_a_body_larger_than_the_cap_is_refused_even_from_an_honest_issuer(
    honest: DevIssuer, upstream: Upstream, tmp_path: Path
) -> None:
    """The size cap is the configured one: a JWKS a little over it fails, the keys stay away."""
    honest.jwks_override = {"keys": honest.jwks()["keys"], "padding": "x" * 20_000}
    try:
        config = gatekeeper_config(honest, upstream.url, auth={
            "jwks_max_bytes": 16384, "jwks_min_refresh_seconds": 30})
        with gatekeeper(config, tmp_path) as gk:
            assert eventually(lambda: "larger than 16384 bytes" in str(
                readyz(gk)["checks"][f"issuer {honest.issuer}"]), WAIT)
            with gk.client() as client:
                answer = client.get("/x", headers={
                    "Authorization": f"Bearer {honest.mint('alice', audience=AUDIENCE)}"})
            assert answer.status_code == 503
    finally:
        honest.jwks_override = None


def test_control_plane_urls_in_readyz_carry_no_credentials_or_query(
    upstream: Upstream, tmp_path: Path
) -> None:
    with served_issuer(algorithms=("RS256",)) as issuer:
        issuer.down = True
        secret_uri = issuer.jwks_uri.replace("http://", "http://user:hunter2@") + "?token=hunter3"
        config = gatekeeper_config(issuer, upstream.url, auth={"issuers": [
            {"issuer": issuer.issuer, "audience": [AUDIENCE], "jwks_uri": secret_uri}]})
        with gatekeeper(config, tmp_path) as gk:
            assert eventually(lambda: readyz(gk)["checks"][f"issuer {issuer.issuer}"]["detail"]
                              != "not fetched yet", WAIT)
            with gk.admin() as admin:
                text = admin.get("/readyz").text
            assert "HTTP 503" in text
            assert "hunter2" not in text and "hunter3" not in text
