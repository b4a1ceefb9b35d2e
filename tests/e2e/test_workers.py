"""``workers > 1``: real gatekeepers with two workers under gatekeeper's supervisor.

- A worker respawned after a crash runs the configuration the others run: the one validated at
  start, not the file on disk as it is by then (edited, or broken).
- SIGHUP to the main process reloads the policy in every worker, and replaces none of them.
- SIGTERM turns every worker's /readyz to 503 while the workers drain.
- The workers share their JWKS fetches: one at start, one on a key rotation, not one per worker
  (counted by the issuer itself).

Which worker answered a request is read from /proc: the worker holding the server's end of the
test's own connection (nothing in the answer says so).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Gatekeeper, Upstream, gatekeeper_config, served_issuer
from tests.support.fakes import mint
from tests.support.servers import run_process

REPO = Path(__file__).resolve().parents[2]
MODEL = (REPO / "policies" / "model.conf").read_text()
V1 = "p, role:viewer, /docs/*, GET, allow\n"
V2 = V1 + "p, role:viewer, /reports/*, GET, allow\n"


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


# -- which worker holds a connection --------------------------------------------------------------


def _established(local_port: int, remote_port: int) -> set[str]:
    """The established loopback TCP sockets from ``local_port`` to ``remote_port``, as the
    ``socket:[inode]`` names a process's fd links show."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if (state == "01" and int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port):
                found.add(f"socket:[{inode}]")
    return found


def holder(gk: Gatekeeper, server_port: int, client_port: int) -> int | None:
    """The worker holding the server's end of the connection from ``client_port``; None while
    no worker has accepted it yet."""
    sockets = _established(server_port, client_port)
    for pid in workers_of(gk.process.pid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in sockets:
                    return pid
            except OSError:
                continue
    return None


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def answered_by(gk: Gatekeeper, url: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
    """(status, worker) of one request on a new connection, kept open until its holder is read."""
    address = url.removeprefix("http://")
    connection = http.client.HTTPConnection(address.rsplit(":", 1)[0], port_of(address), timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        assert connection.sock is not None
        pid = holder(gk, port_of(address), connection.sock.getsockname()[1])
    finally:
        connection.close()
    assert pid is not None, "no worker holds the connection it answered on"
    return response.status, pid


def every_worker_answers(gk: Gatekeeper, workers: set[int], url: str, path: str,
                         headers: dict[str, str], want: int, *, attempts: int = 200,
                         seconds: float = 60.0) -> None:
    """Ask until each of ``workers`` answered ``want`` the last time it answered (bounded)."""
    latest: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    for _ in range(attempts):
        status, pid = answered_by(gk, url, path, headers)
        assert pid in workers, f"worker {pid} answered: not one of {workers}"
        latest[pid] = status
        if set(latest) == workers and set(latest.values()) == {want}:
            return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"not every worker answered {want}: last answers {latest}")


def logged(gk: Gatekeeper, message: str) -> list[dict[str, Any]]:
    lines = [line for line in gk.process.output().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("message") == message]


# -- SIGHUP ------------------------------------------------------------------------------------------


def test_sighup_reloads_the_policy_in_every_worker_and_replaces_none(
    gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer, tmp_path: Path,
) -> None:
    (tmp_path / "model.conf").write_text(MODEL)
    policy = tmp_path / "policy.csv"
    policy.write_text(V1)
    # No file watching: only the SIGHUP can make a worker read the new file.
    gk = gatekeeper_factory(workers=2, policy={"model": str(tmp_path / "model.conf"),
                                               "policy": str(policy), "watch": False})
    wait_for(lambda: len(workers_of(gk.process.pid)) == 2, "two workers")
    first = workers_of(gk.process.pid)
    viewer = {"Authorization": f"Bearer {mint(issuer, 'bob', claims={'roles': ['viewer']})}"}
    every_worker_answers(gk, first, gk.url, "/reports/a", viewer, 403)

    policy.write_text(V2)
    gk.process.send_signal(signal.SIGHUP)
    every_worker_answers(gk, first, gk.url, "/reports/a", viewer, 200)

    assert workers_of(gk.process.pid) == first
    assert gk.process.returncode is None
    reloads = [e for e in logged(gk, "policy loaded") if e["reason"] == "SIGHUP"]
    assert len(reloads) == 2, gk.process.output()[-3000:]
    assert [sorted(e["workers"]) for e in logged(gk, "SIGHUP: passed on to every worker")] == [
        sorted(first)]


# -- SIGTERM -----------------------------------------------------------------------------------------


def test_sigterm_turns_readiness_off_in_every_worker_while_they_drain(
    gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer, upstream: Upstream,
) -> None:
    gk = gatekeeper_factory(workers=2, drain_seconds=30, upstream_timeout_seconds=30)
    wait_for(lambda: len(workers_of(gk.process.pid)) == 2, "two workers")
    workers = workers_of(gk.process.pid)
    every_worker_answers(gk, workers, gk.admin_url, "/readyz", {}, 200)

    # A slow request in flight on each worker keeps both draining (and their admin listeners
    # up) while /readyz is asked.
    authorization = {"Authorization": f"Bearer {mint(issuer, 'alice')}"}
    listen = port_of(gk.config["listen"])
    held: dict[int, list[int]] = {}
    results: list[int | BaseException] = []
    threads: list[threading.Thread] = []
    before = len(upstream.recorder.by_path("/slow"))

    def finish(connection: http.client.HTTPConnection) -> None:
        try:
            response = connection.getresponse()
            response.read()
            results.append(response.status)
        except BaseException as exc:
            results.append(exc)
        finally:
            connection.close()

    for _ in range(32):  # the kernel picks the worker that accepts: ask until both have one
        if set(held) == workers:
            break
        connection = http.client.HTTPConnection("127.0.0.1", listen, timeout=60)
        connection.request("GET", "/slow?seconds=10", headers=authorization)
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        wait_for(lambda: holder(gk, listen, client_port) is not None, "a worker to accept", 10)  # noqa: B023
        pid = holder(gk, listen, client_port)
        assert pid is not None
        held.setdefault(pid, []).append(client_port)
        threads.append(threading.Thread(target=finish, args=(connection,)))
        threads[-1].start()
    try:
        assert set(held) == workers, f"the kernel gave every slow request to one worker: {held}"
        wait_for(lambda: len(upstream.recorder.by_path("/slow")) >= before + len(threads),
                 "the app to get every /slow", 10)
        gk.process.send_signal(signal.SIGTERM)
        every_worker_answers(gk, workers, gk.admin_url, "/readyz", {}, 503)
        assert len(logged(gk, "stopping: finishing in-flight requests")) == 2
    finally:
        for thread in threads:
            thread.join(30)
    assert results == [200] * len(threads)
    try:
        assert gk.process.proc.wait(60) == 0, gk.process.output()[-3000:]
    except subprocess.TimeoutExpired:
        pytest.fail(f"gatekeeper still running after SIGTERM:\n{gk.process.output()[-3000:]}")


# -- JWKS fetches ------------------------------------------------------------------------------------


def test_the_workers_share_one_jwks_fetch_at_start_and_one_on_a_key_rotation(
    upstream: Upstream, tmp_path: Path,
) -> None:
    with served_issuer() as issuer:  # its own: it counts the fetches of this gatekeeper only
        config = gatekeeper_config(issuer, upstream.url, workers=2)
        path = tmp_path / "gatekeeper.yaml"
        path.write_text(yaml.safe_dump(config))
        admin_url = f"http://{config['admin_listen']}"
        with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                         ready_url=f"{admin_url}/healthz") as handle:
            gk = Gatekeeper(url=f"http://{config['listen']}", admin_url=admin_url,
                            process=handle, config=config, config_path=path)
            wait_for(lambda: len(workers_of(gk.process.pid)) == 2, "two workers")
            workers = workers_of(gk.process.pid)
            before = {"Authorization": f"Bearer {mint(issuer, 'alice')}"}
            every_worker_answers(gk, workers, gk.url, "/x", before, 200)
            assert issuer.fetch_counts["/jwks"] == 1

            issuer.rotate()  # tokens are signed with a kid neither worker has seen
            after = {"Authorization": f"Bearer {mint(issuer, 'alice')}"}
            every_worker_answers(gk, workers, gk.url, "/x", after, 200)
            assert issuer.fetch_counts["/jwks"] == 2
            assert workers_of(gk.process.pid) == workers
