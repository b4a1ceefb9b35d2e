"""The docs name only code that exists: every ``gatekeeper/…`` path, ``gatekeeper.x.y`` module and
``name.py`` file named in README.md, docs/*.md and the package's own docstrings is there, so a
regroup or a rename cannot leave a reader looking for a file that is gone.

A dotted name passes as a module (or a module's attribute), or as a logger name the package
uses (docs/operations.md lists them). Neither docs nor code cite a ticket ("issue 11"): the
tracker is not in the repository, so they say the reason itself.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gatekeeper"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PATH = re.compile(r"(?<![\w./-])gatekeeper/[\w/-]*(?:\.py)?")
DOTTED = re.compile(r"(?<![\w./-])gatekeeper(?:\.[A-Za-z_]\w*)+")
BARE_FILE = re.compile(r"(?<![\w./-])[A-Za-z_]\w*\.py\b")
TICKET = re.compile(r"\b(?:issue\s+#?\d+|the next issue)\b", re.IGNORECASE)
NOT_MODULES = re.compile(r"\.(?:yaml|yml|json|toml|com|example)$")  # gatekeeper.yaml, hosts
LOGGER = re.compile(r"""getLogger\(["'](gatekeeper[\w.]*)["']\)""")


def docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [node for node in ast.walk(tree)
             if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)]
    return "\n".join(doc for node in nodes if (doc := ast.get_docstring(node, clean=False)))


SOURCES: dict[str, str] = {
    **{str(doc.relative_to(ROOT)): doc.read_text(encoding="utf-8") for doc in DOCS},
    **{str(module.relative_to(ROOT)): docstrings(module) for module in sorted(PACKAGE.rglob("*.py"))},
}
TRACKED = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=False).stdout.split() or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")]
BASENAMES = {Path(name).name for name in TRACKED}
LOGGERS = {name for module in PACKAGE.rglob("*.py") for name in LOGGER.findall(module.read_text())}


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def named(pattern: re.Pattern[str], *, code_only: bool = False) -> list[tuple[str, str]]:
    return sorted({(source, name.rstrip("."))
                   for source, text in SOURCES.items() if not (code_only and source.endswith(".md"))
                   for name in pattern.findall(text)})


@pytest.mark.parametrize(("source", "path"), named(PATH), ids=lambda value: value)
def test_a_named_path_exists(source: str, path: str) -> None:
    assert (ROOT / path).exists(), f"{source} names {path}, which does not exist"


@pytest.mark.parametrize(("source", "dotted"), [pair for pair in named(DOTTED)
                                                if not NOT_MODULES.search(pair[1])],
                         ids=lambda value: value)
def test_a_named_module_exists(source: str, dotted: str) -> None:
    assert dotted in LOGGERS or resolves(dotted), f"{source} names {dotted}: no such module or logger"


# Bare file names in the package's docstrings and the README (docs/ also name the reader's own
# files, e.g. Django's manage.py).
@pytest.mark.parametrize(("source", "name"), [pair for pair in named(BARE_FILE)
                                              if not pair[0].startswith("docs/")],
                         ids=lambda value: value)
def test_a_named_file_exists(source: str, name: str) -> None:
    assert name in BASENAMES, f"{source} names {name}: no file of that name in the repository"


def test_the_scan_sees_the_names() -> None:
    # The patterns find what they must, or every test above would pass on nothing.
    assert ("docs/security.md", "gatekeeper/login/state.py") in named(PATH)
    assert any(source.startswith("gatekeeper/") for source, _ in named(BARE_FILE))
    assert {"gatekeeper.edge.gate", "gatekeeper.jwks"} <= LOGGERS


def test_no_doc_docstring_or_comment_cites_a_ticket() -> None:
    texts = {**SOURCES, **{str(m.relative_to(ROOT)): m.read_text() for m in PACKAGE.rglob("*.py")}}
    found = {source: TICKET.findall(text) for source, text in texts.items() if TICKET.search(text)}
    assert not found, f"{found}: say the reason instead, the tracker is not in the repository"
