"""The ``tls`` section (gatekeeper/settings/tls.py): certificate files checked at start, as the
listener would load them, each refusal naming its key and the reason — never the key's content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gatekeeper.errors import ConfigError
from gatekeeper.settings.file import load_settings
from tests.support.certs import Issued, TestCA, encrypted_key, write_pair


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def server(ca: TestCA) -> Issued:
    return ca.server()


def config(tmp_path: Path, tls: dict[str, object]) -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump({"tls": tls}))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    return refused.value.problems


def test_a_good_pair_loads(tmp_path: Path, ca: TestCA, server: Issued) -> None:
    cert, key = write_pair(tmp_path, server)
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    settings = load_settings(config(tmp_path, {
        "cert_file": str(cert), "key_file": str(key), "client_ca_file": str(tmp_path / "ca.crt"),
        "client_auth": "principal"}), environ={})
    assert settings.tls is not None and settings.tls.verifies_clients
    assert settings.subject_prefixes() == {"x509": ""}  # the only identity source


def _write(tmp_path: Path, cert: bytes, key: bytes) -> dict[str, object]:
    (tmp_path / "tls.crt").write_bytes(cert)
    (tmp_path / "tls.key").write_bytes(key)
    return {"cert_file": str(tmp_path / "tls.crt"), "key_file": str(tmp_path / "tls.key")}


# (id, what to write given (ca, server, another server): tls section, the expected problem's key
# and a word of its reason)
Case = Callable[[Path, TestCA, Issued], dict[str, object]]
CASES: list[tuple[str, Case, str, str]] = [
    ("a missing certificate file",
     lambda d, ca, s: {"cert_file": str(d / "none.crt"), "key_file": str(write_pair(d, s)[1])},
     "tls.cert_file", "not a readable file"),
    ("a relative path",
     lambda d, ca, s: {"cert_file": "tls.crt", "key_file": str(write_pair(d, s)[1])},
     "tls.cert_file", "absolute path"),
    ("a certificate file holding no PEM",
     lambda d, ca, s: _write(d, b"not a certificate\n", s.key_pem), "tls.cert_file", "no PEM"),
    ("an expired certificate",
     lambda d, ca, s: _write(d, ca.issue("old", server=True, expired=True).cert_pem, s.key_pem),
     "tls.cert_file", "expired"),
    ("the key of another certificate",
     lambda d, ca, s: _write(d, s.cert_pem, ca.server().key_pem), "tls.key_file",
     "is not the key of the certificate"),
    ("a key file holding a certificate",
     lambda d, ca, s: _write(d, s.cert_pem, s.cert_pem), "tls.key_file", "no PEM private key"),
    ("an encrypted key",
     lambda d, ca, s: _write(d, s.cert_pem, encrypted_key(s)), "tls.key_file", "encrypted"),
    ("a CA bundle holding no PEM",
     lambda d, ca, s: {**_write(d, s.cert_pem, s.key_pem), "client_ca_file": str(d / "tls.key")},
     "tls.client_ca_file", "no PEM certificate"),
    ("client_auth without a CA",
     lambda d, ca, s: {**_write(d, s.cert_pem, s.key_pem), "client_auth": "principal"},
     "tls", "need client_ca_file"),
    ("an unknown client_principal",
     lambda d, ca, s: {**_write(d, s.cert_pem, s.key_pem), "client_principal": "issuer"},
     "tls.client_principal", ""),
]


@pytest.mark.parametrize(("build", "key", "reason"), [c[1:] for c in CASES],
                         ids=[f"{c[0]} is refused naming {c[2]}" for c in CASES])
def test_files_that_cannot_serve_are_refused_at_start(tmp_path: Path, ca: TestCA, server: Issued,
                                                      build: Case, key: str, reason: str) -> None:
    found = problems(config(tmp_path, build(tmp_path, ca, server)))
    assert len(found) == 1, found
    assert found[0].split(": ")[0] == key, found
    assert reason in found[0], found
    assert "PRIVATE KEY" not in found[0] and "BEGIN" not in found[0]


def test_certificate_subjects_are_a_name_space_beside_the_issuers(tmp_path: Path,
                                                                   ca: TestCA, server: Issued) -> None:
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    text = {"auth": {"issuers": [{"issuer": "https://idp.example.com", "audience": ["api"]}]},
            "tls": {**_write(tmp_path, server.cert_pem, server.key_pem),
                    "client_ca_file": str(tmp_path / "ca.crt"), "client_auth": "principal"}}
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(text))
    assert load_settings(path, environ={}).subject_prefixes() == {
        "https://idp.example.com": "https://idp.example.com#", "x509": "x509#"}
