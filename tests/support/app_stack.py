"""A framework's recording app (tests/support/apps) with a real gatekeeper in front of it, both
real processes: what the differential tests send through gatekeeper and compare with what the
app says it received."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import ROOT
from tests.support.servers import ProcessHandle, run_process

__all__ = ["recording_app_behind_gatekeeper"]


@contextmanager
def recording_app_behind_gatekeeper(framework: str, base: Path,
                                    config: dict[str, Any]) -> Iterator[Path]:
    """``framework``'s app on the port of ``config["upstream"]`` and gatekeeper run on ``config``
    (written to ``base``); yields the file the app appends a record to for each request."""
    app_port = int(config["upstream"].rsplit(":", 1)[1])
    (base / "gatekeeper.yaml").write_text(yaml.safe_dump(config))
    log = base / "records.jsonl"
    with ExitStack() as processes:
        # Both start at once: the app is waited for once gatekeeper is up.
        app = processes.enter_context(run_process(
            [sys.executable, "-m", "tests.support.apps", framework, str(app_port), str(log)],
            cwd=ROOT))
        processes.enter_context(run_process(
            [sys.executable, "-m", "gatekeeper", "run", "--config", str(base / "gatekeeper.yaml")],
            ready_url=f"http://{config['admin_listen']}/healthz", timeout=30))
        _wait_for_port(app, app_port, 30)
        yield log


def _wait_for_port(process: ProcessHandle, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not listen on {port}:\n{process.output()}") from None
            time.sleep(0.05)
