"""A listener's certificate, rotated in place: new handshakes get the new one, open connections
keep theirs, and files that would not serve never replace the ones serving.

cert-manager renews a certificate by rewriting its Secret; the kubelet then swaps the volume's
``..data`` symlink, so ``tls.crt`` and ``tls.key`` change together under the same names. The
check runs where the certificate is used: on a handshake (OpenSSL's ClientHello callback, which
Python exposes as ``sni_callback`` and calls with or without SNI), at most once per
``reload_check_seconds``, as one ``stat`` per file (targets of symlinks, so a swap shows). A
changed identity is loaded once it has held still for one more check — a cert written before
its key is not loaded half-way — into a *new* context that this handshake and every later one
switches to (``SSLObject.context``, OpenSSL's ``SSL_set_SSL_CTX``). A connection already open
keeps its session; nothing is closed.

Why not a file watcher (policy/reload.py uses watchfiles): a watcher is a task per worker
process and per listener, started and stopped with each; this needs none, costs a clock read per
handshake, and sees a change exactly when it matters, at the next handshake. Files that are
refused (unreadable, no PEM, expired, key not the certificate's) are logged once per change,
with the key and the reason and never their content; the old certificate keeps serving.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from gatekeeper import logs
from gatekeeper.settings.tls import TlsSettings
from gatekeeper.tls.context import new_context
from gatekeeper.tlsfiles import CertificateFileError, files_signature

log = logging.getLogger("gatekeeper.tls")

Signature = tuple[tuple[int, int, int, int], ...]


class RotatingContext:
    """``context`` is what the listener serves; it stays the listener's context for good, and
    hands each handshake over to the newest certificate's context."""

    def __init__(self, tls: TlsSettings, *, verify_clients: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._tls = tls
        self._verify_clients = verify_clients
        self._clock = clock
        self._interval = tls.reload_check_seconds
        self._paths = (tls.cert_file, tls.key_file, tls.client_ca_file if verify_clients else None)
        self._signature = files_signature(*self._paths)  # before reading: a later change shows
        self.context, self.pair = new_context(tls, verify_clients=verify_clients)
        self._current = self.context
        self._checked_at = clock()
        self._pending: Signature | None = None  # seen changed once; loaded if still so next time
        self._refused: Signature | None = None  # files refused as they are now: not retried
        self.context.sni_callback = self._on_client_hello
        self._loaded("startup")

    @property
    def current(self) -> ssl.SSLContext:
        """The context of the newest certificate (``context`` until a rotation)."""
        return self._current

    def _on_client_hello(self, ssl_object: Any, server_name: str | None,
                         context: ssl.SSLContext) -> None:
        now = self._clock()
        if now - self._checked_at >= self._interval:
            self._checked_at = now
            self.check()
        if self._current is not self.context:
            ssl_object.context = self._current
        return None  # go on with the handshake

    def check(self) -> bool:
        """Load the files if they changed and held still since the last check; True when a new
        certificate now serves. Never raises: a refusal keeps the serving one."""
        signature = files_signature(*self._paths)
        if signature == self._signature or signature == self._refused:
            self._pending = None
            return False
        if signature != self._pending:
            self._pending = signature  # changing now: wait one check for the rest of it
            return False
        self._pending = None
        try:
            context, pair = new_context(self._tls, verify_clients=self._verify_clients)
        except CertificateFileError as exc:
            self._refused = signature
            log.error("TLS certificate files refused; the previous certificate keeps serving",
                      extra={"key": exc.key, "reason": exc.reason,
                             "serving": self.pair.fingerprint})
            return False
        except Exception as exc:  # a bug here must not fail the handshake that noticed it
            self._refused = signature
            log.error("TLS certificate files could not be loaded; the previous certificate keeps "
                      "serving", extra={"error": type(exc).__name__, "serving": self.pair.fingerprint})
            return False
        self._signature = signature
        self._refused = None
        if pair.digest == self.pair.digest:
            return False  # touched, not changed
        self._current, self.pair = context, pair
        self._loaded("file change")
        return True

    def _loaded(self, reason: str) -> None:
        pair = self.pair
        log.info("TLS certificate loaded", extra={
            "reason": reason, "subject": pair.subject, "fingerprint": pair.fingerprint,
            "not_after": pair.not_after.isoformat()})


def listener_context(tls: TlsSettings, verify_clients: bool, _config: Any = None,
                     _default: Any = None, *, log_level: str | None = None) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory`` (a ``functools.partial`` of this: picklable for
    workers > 1, so each process builds its own context, which rotates on its own). The
    rotation lives as long as the context: its callback holds it. ``log_level``: a worker
    builds its context before its app, which is where its logging is set up otherwise."""
    if log_level is not None:
        logs.configure(log_level)
    return RotatingContext(tls, verify_clients=verify_clients).context
