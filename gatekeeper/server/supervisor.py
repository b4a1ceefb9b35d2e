"""The processes that serve: one uvicorn server, or (``workers > 1``) a supervisor and its workers.

What a signal means is the same whatever the number of workers:

- SIGTERM (or SIGINT): stop accepting, let in-flight requests finish, exit 0 — and ``/readyz``
  answers 503 meanwhile, in every worker: each worker runs a ``DrainingServer``, which tells the
  app it is draining (``Drainable``) when the supervisor passes the SIGTERM on.
- SIGHUP: reload the policy, in place. uvicorn's own supervisor replaces every worker on SIGHUP
  (each new one loading everything afresh, dropping its caches and connections); ours passes the
  signal on to each worker instead, whose policy holder reloads the files (policy/reload.py).

The rest (spawning, the health pings, replacing a worker that died, stopping for good when a
worker fails at start-up) is uvicorn's ``Multiprocess``, with our worker class.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from socket import socket
from typing import Any, Protocol, runtime_checkable

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("gatekeeper")


@runtime_checkable
class Drainable(Protocol):
    """An app that can be told it is draining (its readiness then fails)."""

    def start_draining(self) -> None: ...


class DrainingServer(uvicorn.Server):
    """SIGTERM means "stop accepting, finish in-flight requests, exit 0" for a sidecar. uvicorn
    drains, then re-raises the signal so the process dies by it; a clean exit is what
    Kubernetes and supervisors expect after a graceful stop.

    On the first signal the app the server runs is told it is draining (``Drainable``)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        first = not self.should_exit  # a second signal makes uvicorn stop at once
        if first:
            log.info("stopping: finishing in-flight requests",
                     extra={"signal": signal.Signals(sig).name,
                            "drain_seconds": self.config.timeout_graceful_shutdown})
        super().handle_exit(sig, frame)
        if first:
            self._start_draining()  # /readyz turns 503 at once, while in-flight requests finish
        if sig == signal.SIGTERM and sig in self._captured_signals:
            self._captured_signals.remove(sig)

    def _start_draining(self) -> None:
        app = getattr(self.config, "loaded_app", None)  # set once the server has loaded it
        if isinstance(app, Drainable):
            app.start_draining()


class WorkerProcess(Process):
    """One worker: a ``DrainingServer``, deaf to SIGHUP until its app takes the signal over."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server

    def target(self, sockets: list[socket] | None = None) -> None:  # runs in the worker
        # A new process starts with SIGHUP's default action, which ends it: a SIGHUP passed on
        # while this worker still starts must not kill it. The policy holder installs its own
        # handler during the lifespan start-up (app.py).
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        super().target(sockets)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, with ``WorkerProcess`` workers and SIGHUP passed on to them."""

    def _new_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.config, self.sockets)
        worker.start()
        return worker

    def init_processes(self) -> None:
        self.processes = [self._new_worker() for _ in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        """Replace a worker that died or stopped answering pings; stop for good when one failed
        at start-up (a broken config or a port in use fails every new worker the same way)."""
        for index, worker in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if worker.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            worker.kill()
            worker.join()
            if worker.exitcode == STARTUP_FAILURE:
                logging.getLogger("uvicorn.error").error(
                    f"Child process [{worker.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            logging.getLogger("uvicorn.error").info(f"Child process [{worker.pid}] died")
            self.processes[index] = self._new_worker()

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self.processes.append(self._new_worker())

    def handle_hup(self) -> None:
        if self.should_exit.is_set():
            return  # stopping: a worker that has put its handler away would die of it
        pids = [worker.pid for worker in self.processes if worker.pid is not None]
        log.info("SIGHUP: passed on to every worker", extra={"workers": pids})
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # died just now: its successor loads afresh
                os.kill(pid, signal.SIGHUP)
