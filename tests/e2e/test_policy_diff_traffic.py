"""`gatekeeper policy diff --traffic` reads the access log a real gatekeeper wrote.

A gatekeeper process serves the default policy; a token holder and an anonymous caller make a
few requests; its output becomes the --traffic file of a diff against a version of the
policy where /api/me needs role:viewer. The caller seen in the log loses it: the diff says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper
from tests.support.paths import ROOT
from tests.support.policy import copy_default_policy
from tests.support.poll import eventually

ME = "p, role:authenticated, /api/me, GET, allow"


def test_a_diff_over_a_real_access_log_names_the_callers_it_saw(
    gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer, tmp_path: Path
) -> None:
    (tmp_path / "old").mkdir()
    gk = gatekeeper_factory(policy=copy_default_policy(tmp_path / "old"))
    token = issuer.mint("carla", audience=AUDIENCE, ttl_seconds=600, claims={"roles": ["editor"]})
    with gk.client() as client:
        assert client.get("/api/me", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/public/logo.png").status_code == 200
    assert eventually(lambda: len(gk.access_log()) >= 2, 10)
    log = tmp_path / "stdout.log"  # everything it printed: access-log lines and the others
    log.write_text(gk.process.output())
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(tmp_path / "old" / "model.conf", new / "model.conf")
    text = (tmp_path / "old" / "policy.csv").read_text()
    assert ME in text
    (new / "policy.csv").write_text(text.replace(ME, "p, role:viewer, /api/me, GET, allow"))
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "policy", "diff", "--config", str(gk.config_path),
         "config", str(new), "--traffic", str(log), "--no-generated", "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads(result.stdout)
    changed = {(c["who"], c["method"], c["path"]) for c in data["changes"]}
    # carla's token held role:editor (so role:viewer), but the log keeps no roles: as logged,
    # carla holds none, and she is the caller the change would refuse.
    assert ("carla (as logged: no token roles)", "GET", "/api/me") in changed
    assert all(c["path"] == "/api/me" and not c["new"]["allowed"] for c in data["changes"])
    assert data["compared"]["traffic"] >= 2
    assert all("not access-log lines" in note for note in data["notes"]), data["notes"]
