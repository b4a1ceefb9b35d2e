"""Where the repository's files are, for tests at any depth of the tree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]   # tests/support/paths.py → the repository
DATA = ROOT / "tests" / "data"               # corpora kept in the repo; see tests/data/README.md
