"""What every settings section shares: the frozen base model, host:port and URL checks."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationInfo,
)

ENV_PREFIX = "GATEKEEPER_"
MIN_SESSION_SECRET_BYTES = 32  # session.secret, revocation.admin_secret

# Asymmetric algorithms only: an HMAC secret cannot come from a JWKS, and "none" is never valid.
AsymmetricAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:4180")
    return value


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _local(host: str) -> str | None:
    """'any' for a wildcard address, 'loopback' for this host's loopback, else None."""
    if host in ("", "*"):
        return "any"
    if host.lower() == "localhost":
        return "loopback"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return "any" if address.is_unspecified else "loopback" if address.is_loopback else None


def same_socket(listen: str, host: str, port: int) -> bool:
    """Would a connection to host:port reach the listener bound to ``listen``?"""
    bound, bound_port = split_host_port(listen)
    if bound_port != port:
        return False
    if bound.lower() == host.lower():
        return True
    # A wildcard listener takes connections to any local address; loopback names one another
    # (localhost, 127.0.0.1, ::1 — a dual-stack resolver may pick either).
    kinds = (_local(host), _local(bound))
    return None not in kinds and ("any" in kinds or kinds == ("loopback", "loopback"))


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    return value


def check_networks(value: list[str]) -> list[str]:
    """IP addresses or CIDRs (trusted proxies, trusted peers)."""
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return value


def readable_config_file(value: Path, info: ValidationInfo) -> Path:
    """A file named in a config file (``load_settings`` passes ``config_dir`` in the context):
    made absolute from the file's directory, and it must be a readable file. Without that
    context (a Settings built in code) the path is kept as given."""
    context = info.context
    if not isinstance(context, dict) or "config_dir" not in context:
        return value
    directory: Path | None = context["config_dir"]
    path = value if directory is None else directory / value
    if not path.is_file():
        where = "" if value.is_absolute() or directory is None else \
            " (a relative path is read from the config file's directory)"
        raise ValueError(f"{path}: {'not a file' if path.exists() else 'no such file'}{where}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: cannot be read (permissions)")
    return path
