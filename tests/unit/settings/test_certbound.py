"""auth.client_certificate_header (authn/certbound.py): refused at start, naming the key, where it
would do nothing or read a header that carries something else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.errors import ConfigError
from gatekeeper.settings.file import load_settings


def problems(tmp_path: Path, config: dict[str, Any]) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ={})
    return refused.value.problems


@pytest.mark.parametrize(("config", "key", "reason"), [
    ({"auth": {"client_certificate_header": "X-SSL-Client-Cert"}},
     "", "needs trusted_proxies"),
    ({"trusted_proxies": ["10.0.0.1"], "auth": {"client_certificate_header": "Authorization"}},
     "auth.client_certificate_header", "carries something else"),
    ({"trusted_proxies": ["10.0.0.1"], "auth": {"client_certificate_header": "X SSL"}},
     "auth.client_certificate_header", "a header name"),
    ({"trusted_proxies": ["10.0.0.1"], "auth": {"client_certificate_header_format": "der"}},
     "auth.client_certificate_header_format", ""),
], ids=["without trusted_proxies", "Authorization", "not a header name", "unknown format"])
def test_a_certificate_header_that_cannot_work_is_refused(
        tmp_path: Path, config: dict[str, Any], key: str, reason: str) -> None:
    found = problems(tmp_path, config)
    assert any(key in p and reason in p for p in found), found


def test_a_certificate_header_behind_trusted_proxies_loads(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump({"trusted_proxies": ["10.0.0.0/8"], "auth": {
        "client_certificate_header": "X-Forwarded-Client-Cert",
        "client_certificate_header_format": "xfcc"}}))
    settings = load_settings(path, environ={})
    assert settings.header_section().certificate_header == "X-Forwarded-Client-Cert"
