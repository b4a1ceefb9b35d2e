"""gatekeeper/tls/rotation.py: the certificate rotates under real handshakes (in memory, over
BIOs): new handshakes get the new certificate, a connection already open keeps working, and
files that would not serve never replace the serving ones."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gatekeeper.settings.tls import TlsSettings
from gatekeeper.tls.rotation import RotatingContext
from tests.support.certs import Issued, MemoryLink, SecretVolume, TestCA, write_pair
from tests.support.fakes import FakeClock


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def rotating(cert: Path, key: Path, clock: FakeClock) -> RotatingContext:
    return RotatingContext(TlsSettings(cert_file=cert, key_file=key, reload_check_seconds=1),
                           verify_clients=False, clock=clock)


def settle(clock: FakeClock, rotation: RotatingContext, ca: TestCA) -> MemoryLink:
    """Two checks one interval apart (a change is loaded once it held still), each on a
    handshake; the second handshake's link."""
    clock.advance(1)
    MemoryLink(rotation.context, ca.client_context())
    clock.advance(1)
    return MemoryLink(rotation.context, ca.client_context())


def rewrite(cert: Path, key: Path, issued: Issued) -> None:
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    later = cert.stat().st_mtime_ns + 10**9  # a coarse-mtime filesystem still sees a change
    os.utime(cert, ns=(later, later))
    os.utime(key, ns=(later, later))


def test_rewritten_files_serve_new_handshakes_while_an_open_connection_keeps_working(
        tmp_path: Path, ca: TestCA) -> None:
    first, second = ca.server("first"), ca.server("second")
    cert, key = write_pair(tmp_path, first)
    clock = FakeClock()
    rotation = rotating(cert, key, clock)
    open_link = MemoryLink(rotation.context, ca.client_context())
    assert open_link.served == first.der

    rewrite(cert, key, second)
    clock.advance(1)
    seen_once = MemoryLink(rotation.context, ca.client_context())
    assert seen_once.served == first.der  # a change is loaded once it has held still
    clock.advance(1)
    assert MemoryLink(rotation.context, ca.client_context()).served == second.der
    assert open_link.roundtrip(b"still here") == b"still here"
    assert open_link.served == first.der


def test_a_secret_volume_symlink_swap_is_a_rotation(tmp_path: Path, ca: TestCA) -> None:
    first, second = ca.server("first"), ca.server("second")
    volume = SecretVolume(tmp_path / "secret")
    volume.publish({"tls.crt": first.cert_pem, "tls.key": first.key_pem})
    clock = FakeClock()
    rotation = rotating(volume.path("tls.crt"), volume.path("tls.key"), clock)
    assert MemoryLink(rotation.context, ca.client_context()).served == first.der

    volume.publish({"tls.crt": second.cert_pem, "tls.key": second.key_pem})
    assert settle(clock, rotation, ca).served == second.der


@pytest.mark.parametrize(("bad", "key", "reason"), [
    ("garbage", "tls.cert_file", "no PEM certificate"),
    ("expired", "tls.cert_file", "expired"),
    ("mismatched", "tls.key_file", "is not the key"),
], ids=["a file that is no certificate", "an expired certificate", "a key of another certificate"])
def test_files_that_would_not_serve_leave_the_old_certificate_serving_and_say_why_once(
        tmp_path: Path, ca: TestCA, caplog: pytest.LogCaptureFixture,
        bad: str, key: str, reason: str) -> None:
    first = ca.server("first")
    cert, key_path = write_pair(tmp_path, first)
    clock = FakeClock()
    rotation = rotating(cert, key_path, clock)
    other = ca.server("other")
    if bad == "garbage":
        rewrite(cert, key_path, Issued(b"garbage\n", other.key_pem, other.der))
    elif bad == "expired":
        rewrite(cert, key_path, ca.issue("old", server=True, expired=True))
    else:
        rewrite(cert, key_path, Issued(other.cert_pem, first.key_pem, other.der))
    with caplog.at_level(logging.INFO, logger="gatekeeper.tls"):
        assert settle(clock, rotation, ca).served == first.der
        assert settle(clock, rotation, ca).served == first.der
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert refusals[0].key == key and reason in refusals[0].reason  # type: ignore[attr-defined]
    logged = " ".join(str(v) for r in caplog.records for v in vars(r).values())
    assert "PRIVATE KEY" not in logged and first.key_pem.decode()[40:80] not in logged

    rewrite(cert, key_path, other)  # fixed: the next change is loaded
    assert settle(clock, rotation, ca).served == other.der


def test_touched_files_with_the_same_content_load_nothing_new(
        tmp_path: Path, ca: TestCA, caplog: pytest.LogCaptureFixture) -> None:
    first = ca.server("first")
    cert, key = write_pair(tmp_path, first)
    clock = FakeClock()
    rotation = rotating(cert, key, clock)
    rewrite(cert, key, first)
    with caplog.at_level(logging.INFO, logger="gatekeeper.tls"):
        assert settle(clock, rotation, ca).served == first.der
    assert rotation.current is rotation.context
    assert not [r for r in caplog.records if "loaded" in r.getMessage()]


def test_no_check_runs_between_intervals(tmp_path: Path, ca: TestCA) -> None:
    first, second = ca.server("first"), ca.server("second")
    cert, key = write_pair(tmp_path, first)
    clock = FakeClock()
    rotation = rotating(cert, key, clock)
    rewrite(cert, key, second)
    for _ in range(5):  # handshakes within the interval: no stat, no load
        clock.advance(0.1)
        assert MemoryLink(rotation.context, ca.client_context()).served == first.der
