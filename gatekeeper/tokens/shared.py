"""One JWKS fetch per issuer for all the workers of one gatekeeper (``workers > 1``).

Each worker keeps its own key cache (jwks.py), but its fetches go through a per-issuer lock file
in a directory the supervisor creates for the run (``mkdtemp``: mode 0700, removed at exit), and
each fetch's outcome is left there, next to the lock, for the other workers:

- a worker that asked while another worker's fetch was under way takes that fetch's outcome,
  success or failure (single-flight across processes, as jwks.py does within one);
- a start-up or background refresh takes a document another worker fetched, when it is newer
  than the one in hand and not yet due for its own refresh;
- an unknown kid takes a newer document that holds the kid; and the unknown-kid budget
  (``jwks_min_refresh_seconds``) is shared: made-up kids spread over N workers cost one fetch per
  interval, not N.

Bounded and fail-closed: the lock is waited for at most ``lock_seconds`` (a fetch holding it is
bounded by its own deadlines), after which the refresh fails like a fetch that timed out: the
keys in hand stay, none are invented. A lock held by a worker that died is released by the
kernel (flock). A record that cannot be read is ignored: the worker fetches itself. Only
documents this run's workers fetched from the configured issuer are ever read here, and jwks.py
parses and checks them as it does a document fresh from the issuer.

Times are ``time.monotonic()``: CLOCK_MONOTONIC is one clock for every process of a host.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.clients.controlplane import FetchError

_LOCK_POLL_SECONDS = 0.02
_DUE = 0.9  # the share of its TTL after which a document is due for refresh (as in jwks.py)


@dataclass(frozen=True, slots=True)
class JwksDocument:
    """A JWKS answer as fetched: its body, its Cache-Control, and when its fetch began."""

    body: bytes
    cache_control: str | None
    fetched_at: float

    def holds(self, kid: str) -> bool:
        try:
            keys = json.loads(self.body)["keys"]
            return any(isinstance(k, dict) and k.get("kid") == kid for k in keys)
        except (ValueError, TypeError, KeyError, RecursionError):
            return False


class SharedFetches:
    """The fetches of one issuer's keys, shared by the workers through ``directory``."""

    def __init__(self, directory: Path, issuer: str, *, lock_seconds: float, min_interval: float,
                 ttl: Callable[[str | None], float]) -> None:
        name = hashlib.sha256(issuer.encode()).hexdigest()[:32]
        self._issuer = issuer
        self._lock_path = directory / f"{name}.lock"
        self._record_path = directory / f"{name}.json"
        self._lock_seconds = lock_seconds
        self._min_interval = min_interval
        self._ttl = ttl

    async def fetch(self, download: Callable[[], Awaitable[JwksDocument]], *,
                    held: float | None, kid: str | None) -> JwksDocument | None:
        """The document to use: another worker's, or ``download()``'s (then left for the others).
        ``held``: when the document in hand was fetched (None: none yet); ``kid``: the unknown kid
        this fetch is for, if any. None: nothing newer, and the unknown-kid budget of this
        interval was spent by another worker. Raises FetchError when the fetch this one joined
        failed, or when the lock is not had in time."""
        requested = time.monotonic()
        async with self._locked():
            record = self._read()
            attempt = record.get("attempt")
            document = _document(record.get("document"))
            now = time.monotonic()
            if isinstance(attempt, dict) and _number(attempt.get("finished")) >= requested:
                # Under way when this worker asked: its outcome is this worker's too.
                if not attempt.get("ok") and kid is None:
                    raise FetchError(str(attempt.get("error") or "another worker's fetch failed"))
                if attempt.get("ok") and document is not None and (kid is None or document.holds(kid)):
                    return document
            newer = document is not None and (held is None or document.fetched_at > held)
            if document is not None and newer:
                if kid is None and now < document.fetched_at + _DUE * self._ttl(document.cache_control):
                    return document
                if kid is not None and document.holds(kid):
                    return document
            if kid is not None and now - _number(record.get("kid_fetch")) < self._min_interval:
                return document if newer else None
            return await self._download(download, record, for_kid=kid is not None)

    async def _download(self, download: Callable[[], Awaitable[JwksDocument]],
                        record: dict[str, Any], *, for_kid: bool) -> JwksDocument:
        started = time.monotonic()
        if for_kid:
            record["kid_fetch"] = started
        try:
            document = await download()
        except Exception as exc:
            record["attempt"] = {"started": started, "finished": time.monotonic(), "ok": False,
                                 "error": str(exc)[:300] or type(exc).__name__}
            self._write(record)
            raise
        record["attempt"] = {"started": started, "finished": time.monotonic(), "ok": True}
        record["document"] = {"fetched_at": document.fetched_at,
                              "cache_control": document.cache_control,
                              "body": base64.b64encode(document.body).decode("ascii")}
        self._write(record)
        return document

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self._lock_seconds
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise FetchError("another worker's JWKS fetch did not end in time") from None
                    await asyncio.sleep(_LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _read(self) -> dict[str, Any]:
        try:
            record = json.loads(self._record_path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return {"issuer": self._issuer}
        if not isinstance(record, dict) or record.get("issuer") != self._issuer:
            return {"issuer": self._issuer}
        return record

    def _write(self, record: dict[str, Any]) -> None:
        scratch = self._record_path.with_suffix(".tmp")
        with contextlib.suppress(OSError):  # unwritable: the others fetch themselves
            scratch.write_text(json.dumps(record))
            os.replace(scratch, self._record_path)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("-inf")


def _document(value: Any) -> JwksDocument | None:
    if not isinstance(value, dict):
        return None
    try:
        body = base64.b64decode(value["body"], validate=True)
        cache_control = value.get("cache_control")
        return JwksDocument(body, cache_control if isinstance(cache_control, str) else None,
                            float(value["fetched_at"]))
    except (KeyError, TypeError, ValueError):
        return None
