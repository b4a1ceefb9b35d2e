"""With ``workers > 1``, a worker respawned after a crash runs the configuration the others run:
the one validated at start, not the file on disk as it is by then (edited, or broken).

A real gatekeeper with two workers under uvicorn's supervisor; its workers are killed with
SIGKILL and the supervisor starts new ones.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import Gatekeeper


def workers_of(parent: int) -> set[int]:
    """The worker processes uvicorn's supervisor spawned (multiprocessing's spawn_main)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def statuses(gk: Gatekeeper, path: str, count: int = 20) -> set[int]:
    """``count`` requests, each on a new connection (so both workers answer some)."""
    found = set()
    for _ in range(count):
        with httpx.Client(base_url=gk.url, trust_env=False, timeout=10) as client:
            found.add(client.get(path, headers={"connection": "close"}).status_code)
    return found


def serving(gk: Gatekeeper) -> bool:
    try:
        return httpx.get(gk.admin_url + "/healthz", trust_env=False, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("change", ["edited", "broken"], ids=["an edited file", "a broken file"])
def test_respawned_workers_run_the_configuration_validated_at_start(
    gatekeeper_factory: Callable[..., Gatekeeper], change: str,
) -> None:
    gk = gatekeeper_factory(workers=2, public_paths=["/public/*"])
    assert statuses(gk, "/secret/x") == {401}
    wait_for(lambda: len(workers_of(gk.process.pid)) == 2, "two workers")
    first = workers_of(gk.process.pid)

    config = yaml.safe_load(gk.config_path.read_text())
    if change == "edited":  # the file now makes /secret/ public
        gk.config_path.write_text(yaml.safe_dump({**config, "public_paths": ["/public/*", "/secret/*"]}))
    else:
        gk.config_path.write_text("listen: [this is not\n")
    for pid in first:
        os.kill(pid, signal.SIGKILL)

    def respawned() -> bool:
        now = workers_of(gk.process.pid)
        return len(now) == 2 and not now & first and serving(gk)

    wait_for(respawned, "two new workers")
    wait_for(lambda: statuses(gk, "/public/x", 4) == {200}, "the new workers to serve")
    assert statuses(gk, "/secret/x") == {401}
    assert statuses(gk, "/public/x") == {200}
    assert gk.process.returncode is None
