"""docs/security.md stays true: every test it cites exists, and every attack class has a row.

A citation is ``tests/PATH.py::test_name`` in backticks (a parametrized id in brackets is allowed
and ignored). One followed by ``(on BRANCH)`` names a test on a branch not merged yet: it may be
missing here, and once it exists the mark must go — so merging a branch makes this file say which
rows to update, and after that which citations a rename broke. A row without citations says
``(pending)``. Files the page names (``gatekeeper/…``, ``docs/…``, ``deploy/…``, ``tests/data/…``)
must exist, under the same ``(on BRANCH)`` rule.
"""

from __future__ import annotations

import ast
import re
from functools import cache

import pytest

from tests.support.paths import ROOT

DOC = (ROOT / "docs" / "security.md").read_text()
README = (ROOT / "README.md").read_text()

# Issue 11's classes: §1 bypasses, §2 resources, §2b (its bullets, in order).
ISSUE_CLASSES = {
    "§1.1": "forward-auth reads one source", "§1.2": "raw # in the forward-auth URI",
    "§1.3": "every spelling stripped", "§1.4": "casbin exactly or refused",
    "§1.5": "roles withdrawn at refresh", "§1.6": "origin of session requests",
    "§1.7": "cached token ends with its key", "§1.8": "subjects apart from roles",
    "§1.9": "one identity per issuer",
    "§2.1": "request heads bounded", "§2.2": "slow clients dropped",
    "§2.3": "no unbounded state", "§2.4": "no cookie on a cacheable answer",
    "§2.5": "rotation picked up", "§2.6": "no reuse after unasked bytes",
    "§2.7": "control plane bounded", "§2.8": "websocket messages bounded",
    "§2b.1": "sign-out with redis down", "§2b.2": "respawned worker config",
    "§2b.3": "old logout token refused", "§2b.4": "no credentials in logs",
    "§2b.5": "localhost-only warnings",
}
# The classes closed before issue 11 that the threat model must keep naming.
EARLIER_CLASSES = (
    "Token forgery and confusion", "Path differentials", "Method differentials",
    "Request smuggling and framing", "Open redirect", "CSRF and login CSRF", "Session fixation",
    "Cookie bombs and oversized cookies", "Replay", "SSRF via discovery",
    "Identity header spoofing", "Hop-by-hop abuse", "Cookie leakage between users",
)

CITATION = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)(?:\[[^\]`]*\])?`(?:\s*\(on ([\w-]+)\))?")
FILE = re.compile(r"`((?:gatekeeper|docs|deploy|tests/data)/[\w/.-]*)`(?:\s*\(on ([\w-]+)\))?")


def _rows() -> dict[str, tuple[str, str, str]]:
    """The class table: bold name of the class → (class, defence, tests) cells."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in DOC.splitlines():
        if not line.startswith("| **"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        assert len(cells) == 3, f"a row needs class | defence | tests: {line[:80]}"
        name = re.match(r"\*\*(.+?)\*\*", cells[0])
        assert name, line[:80]
        assert name.group(1) not in rows, f"two rows for {name.group(1)}"
        rows[name.group(1)] = (cells[0], cells[1], cells[2])
    return rows


ROWS = _rows()
CITATIONS = {(m.group(1), m.group(2)): m.group(3) for m in CITATION.finditer(DOC)}


@cache
def _defined(path: str) -> frozenset[str]:
    file = ROOT / path
    if not file.is_file():
        return frozenset()
    tree = ast.parse(file.read_text(), filename=path)
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def _exists(path: str, name: str) -> bool:
    return name in _defined(path)


@pytest.mark.parametrize("key", [*ISSUE_CLASSES, *EARLIER_CLASSES],
                         ids=[f"{k} {v}" for k, v in ISSUE_CLASSES.items()] + list(EARLIER_CLASSES))
def test_every_class_has_a_row(key: str) -> None:
    assert key in ROWS, f"docs/security.md has no row for {key}"


@pytest.mark.parametrize("key", list(ROWS))
def test_every_row_cites_a_test_or_says_pending(key: str) -> None:
    tests = ROWS[key][2]
    assert CITATION.search(tests) or tests == "(pending)", f"row {key}: no test and not (pending)"
    assert CITATION.sub("", tests).strip(" ,") in ("", "(pending)"), \
        f"row {key}: something in the tests cell is not a citation: {CITATION.sub('', tests)!r}"


def test_every_double_colon_in_the_page_is_a_well_formed_citation() -> None:
    spans = re.findall(r"`([^`]*::[^`]*)`", DOC)
    assert spans
    bad = [span for span in spans if not CITATION.fullmatch(f"`{span}`")]
    assert not bad, f"not a tests/….py::test_name citation: {bad}"


def test_each_test_and_file_is_marked_the_same_way_wherever_it_is_named() -> None:
    def marks(pattern: re.Pattern[str]) -> dict[str, set[str | None]]:
        seen: dict[str, set[str | None]] = {}
        for m in pattern.finditer(DOC):
            seen.setdefault("::".join(g for g in m.groups()[:-1] if g), set()).add(m.groups()[-1])
        return seen

    mixed = [name for name, found in {**marks(CITATION), **marks(FILE)}.items() if len(found) > 1]
    assert not mixed, f"named both with and without the same (on BRANCH) mark: {mixed}"


MERGED = sorted(key for key, branch in CITATIONS.items() if branch is None)
AWAITING = sorted((key, branch) for key, branch in CITATIONS.items() if branch is not None)


@pytest.mark.parametrize(("path", "name"), MERGED, ids=[f"{p}::{n}" for p, n in MERGED])
def test_a_cited_test_exists(path: str, name: str) -> None:
    assert (ROOT / path).is_file(), f"{path} does not exist"
    assert _exists(path, name), f"{path} defines no {name}"


FILES = {m.group(1): m.group(2) for m in FILE.finditer(DOC)}
FILES_MERGED = sorted(path for path, branch in FILES.items() if branch is None)
FILES_AWAITING = sorted((path, branch) for path, branch in FILES.items() if branch is not None)


@pytest.mark.parametrize("path", FILES_MERGED)
def test_a_file_the_page_names_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/security.md names {path}, which does not exist"


def test_a_mark_awaiting_a_branch_goes_once_the_branch_is_merged() -> None:
    # One test, not one per mark: with every branch merged there is nothing to parametrize.
    merged = [f"{path}::{name} (on {branch})" for (path, name), branch in AWAITING
              if _exists(path, name)]
    merged += [f"{path} (on {branch})" for path, branch in FILES_AWAITING if (ROOT / path).exists()]
    assert not merged, f"these exist now: drop their (on BRANCH) mark in docs/security.md: {merged}"


def test_the_readme_guides_link_the_threat_model_and_the_security_policy() -> None:
    guides = README.split("## Guides", 1)[1].split("\n## ", 1)[0]
    assert "(docs/security.md)" in guides and "(SECURITY.md)" in guides
    assert (ROOT / "SECURITY.md").is_file()
    assert "(../SECURITY.md)" in DOC
