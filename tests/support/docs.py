"""Code blocks of the docs, read as the docs tests read them: each ```yaml block with its line
and section, and a block loaded as a config file by gatekeeper's own loader
(tests/docs/test_providers.py, test_scaling.py, test_sidecar_operations.py)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings

FRAGMENT = "<!-- fragment -->"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening ```yaml, 1-based
    section: str  # the `## ` heading above it
    text: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"line {self.line} ({self.section})"


def yaml_blocks(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    section, last_text = "", ""
    fence: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), 1):
        if fence is None:
            if line.startswith("```"):
                fence, start, body = line[3:].strip(), number, []
                continue
            if line.startswith("## "):
                section = line[3:].strip()
            if line.strip():
                last_text = line.strip()
        elif line.strip() == "```":
            if fence == "yaml":
                blocks.append(Block(start, section, "\n".join(body) + "\n", last_text == FRAGMENT))
            fence, last_text = None, ""
        else:
            body.append(line)
    assert fence is None, f"the code block opened on line {start} is never closed"
    return blocks


def example(markdown: str, name: str) -> str:
    """The code block right after ``<!-- example: NAME -->``: code a docs page shows and a test
    runs as it is (the Python of docs/identity-assertion.md)."""
    lines = markdown.splitlines()
    start = lines.index(f"<!-- example: {name} -->") + 1
    assert lines[start].startswith("```"), f"example {name}: no code block right after its marker"
    end = lines.index("```", start + 1)
    return "\n".join(lines[start + 1:end]) + "\n"


def load_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The block as a config file, with every ${VAR} it names set (long enough for a secret)."""
    for name in list(os.environ):
        if name.startswith("GATEKEEPER_"):
            monkeypatch.delenv(name)  # the developer's own overrides must not leak in
    for name in set(ENV_REF.findall(block.text)):
        monkeypatch.setenv(name, f"{name.lower()}-{'0' * 40}")
    path = tmp_path / "config.yaml"
    path.write_text(block.text, encoding="utf-8")
    return load_settings(path)
