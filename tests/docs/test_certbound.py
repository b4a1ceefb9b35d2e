"""The certificate-bound token docs (docs/providers.md): its config (marked a fragment there: it has
no browser login, which every other provider config has) loads as the feature it describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docs import load_block, yaml_blocks
from tests.support.paths import ROOT

SECTION = "Certificate-bound access tokens (mTLS, RFC 8705)"


def test_the_providers_example_reads_the_forwarded_certificate_from_trusted_proxies_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = yaml_blocks((ROOT / "docs" / "providers.md").read_text(encoding="utf-8"))
    (block,) = [b for b in blocks if b.section == SECTION]
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.auth.client_certificate_header == "X-SSL-Client-Cert"
    assert settings.auth.client_certificate_header_format == "pem"
    assert settings.trusted_proxies
    assert settings.header_section().certificate_header == "X-SSL-Client-Cert"
