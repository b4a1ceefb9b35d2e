"""Certificates made in the test, with ``cryptography``: a CA, server certificates for 127.0.0.1,
client certificates with chosen SANs, and the files a Kubernetes TLS Secret volume holds.

    ca = TestCA("Test CA")
    server = ca.issue("gatekeeper", ips=["127.0.0.1"], server=True)
    paths = write_pair(tmp_path, server)          # tls.crt, tls.key
    context = ca.client_context()                 # an ssl client that trusts only this CA
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_NOW = datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes  # the leaf, then the CA (a chain as cert-manager writes tls.crt)
    key_pem: bytes
    der: bytes  # the leaf

    @property
    def fingerprint(self) -> str:
        return x509.load_der_x509_certificate(self.der).fingerprint(hashes.SHA256()).hex()


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption() if password is None
        else serialization.BestAvailableEncryption(password))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, name: str = "Gatekeeper Test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - datetime.timedelta(days=1))
            .not_valid_after(_NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, server: bool = False, organization: str | None = None,
              dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), uris: tuple[str, ...] = (),
              emails: tuple[str, ...] = (), days: float = 10, expired: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.RFC822Name(e) for e in emails]
        start = _NOW - datetime.timedelta(days=3 if expired else 1)
        end = _NOW - datetime.timedelta(days=1) if expired else _NOW + datetime.timedelta(days=days)
        builder = (
            x509.CertificateBuilder().subject_name(_name(common_name, organization))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM) + self.pem, _key_pem(key),
                      cert.public_bytes(serialization.Encoding.DER))

    def server(self, name: str = "gatekeeper", **kwargs: object) -> Issued:
        """A server certificate for 127.0.0.1 and localhost."""
        return self.issue(name, server=True, dns=("localhost",), ips=("127.0.0.1",), **kwargs)  # type: ignore[arg-type]

    def client_context(self, client: Issued | None = None, directory: Path | None = None,
                       **versions: ssl.TLSVersion) -> ssl.SSLContext:
        """A client that trusts only this CA (and presents ``client``, written to ``directory``)."""
        context = ssl.create_default_context(cadata=self.pem.decode("ascii"))
        for attribute, version in versions.items():
            setattr(context, attribute, version)
        if client is not None:
            assert directory is not None
            cert, key = write_pair(directory, client, cert_name="client.crt", key_name="client.key")
            context.load_cert_chain(cert, key)
        return context


def write_pair(directory: Path, issued: Issued, *, cert_name: str = "tls.crt",
               key_name: str = "tls.key") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / cert_name, directory / key_name
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    key.chmod(0o600)
    return cert, key


def encrypted_key(issued: Issued) -> bytes:
    key = serialization.load_pem_private_key(issued.key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _key_pem(key, b"a password")


class SecretVolume:
    """A Kubernetes Secret volume as the kubelet writes it: ``..<timestamp>/`` directories, a
    ``..data`` symlink to the current one, and ``tls.crt`` → ``..data/tls.crt`` (and so on).
    ``publish`` writes a new timestamped directory and swaps ``..data`` atomically (rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._generation = 0

    def publish(self, files: dict[str, bytes]) -> None:
        self._generation += 1
        target = self.directory / f"..2026_12_07_{self._generation:04d}"
        target.mkdir()
        for name, content in files.items():
            (target / name).write_bytes(content)
        staging = self.directory / "..data_tmp"
        os.symlink(target.name, staging)
        os.rename(staging, self.directory / "..data")  # the swap: one rename
        for name in files:
            link = self.directory / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)

    def path(self, name: str) -> Path:
        return self.directory / name



class MemoryLink:
    """A real TLS connection in memory: two SSLObjects over BIOs, handshaken on construction
    (``ssl.SSLError`` when either side refuses). ``client.getpeercert(True)`` is the server's
    certificate as served; ``roundtrip`` carries bytes client → server and back."""

    def __init__(self, server: ssl.SSLContext, client: ssl.SSLContext,
                 server_hostname: str = "localhost") -> None:
        self._c_in, self._c_out, self._s_in, self._s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client.wrap_bio(self._c_in, self._c_out, server_hostname=server_hostname)
        self.server = server.wrap_bio(self._s_in, self._s_out, server_side=True)
        done = {"client": False, "server": False}
        for _ in range(20):
            for name, side in (("client", self.client), ("server", self.server)):
                if not done[name]:
                    try:
                        side.do_handshake()
                        done[name] = True
                    except ssl.SSLWantReadError:
                        pass
            self._pump()
            if all(done.values()):
                return
        raise AssertionError("the handshake did not finish")

    def _pump(self) -> None:
        self._s_in.write(self._c_out.read())
        self._c_in.write(self._s_out.read())

    def roundtrip(self, data: bytes) -> bytes:
        """``data`` to the server, which echoes it back; what the client reads."""
        self.client.write(data)
        self._pump()
        received = self.server.read(65536)
        self.server.write(received)
        self._pump()
        return self.client.read(65536)

    @property
    def served(self) -> bytes:
        der = self.client.getpeercert(binary_form=True)
        assert der is not None
        return der
