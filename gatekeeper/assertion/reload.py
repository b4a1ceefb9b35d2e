"""Reload the assertion keys when their files change (a rotated Kubernetes Secret).

Polled, not watched: a Secret volume is updated by swapping a ``..data`` symlink, an editor
may write in place, and a timestamp can stay the same across two writes within one clock tick —
so every ``key_check_seconds`` the files (a few hundred bytes each) are read and compared by
their digest, off the event loop. A changed set is loaded and swapped in whole
(``AssertionSigner.use``); a set that does not load is refused, logged with the key and the
reason (never the key's bytes), and the old keys keep signing — the readiness check says so —
until the files are good again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from pathlib import Path

from gatekeeper.assertion.keys import MAX_KEY_FILE_BYTES, load_keyring
from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.errors import ConfigError
from gatekeeper.settings.assertion import AssertionSettings
from gatekeeper.types import Check

log = logging.getLogger("gatekeeper.assertion")

Fingerprint = tuple[bytes | None, ...]


def fingerprint(paths: list[Path]) -> Fingerprint:
    """The SHA-256 of each file's contents (links followed); None for one that cannot be read."""
    out: list[bytes | None] = []
    for path in paths:
        try:
            with path.open("rb") as file:
                out.append(hashlib.sha256(file.read(MAX_KEY_FILE_BYTES + 1)).digest())
        except OSError:
            out.append(None)
    return tuple(out)


class KeyReloader:
    def __init__(self, settings: AssertionSettings, signer: AssertionSigner) -> None:
        self._settings = settings
        self._signer = signer
        self._paths = [settings.key_file, *settings.published_key_files]
        self._seen: Fingerprint | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    async def start(self) -> None:
        """Record the files as loaded at start; poll them from now on (unless turned off)."""
        self._seen = await asyncio.to_thread(fingerprint, self._paths)
        if self._settings.key_check_seconds > 0:
            self._task = asyncio.create_task(self._poll(), name="assertion-keys")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_now(self) -> bool:
        """Load the keys if a file changed since the last good load; True when swapped."""
        seen = await asyncio.to_thread(fingerprint, self._paths)
        if seen == self._seen:
            return False
        try:
            keys = await asyncio.to_thread(load_keyring, self._settings)
        except ConfigError as exc:
            error = "; ".join(exc.problems)
            if error != self.last_error:  # once per new problem, not every poll
                log.error("assertion keys not reloaded: the old keys keep signing",
                          extra={"error": error})
            self.last_error = error
            return False
        self._seen, self.last_error = seen, None
        if keys.kids == self._signer.keys.kids:
            return False  # touched, same keys
        self._signer.use(keys)
        log.info("assertion keys reloaded", extra={"kids": list(keys.kids)})
        return True

    async def readiness(self) -> Check:
        """Ready while a key signs; a refused reload is named (the old keys still sign)."""
        keys = self._signer.keys
        detail = f"signing with {keys.signing.kid}; published {', '.join(keys.kids)}"
        if self.last_error is not None:
            detail += f"; last reload refused: {self.last_error}"
        return Check(True, detail)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._settings.key_check_seconds)
            try:
                await self.check_now()
            except Exception as exc:  # a bug must not end the polling: log the type only
                log.error("assertion key check failed", extra={"error": type(exc).__name__})
