"""tls: TLS on the public listener (and, when asked, the admin listener), with optional client
certificates (mTLS). The files are checked here, at start, with the very checks a rotation
applies (gatekeeper/tlsfiles.py), so ``gatekeeper check`` refuses what the listener would."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gatekeeper.settings.common import FrozenModel
from gatekeeper.settings.subjects import check_prefix
from gatekeeper.tlsfiles import CertificateFileError, load_ca, load_into, read_leaf

ClientPrincipal = Literal["subject", "subject_cn", "san_uri", "san_dns", "san_email"]

# The pseudo-issuer of certificate subjects in the subject name spaces (settings/subjects.py):
# issuers are http(s) URLs, so it never names one.
CERTIFICATE_ISSUER = "x509"


class TlsSettings(FrozenModel):
    """Absent: plain HTTP (behind a TLS-terminating proxy or a mesh)."""

    cert_file: Path = Field(
        description="Absolute path of the PEM certificate chain, leaf first (a mounted "
        "`kubernetes.io/tls` Secret's `tls.crt`). Re-read when it changes: new handshakes get "
        "the new certificate, open connections keep theirs.")
    key_file: Path = Field(
        description="Absolute path of its unencrypted PEM private key (`tls.key`); never logged.")
    reload_check_seconds: float = Field(
        default=1.0, ge=0.1, le=3600,
        description="At most this often (on a handshake) the files' identity is compared with "
        "the serving one's; a change is loaded once it has held still this long.")
    client_ca_file: Path | None = Field(
        default=None,
        description="Absolute path of the PEM CA bundle that verifies client certificates "
        "(mTLS). A certificate that does not verify fails the handshake.")
    client_certificate: Literal["required", "optional"] = Field(
        default="required",
        description="With `client_ca_file`: `required` = no certificate, no handshake; "
        "`optional` = a client may present none (then it needs a token as usual).")
    client_auth: Literal["claims", "principal"] = Field(
        default="claims",
        description="What a verified certificate does: `claims` = its subject and SANs are "
        "`r.claims.x509.*` of the token's or session's caller, and a request without a token is "
        "anonymous; `principal` = a request with a certificate and no token is authenticated as "
        "the certificate (`client_principal`), `via: certificate`.")
    client_principal: ClientPrincipal = Field(
        default="subject",
        description="With `client_auth: principal`, the certificate field that names the "
        "caller: `subject` (RFC 4514 DN), `subject_cn`, or the one `san_uri` (e.g. a SPIFFE ID), "
        "`san_dns` or `san_email`; none or several of that kind: 401.")
    subject_prefix: str | None = Field(
        default=None,
        description="With `client_auth: principal`: a certificate caller's subject (policy, "
        "revocation list, X-Auth-Request-User) is this prefix + its `client_principal` field. "
        "Default: none when certificates are the only identity source, else `x509#`; `\"\"` "
        "shares the plain name space on purpose.")
    admin: bool = Field(
        default=False,
        description="Serve `admin_listen` with the same certificate too (never asking for a "
        "client certificate: the kubelet's probes have none). Default: the admin port stays plain.")

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _files(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Each file checked as the listener loads it (tlsfiles.py): a bad, expired or
        mismatched certificate or key is refused here, naming its key, not at a handshake."""
        if value is None:
            return None
        if not value.is_absolute():
            raise ValueError("must be an absolute path (a mounted Secret, e.g. /etc/gatekeeper/tls/"
                             f"{'ca.crt' if info.field_name == 'client_ca_file' else 'tls.crt'})")
        if not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        try:
            if info.field_name == "cert_file":
                read_leaf(value.read_bytes(), value, "tls.cert_file",
                          datetime.datetime.now(datetime.UTC))
            elif info.field_name == "key_file":
                cert_file = info.data.get("cert_file")
                if cert_file is not None:  # else its own problem is reported
                    load_into(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_file, value)
            else:
                load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), value.read_bytes(), value)
        except CertificateFileError as exc:
            raise ValueError(exc.reason) from None
        except OSError as exc:
            raise ValueError(f"{value}: cannot be read ({exc.strerror or exc})") from None
        return value

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        return check_prefix(value)

    @model_validator(mode="after")
    def _client_keys_need_a_ca(self) -> TlsSettings:
        if self.client_ca_file is None and ("client_auth" in self.model_fields_set
                                            or "client_certificate" in self.model_fields_set
                                            or "client_principal" in self.model_fields_set):
            raise ValueError("client_certificate, client_auth and client_principal need "
                             "client_ca_file (the CA that verifies client certificates)")
        return self

    @property
    def verifies_clients(self) -> bool:
        return self.client_ca_file is not None
