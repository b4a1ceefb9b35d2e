"""Key reload (gatekeeper/assertion/reload.py): a changed key file — rewritten in place, or a
Kubernetes Secret's ``..data`` link swapped — is loaded and signs at once; a broken one is
refused, logged with its key and reason but never its bytes, and the old key keeps signing."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from gatekeeper.assertion.keys import load_keyring
from gatekeeper.assertion.reload import KeyReloader
from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.settings.assertion import AssertionSettings
from tests.support.assertion import new_key, private_pem, write_private_key
from tests.support.fakes import run


def reloader_for(key_file: Path) -> tuple[KeyReloader, AssertionSigner]:
    settings = AssertionSettings(key_file=key_file, audience="orders", key_check_seconds=0)
    signer = AssertionSigner(settings, load_keyring(settings))
    reloader = KeyReloader(settings, signer)
    run(reloader.start())
    return reloader, signer


def test_a_key_rewritten_in_place_signs_from_the_next_check(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path)
    reloader, signer = reloader_for(path)
    old = signer.keys.signing.kid
    assert run(reloader.check_now()) is False  # nothing changed
    write_private_key(path)  # same size, maybe the same timestamp: the contents differ
    assert run(reloader.check_now()) is True
    assert signer.keys.signing.kid != old
    assert signer.keys.signing.kid in signer.jwks().decode()


def test_a_secret_volume_s_link_swap_is_seen(tmp_path: Path) -> None:
    # The kubelet's layout: key.pem -> ..data/key.pem, ..data -> ..<timestamp>/ swapped atomically.
    first, second = tmp_path / "..2026_12_07_01", tmp_path / "..2026_12_07_02"
    first.mkdir()
    second.mkdir()
    write_private_key(first / "key.pem")
    write_private_key(second / "key.pem")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "key.pem").symlink_to("..data/key.pem")
    reloader, signer = reloader_for(tmp_path / "key.pem")
    old = signer.keys.signing.kid
    (tmp_path / "..data_tmp").symlink_to(second.name)
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert run(reloader.check_now()) is True
    assert signer.keys.signing.kid != old


def test_a_broken_key_is_refused_and_the_old_one_keeps_signing_until_it_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path)
    reloader, signer = reloader_for(path)
    old = signer.keys.signing.kid
    wrong = private_pem(new_key("RS256"))
    path.write_bytes(wrong)
    with caplog.at_level(logging.INFO, logger="gatekeeper.assertion"):
        assert run(reloader.check_now()) is False
        assert run(reloader.check_now()) is False  # the same problem: logged once
    assert signer.keys.signing.kid == old
    (record,) = caplog.records
    assert record.levelname == "ERROR"
    assert record.__dict__["error"] == (f"assertion.key_file: {path}: the key is RSA; "
                                        "assertion.algorithm ES256 needs an EC P-256 key")
    body = wrong.decode().splitlines()[1]
    assert all(body[:32] not in r.getMessage() + str(r.__dict__) for r in caplog.records)
    ready = run(reloader.readiness())
    assert ready.ok and "last reload refused: assertion.key_file" in ready.detail
    caplog.clear()
    write_private_key(path)
    with caplog.at_level(logging.INFO, logger="gatekeeper.assertion"):
        assert run(reloader.check_now()) is True
    assert signer.keys.signing.kid != old
    assert [r.getMessage() for r in caplog.records] == ["assertion keys reloaded"]
    assert "refused" not in run(reloader.readiness()).detail


def test_a_missing_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    write_private_key(path)
    reloader, signer = reloader_for(path)
    old = signer.keys.signing.kid
    path.unlink()
    assert run(reloader.check_now()) is False
    assert signer.keys.signing.kid == old
    assert reloader.last_error is not None and "cannot be read" in reloader.last_error
