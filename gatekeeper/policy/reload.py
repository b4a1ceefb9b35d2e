"""The active policy, swapped atomically on change: watch the files, SIGHUP, keep the old on error.

Kubernetes ConfigMap volumes update by swapping a ``..data`` symlink in the mounted directory,
so the watcher listens to the directories holding the files and reloads when the *content*
changes (compared by digest), whatever the filesystem event looked like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import watchfiles

from gatekeeper.metrics import Metrics
from gatekeeper.policy.engine import CompiledPolicy
from gatekeeper.policy.history import ReloadHistory
from gatekeeper.policy.loader import LoadReport, PolicyError, files_digest, load_policy

log = logging.getLogger("gatekeeper.policy")


class PolicyHolder:
    """Holds the one active CompiledPolicy; readers take ``holder.active`` once per decision."""

    def __init__(
        self,
        model_path: Path,
        policy_path: Path,
        metrics: Metrics,
        loader: Callable[[Path, Path], LoadReport] = load_policy,
    ) -> None:
        self.model_path = model_path
        self.policy_path = policy_path
        self._metrics = metrics
        self._loader = loader
        self.active: CompiledPolicy | None = None
        self.loaded_at: float | None = None
        self.last_error: str | None = None
        self.history = ReloadHistory()  # for the policy page: bounded
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    async def reload(self, reason: str) -> bool:
        """Load off the event loop; swap only a fully valid policy. True when swapped."""
        async with self._lock:
            try:
                report = await asyncio.to_thread(self._loader, self.model_path, self.policy_path)
            except Exception as exc:
                # Anything else is a loader bug; it must not end the watch task (no reload
                # would ever run again) nor escape SIGHUP's task: refuse like a bad file.
                problems = exc.problems if isinstance(exc, PolicyError) else [
                    f"{self.policy_path}: cannot be loaded ({type(exc).__name__}: {exc})"]
                self.last_error = problems[0]
                active = self.active
                self.history.record(time.time(), reason, "refused",
                                    active.digest if active else None,
                                    len(active.rules) if active else None, problems)
                self._metrics.policy_reloads.labels(result="failure").inc()
                log.error("policy refused; the previous policy keeps serving",
                          extra={"reason": reason, "problems": problems,
                                 "active_digest": self.active.digest if self.active else None})
                return False
            return self._install(report, reason)

    def _install(self, report: LoadReport, reason: str) -> bool:
        if self.active is not None and report.policy.digest == self.active.digest:
            # Same content: keep the warm decision cache. A refusal reported earlier is
            # over, though: the files on disk are the serving policy again.
            if self.last_error is not None:
                log.info("policy files hold the serving policy again; the refusal is over",
                         extra={"reason": reason, "digest": report.policy.digest})
                self.history.record(time.time(), reason, "restored", self.active.digest,
                                    len(self.active.rules))
            self.last_error = None
            return False
        if self.active is not None:
            self._metrics.policy_active.labels(digest=self.active.digest).set(0)
        self.active = report.policy  # the swap: one assignment, seen whole by readers
        self.loaded_at = time.time()
        self.last_error = None
        self._metrics.policy_reloads.labels(result="success").inc()
        self._metrics.policy_active.labels(digest=report.policy.digest).set(1)
        self._metrics.policy_rules.set(len(report.policy.rules))
        self._metrics.policy_loaded_at.set(self.loaded_at)
        self.history.record(self.loaded_at, reason, "loaded", report.policy.digest,
                            len(report.policy.rules))
        log.info("policy loaded", extra={"reason": reason, "digest": report.policy.digest,
                                         "rules": len(report.policy.rules),
                                         "warnings": report.warnings})
        return True

    async def start(self, *, watch: bool, loaded: LoadReport | None = None) -> None:
        """``loaded``: the policy the CLI already loaded to check it (100,000 rules take seconds);
        used when the files still hold it, else they are loaded again."""
        on_disk = None
        if loaded is not None:
            with contextlib.suppress(PolicyError):  # unreadable now: the reload says why
                on_disk = await asyncio.to_thread(files_digest, self.model_path, self.policy_path)
        if loaded is not None and on_disk == loaded.policy.digest:
            self._install(loaded, "startup")
        else:
            await self.reload("startup")
        if self.active is None:
            raise PolicyError([self.last_error or "policy could not be loaded"])
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        if watch:
            self._watcher = asyncio.create_task(self._watch(), name="policy-watch")

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the policy", extra={"active_digest": self.active.digest
                                                         if self.active else None})
        asyncio.get_running_loop().create_task(self.reload("SIGHUP"))

    async def _watch(self) -> None:
        directories = {self.model_path.resolve().parent, self.policy_path.resolve().parent,
                       self.model_path.absolute().parent, self.policy_path.absolute().parent}
        async for _changes in watchfiles.awatch(*directories, debounce=200, recursive=False,
                                                 force_polling=False):
            await self.reload("file change")

    async def aclose(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
