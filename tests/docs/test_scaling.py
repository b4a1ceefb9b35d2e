"""docs/scaling.md: every whole YAML config in it is one gatekeeper accepts (the real loader), and
the Redis topologies it documents are the ones the config model knows, and its `POST /revoke`
examples are bodies the endpoint accepts."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from gatekeeper.revocation_entry import parse_request
from gatekeeper.subjects import SubjectNamespaces
from tests.support.docs import Block, load_block, yaml_blocks
from tests.support.paths import ROOT

DOC = ROOT / "docs" / "scaling.md"
BLOCKS = yaml_blocks(DOC.read_text(encoding="utf-8"))
CONFIGS = [b for b in BLOCKS if not b.fragment]


@pytest.mark.parametrize("block", CONFIGS, ids=[b.id for b in CONFIGS])
def test_every_config_in_the_scaling_guide_is_accepted(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_block(block, tmp_path, monkeypatch)
    assert settings.uses_redis, "a scaling example that uses no Redis"


def test_the_guide_shows_every_topology() -> None:
    text = "\n".join(b.text for b in CONFIGS)
    for needle in ("redis://", "rediss://", "unix://", "redis+sentinel://", "cluster: true"):
        assert needle in text, needle


def test_every_revoke_example_is_a_body_post_revoke_accepts() -> None:
    # The shell builds each body (date arithmetic, $TOKEN_EXP); the real parser reads it.
    bodies = re.findall(r'^  -d "(.*)"$', DOC.read_text(encoding="utf-8"), re.M)
    assert len(bodies) == 3
    now = time.time()
    # The page's issuer of the `iss` example, beside a main one mapped into the plain name space
    # (whose plain subjects the example without `iss` names): as a config with two would have.
    namespaces = SubjectNamespaces({"https://idp.example.com": "",
                                    "https://partner.example.com": "https://partner.example.com#"})
    for body in bodies:
        echoed = subprocess.run(["bash", "-c", f'echo "{body}"'], capture_output=True, text=True, check=True,
                                env={"PATH": os.environ["PATH"], "TOKEN_EXP": str(int(now) + 600)})
        revocation = parse_request(echoed.stdout.encode(), now, namespaces)
        assert revocation.expires_at > now
