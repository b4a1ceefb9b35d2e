"""docs/identity-assertion.md: its config is one gatekeeper accepts and signs with, the error
line it shows is the one gatekeeper prints, its claim table is what the signer writes, and the
README sends readers there. (Its Python example runs in tests/e2e/test_identity_assertion.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest

from gatekeeper.assertion.keys import load_keyring
from gatekeeper.assertion.signer import TYP, AssertionSigner
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from tests.support.assertion import new_key, private_pem, write_private_key
from tests.support.docs import example, load_block, yaml_blocks
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "identity-assertion.md"
TEXT = DOC.read_text(encoding="utf-8")
(BLOCK,) = yaml_blocks(TEXT)
KEY_PATH = "/etc/gatekeeper/assertion/assertion.pem"


def test_the_config_is_accepted_and_signs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "assertion.pem"
    write_private_key(key)
    assert KEY_PATH in BLOCK.text
    block = BLOCK.__class__(BLOCK.line, BLOCK.section, BLOCK.text.replace(KEY_PATH, str(key)),
                            BLOCK.fragment)
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.assertion is not None
    signer = AssertionSigner(settings.assertion, load_keyring(settings.assertion))
    who = Principal("alice", ("viewer",), {"email": "alice@example.com", "org": {"id": "acme"}},
                    "bearer")
    scope = {"method": "GET", "path": "/orders/7", "raw_path": b"/orders/7",
             "query_string": b"expand=items", "headers": [], "client": ("127.0.0.1", 1)}
    _, value = signer.header(who, RequestView(scope, "/orders/7"))
    header = jwt.get_unverified_header(value.decode())
    claims = jwt.decode(value.decode(), options={"verify_signature": False})
    rows = [line.split("|")[1] for line in section("## What the assertion says").splitlines()
            if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`([a-z.]+)`", cell)}
    assert set(claims) == (documented - {"assertion.claims"}) | {"tenant"}
    assert claims["tenant"] == "acme"
    assert header["typ"] == TYP and TYP in TEXT


def section(heading: str) -> str:
    start = TEXT.index(heading + "\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end if end > 0 else None]


def test_the_error_line_shown_is_the_one_gatekeeper_prints(tmp_path: Path) -> None:
    from gatekeeper.errors import ConfigError
    from gatekeeper.settings.assertion import AssertionSettings

    path = tmp_path / "assertion.pem"
    path.write_bytes(private_pem(new_key("RS256")))
    with pytest.raises(ConfigError) as caught:
        load_keyring(AssertionSettings(key_file=path, audience="orders"))
    (problem,) = caught.value.problems
    assert f"  {problem.replace(str(path), KEY_PATH)}\n" in TEXT


def test_the_python_examples_are_marked_for_the_end_to_end_test() -> None:
    assert "jwt.PyJWKClient" in example(TEXT, "verify-python")
    assert "verify_assertion(" in example(TEXT, "verify-flask")


def test_the_readme_links_the_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/identity-assertion.md)" in readme
