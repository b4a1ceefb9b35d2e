"""Policy hot reload in a running gatekeeper: file edits, ConfigMap symlink swaps, SIGHUP, and
broken files that are refused while the old policy keeps serving, and an open WebSocket the new
policy no longer allows.

Each test runs its own gatekeeper process over policy files in a temporary directory. Reloads are
asynchronous, so every change is awaited with a bounded poll (never a sleep-then-assert).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.policy.loader import load_policy
from tests.conftest import Gatekeeper, Upstream, gatekeeper_config
from tests.support.fakes import mint, run

REPO = Path(__file__).resolve().parents[2]
MODEL = (REPO / "policies" / "model.conf").read_text()
RELOAD_TIMEOUT = 15.0

V1 = "# v1: viewers read the docs\np, role:viewer, /docs/*, GET, allow\n"
V2 = V1 + "# v2: and the reports\np, role:viewer, /reports/*, GET, allow\n"
BROKEN = V1 + "p, role:viewer, /reports/*, GET\n"  # line 3: one field short
BROKEN_LINE = "policy.csv:3"


@pytest.fixture(scope="module")
def token(issuer: DevIssuer) -> str:
    return mint(issuer, "bob", claims={"roles": ["viewer"]})


def poll(condition: Callable[[], bool], what: str, timeout: float = RELOAD_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def status(gk: Gatekeeper, path: str, token: str) -> int:
    with gk.client() as client:
        return client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code


def readyz(gk: Gatekeeper) -> httpx.Response:
    with gk.admin() as admin:
        return admin.get("/readyz")


def metric(gk: Gatekeeper, name: str, **labels: str) -> float | None:
    with gk.admin() as admin:
        text = admin.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def logged(gk: Gatekeeper, message: str) -> list[dict[str, Any]]:
    """gatekeeper's JSON log lines with this message."""
    lines = [line for line in gk.process.output().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("message") == message]


RESTORED = "policy files hold the serving policy again; the refusal is over"


def digest_of(model: Path, policy: Path) -> str:
    return load_policy(model, policy).policy.digest


def write_atomically(path: Path, text: str) -> None:
    """How most tools save: a new file renamed over the old one."""
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def policy_dir(root: Path, policy: str = V1) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.conf").write_text(MODEL)
    (root / "policy.csv").write_text(policy)
    return root / "model.conf", root / "policy.csv"


def start(factory: Callable[..., Gatekeeper], model: Path, policy: Path, *,
          watch: bool = True) -> Gatekeeper:
    return factory(policy={"model": str(model), "policy": str(policy), "watch": watch})


# ------------------------------------------------------------------ a good change
def test_an_edited_policy_file_is_served_after_a_reload(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    old_digest = digest_of(model, policy)
    gk = start(gatekeeper_factory, model, policy)
    assert status(gk, "/docs/a", token) == 200
    assert status(gk, "/reports/a", token) == 403
    assert metric(gk, "gatekeeper_policy_active", digest=old_digest) == 1.0

    policy.write_text(V2)  # in place, as an editor might
    new_digest = digest_of(model, policy)
    poll(lambda: status(gk, "/reports/a", token) == 200, "the new rule allows /reports/a")

    assert status(gk, "/docs/a", token) == 200
    ready = readyz(gk)
    assert ready.status_code == 200
    detail = ready.json()["checks"]["policy"]["detail"]
    assert new_digest in detail and "refused" not in detail
    assert metric(gk, "gatekeeper_policy_active", digest=new_digest) == 1.0
    assert metric(gk, "gatekeeper_policy_active", digest=old_digest) == 0.0
    assert metric(gk, "gatekeeper_policy_rules") == 2.0


def test_a_policy_saved_by_rename_is_served_after_a_reload(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    gk = start(gatekeeper_factory, model, policy)
    assert status(gk, "/reports/a", token) == 403
    write_atomically(policy, V2)
    poll(lambda: status(gk, "/reports/a", token) == 200, "the renamed-in file is served")
    write_atomically(policy, V1)  # and back: a revoked grant is revoked
    poll(lambda: status(gk, "/reports/a", token) == 403, "the grant is revoked again")


# ------------------------------------------------------------------ a broken change
def test_a_broken_policy_file_is_refused_and_the_old_one_keeps_serving(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    good_digest = digest_of(model, policy)
    gk = start(gatekeeper_factory, model, policy)
    assert status(gk, "/docs/a", token) == 200
    failures = metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0.0

    write_atomically(policy, BROKEN)
    poll(lambda: (metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0) > failures,
         "the refused reload is counted")

    # The old policy, whole: its allow still holds, the broken file's good lines are not in.
    assert status(gk, "/docs/a", token) == 200
    assert status(gk, "/reports/a", token) == 403
    refusal = [line for line in gk.process.output().splitlines() if BROKEN_LINE in line]
    assert refusal, gk.process.output()[-3000:]
    assert "policy.csv" in refusal[0] and "4 fields" in refusal[0]
    ready = readyz(gk)
    assert ready.status_code == 200  # still ready: it serves the previous policy
    check = ready.json()["checks"]["policy"]
    assert check["ok"] is True
    assert good_digest in check["detail"]
    assert "refused" in check["detail"] and BROKEN_LINE in check["detail"]
    assert metric(gk, "gatekeeper_policy_active", digest=good_digest) == 1.0

    assert logged(gk, RESTORED) == []
    write_atomically(policy, V1)  # reverted to what is serving: the refusal is history
    poll(lambda: "refused" not in readyz(gk).json()["checks"]["policy"]["detail"],
         "/readyz stops reporting the refusal once the file is good again")
    assert status(gk, "/docs/a", token) == 200
    poll(lambda: bool(logged(gk, RESTORED)), "a log line says the refusal is over")
    assert logged(gk, RESTORED)[0]["digest"] == good_digest

    write_atomically(policy, BROKEN)  # broken again, then repaired with a new grant
    poll(lambda: BROKEN_LINE in readyz(gk).json()["checks"]["policy"]["detail"],
         "the second refusal is reported")
    write_atomically(policy, V2)
    poll(lambda: status(gk, "/reports/a", token) == 200, "the repaired file is served")
    assert "refused" not in readyz(gk).json()["checks"]["policy"]["detail"]


def test_a_deleted_policy_file_keeps_the_old_policy_until_it_is_back(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    gk = start(gatekeeper_factory, model, policy)
    failures = metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0.0
    policy.unlink()
    poll(lambda: (metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0) > failures,
         "the missing file is a refused reload")
    assert status(gk, "/docs/a", token) == 200
    assert "cannot read" in readyz(gk).json()["checks"]["policy"]["detail"]
    policy.write_text(V2)
    poll(lambda: status(gk, "/reports/a", token) == 200, "the recreated file is served")


def test_a_broken_model_file_is_refused_with_its_line(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    gk = start(gatekeeper_factory, model, policy)
    failures = metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0.0
    lines = MODEL.splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("m ="))
    write_atomically(model, MODEL.replace("methodMatch(", "methodMatches("))
    poll(lambda: (metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0) > failures,
         "the refused reload is counted")
    assert re.search(rf"model\.conf:{number}\b.*methodMatches", gk.process.output())
    assert status(gk, "/docs/a", token) == 200


# ------------------------------------------------------------------ Kubernetes ConfigMap
def configmap_version(root: Path, name: str, policy: str) -> None:
    version = root / name
    version.mkdir()
    (version / "model.conf").write_text(MODEL)
    (version / "policy.csv").write_text(policy)


def swap_data(root: Path, version: str) -> None:
    """What the kubelet does: point a new symlink at the new version, rename it over ..data."""
    scratch = root / "..data_tmp"
    scratch.symlink_to(version)
    os.replace(scratch, root / "..data")


def test_a_configmap_update_by_symlink_swap_is_picked_up(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    root = tmp_path / "configmap"
    root.mkdir()
    configmap_version(root, "..2026_v1", V1)
    (root / "..data").symlink_to("..2026_v1")
    for name in ("model.conf", "policy.csv"):
        (root / name).symlink_to(f"..data/{name}")
    gk = start(gatekeeper_factory, root / "model.conf", root / "policy.csv")
    assert status(gk, "/reports/a", token) == 403

    configmap_version(root, "..2026_v2", V2)
    swap_data(root, "..2026_v2")
    for leftover in (root / "..2026_v1").iterdir():  # the kubelet removes the old version
        leftover.unlink()
    (root / "..2026_v1").rmdir()
    poll(lambda: status(gk, "/reports/a", token) == 200, "the v2 ConfigMap is served")
    assert digest_of(root / "model.conf", root / "policy.csv") in \
        readyz(gk).json()["checks"]["policy"]["detail"]

    # A second update: the watch survived the directory it first resolved being deleted.
    configmap_version(root, "..2026_v3", V1)
    swap_data(root, "..2026_v3")
    poll(lambda: status(gk, "/reports/a", token) == 403, "the v3 ConfigMap is served")


# ------------------------------------------------------------------ SIGHUP
def test_sighup_reloads_when_watching_is_off(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies")
    gk = start(gatekeeper_factory, model, policy, watch=False)
    successes = metric(gk, "gatekeeper_policy_reloads_total", result="success") or 0.0
    write_atomically(policy, V2)
    assert status(gk, "/reports/a", token) == 403  # nobody told it yet
    assert logged(gk, "SIGHUP: reloading the policy") == []
    gk.process.send_signal(signal.SIGHUP)
    poll(lambda: status(gk, "/reports/a", token) == 200, "SIGHUP loads the new file")
    assert metric(gk, "gatekeeper_policy_reloads_total", result="success") == successes + 1
    assert gk.process.returncode is None  # SIGHUP did not end the process
    assert [e["level"] for e in logged(gk, "SIGHUP: reloading the policy")] == ["info"]
    gk.process.send_signal(signal.SIGHUP)  # unchanged files: the SIGHUP is still seen in the log
    poll(lambda: len(logged(gk, "SIGHUP: reloading the policy")) == 2, "the second SIGHUP is logged")

    write_atomically(policy, BROKEN)  # a refused SIGHUP reload keeps the policy too
    failures = metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0.0
    gk.process.send_signal(signal.SIGHUP)
    poll(lambda: (metric(gk, "gatekeeper_policy_reloads_total", result="failure") or 0) > failures,
         "the refused SIGHUP reload is counted")
    assert status(gk, "/reports/a", token) == 200


# ------------------------------------------------------------------ refusing to start
def run_once(config: dict[str, Any], directory: Path) -> subprocess.CompletedProcess[str]:
    path = directory / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False, cwd=REPO)


@pytest.mark.parametrize(("model", "policy", "where"), [
    (MODEL, BROKEN, "policy.csv:3"),
    (MODEL, V1 + "q, viewer, /x, GET, allow\n", "policy.csv:3"),
    (MODEL.replace("methodMatch(", "methodMatches("), V1, "model.conf:"),
], ids=["a line with a field missing", "an unknown rule type", "an unknown matcher function"])
def test_a_gatekeeper_started_with_a_broken_policy_refuses_to_start(
    issuer: DevIssuer, upstream: Upstream, tmp_path: Path, model: str, policy: str, where: str
) -> None:
    (tmp_path / "model.conf").write_text(model)
    (tmp_path / "policy.csv").write_text(policy)
    config = gatekeeper_config(issuer, upstream.url, policy={
        "model": str(tmp_path / "model.conf"), "policy": str(tmp_path / "policy.csv")})
    result = run_once(config, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert where in output, output


# ------------------------------------------------------------------ open WebSockets follow the policy
def test_an_open_websocket_is_closed_once_the_policy_no_longer_allows_it(
    gatekeeper_factory: Callable[..., Gatekeeper], tmp_path: Path, token: str
) -> None:
    model, policy = policy_dir(tmp_path / "policies", V2)
    gk = gatekeeper_factory(policy={"model": str(model), "policy": str(policy)},
                            websocket_recheck_seconds=1)
    url = "ws://" + gk.url.split("://", 1)[1]

    async def session() -> tuple[int | None, str | None]:
        async with ws_connect(url + "/reports/live", proxy=None, open_timeout=10,
                              additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send("still here?")
            assert await asyncio.wait_for(ws.recv(), 10) == "still here?"
            write_atomically(policy, V1)  # /reports/* is no longer allowed
            with pytest.raises(ConnectionClosed):
                for _ in range(int(RELOAD_TIMEOUT / 0.25)):  # echoes until gatekeeper closes it
                    await ws.send("ping")
                    await asyncio.wait_for(ws.recv(), 10)
                    await asyncio.sleep(0.25)
            return ws.close_code, ws.close_reason

    code, reason = run(session())
    assert code == 1008 and reason == "no_matching_rule"
    log = [json.loads(line) for line in gk.process.output().splitlines() if "no longer allowed" in line]
    assert [entry["reason"] for entry in log] == ["no_matching_rule"]
