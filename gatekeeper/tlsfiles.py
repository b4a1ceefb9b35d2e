"""The TLS files of a listener, read and checked: the certificate chain, its private key, and the CA
bundle that verifies client certificates. A leaf: the settings check them at start (each problem
naming its key), and the listener reads them again on rotation (tls/rotation.py) with the same
checks, so a file that start-up would refuse never replaces the one serving.

What is refused, and why it is refused rather than served:
- a certificate file holding no PEM certificate, or a leaf certificate that has expired (every
  client that verifies would fail; a rotation to it would turn a working listener into a broken one);
- a key that is not a PEM private key, is encrypted (OpenSSL would prompt on the terminal for a
  password, hanging the start), or does not belong to the leaf certificate;
- a CA bundle with no PEM certificate in it.

Nothing here ever puts key material into a message: the reasons name files and keys only.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


class CertificateFileError(ValueError):
    """A TLS file that cannot serve; ``key`` is the config key naming the file."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ServerPair:
    """What was loaded, for the log line and for telling a real change from a touched file."""

    digest: str  # sha256 over certificate, key and CA bundle bytes: "did the content change?"
    subject: str
    not_after: datetime.datetime
    fingerprint: str  # sha256 of the leaf certificate, hex


def _no_password() -> bytes:
    raise CertificateFileError("tls.key_file", "the key is encrypted: give an unencrypted PEM "
                               "key (a Kubernetes TLS Secret holds one)")


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateFileError(key, f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_leaf(cert_pem: bytes, path: Path, key: str, now: datetime.datetime) -> x509.Certificate:
    """The first certificate of a PEM chain; refused if there is none or it has expired."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateFileError(key, f"{path} holds no PEM certificate") from None
    leaf = chain[0]
    if leaf.not_valid_after_utc <= now:
        raise CertificateFileError(
            key, f"{path}: the certificate expired at {leaf.not_valid_after_utc.isoformat()}")
    return leaf


def load_into(context: ssl.SSLContext, cert_file: Path, key_file: Path,
              ca_file: Path | None = None, *, now: datetime.datetime | None = None) -> ServerPair:
    """Check the files and load them into ``context`` (a fresh one: a failure leaves it unusable,
    never a serving one half-changed). Raises ``CertificateFileError`` naming the key."""
    now = now or datetime.datetime.now(datetime.UTC)
    cert_pem = _read(cert_file, "tls.cert_file")
    key_pem = _read(key_file, "tls.key_file")
    leaf = read_leaf(cert_pem, cert_file, "tls.cert_file", now)
    if b"PRIVATE KEY-----" not in key_pem:
        raise CertificateFileError("tls.key_file", f"{key_file} holds no PEM private key")
    try:
        context.load_cert_chain(cert_file, key_file, password=_no_password)
    except CertificateFileError:
        raise
    except ssl.SSLError as exc:
        reason = exc.reason or ""
        if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in str(exc):
            raise CertificateFileError(
                "tls.key_file", f"{key_file} is not the key of the certificate in tls.cert_file "
                f"({cert_file})") from None
        raise CertificateFileError(
            "tls.key_file", f"{key_file} and {cert_file} cannot be loaded together "
            f"({reason or 'OpenSSL refused them'})") from None
    except OSError as exc:  # gone between the read and the load: a rotation in progress
        raise CertificateFileError("tls.cert_file", f"cannot be read ({exc.strerror or exc})") from None
    ca_pem = b""
    if ca_file is not None:
        ca_pem = _read(ca_file, "tls.client_ca_file")
        load_ca(context, ca_pem, ca_file)
    digest = hashlib.sha256()
    for part in (cert_pem, key_pem, ca_pem):
        digest.update(hashlib.sha256(part).digest())
    fingerprint = leaf.fingerprint(hashes.SHA256()).hex()
    return ServerPair(digest.hexdigest(), leaf.subject.rfc4514_string(), leaf.not_valid_after_utc,
                      fingerprint)


def load_ca(context: ssl.SSLContext, ca_pem: bytes, path: Path) -> None:
    """The CA bundle that verifies client certificates (``tls.client_ca_file``)."""
    try:
        certificates = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise CertificateFileError("tls.client_ca_file", f"{path} holds no PEM certificate") from None
    try:
        context.load_verify_locations(cadata="".join(
            ssl.DER_cert_to_PEM_cert(c.public_bytes(serialization.Encoding.DER))
            for c in certificates))
    except ssl.SSLError as exc:
        raise CertificateFileError("tls.client_ca_file",
                                   f"{path}: OpenSSL refused it ({exc.reason or exc})") from None


def files_signature(*paths: Path | None) -> tuple[tuple[int, int, int, int], ...]:
    """What a rotation changes, cheaply: (device, inode, size, mtime) of each file *after*
    following symlinks — a Kubernetes Secret volume swaps its ``..data`` symlink, so the names
    stay and the targets change. A file that is gone reads as zeros."""
    out = []
    for path in paths:
        if path is None:
            continue
        try:
            st = path.stat()
        except OSError:
            out.append((0, 0, 0, 0))
            continue
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)
