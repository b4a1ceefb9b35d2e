"""The programs outside Python that some tests drive, found on the machine, or one line that says
which Debian package to install.

    chromium = require(CHROMIUM)        # a path, or the test fails: "chromium not found: apt-get
                                        # install chromium (or set CHROMIUM_BIN to its path)"

Each tool is looked up when a test needs it, never at import: a machine without nginx still
collects every test, and only the nginx tests fail, each with that one line and no traceback
(``pytest.fail(..., pytrace=False)``; a skip would hide on CI that a part of the suite never ran).
``.ci/run`` installs all of them, so the line is for a developer's machine.

Lookup: ``<NAME>_BIN`` when set (the path of the executable, for a browser elsewhere), else each
candidate name on ``PATH``, then in the ``sbin`` directory beside each ``PATH`` entry that ends in
``bin``: Debian installs nginx in /usr/sbin, which a non-root user's ``PATH`` lacks.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "NGINX", "NODE", "REDIS_CLI", "REDIS_SERVER", "Tool", "find", "require",
           "require_node_packages"]


@dataclass(frozen=True)
class Tool:
    name: str                     # as the line names it
    package: str                  # the Debian package that installs it
    candidates: tuple[str, ...]   # executable names, first found wins
    override: str                 # environment variable holding its path, when set

    def missing(self, detail: str = "not found") -> str:
        return f"{self.name} {detail}: apt-get install {self.package} (or set {self.override} to its path)"


CHROMIUM = Tool("chromium", "chromium",
                ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"), "CHROMIUM_BIN")
NODE = Tool("node", "nodejs", ("node", "nodejs"), "NODE_BIN")
NGINX = Tool("nginx", "nginx-light", ("nginx",), "NGINX_BIN")
REDIS_SERVER = Tool("redis-server", "redis-server", ("redis-server",), "REDIS_SERVER_BIN")
REDIS_CLI = Tool("redis-cli", "redis-tools", ("redis-cli",), "REDIS_CLI_BIN")


def _search_path() -> str:
    entries = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    sbins = [str(Path(entry).parent / "sbin") for entry in entries if Path(entry).name == "bin"]
    return os.pathsep.join(entries + [sbin for sbin in sbins if sbin not in entries])


def find(tool: Tool) -> str | None:
    """The executable's path, or None."""
    given = os.environ.get(tool.override)
    if given:
        return given if os.access(given, os.X_OK) and Path(given).is_file() else None
    path = _search_path()
    for name in tool.candidates:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    return None


def require(tool: Tool) -> str:
    """The executable's path; else the calling test fails with one line naming the package."""
    found = find(tool)
    if found is None:
        given = os.environ.get(tool.override)
        detail = f"not found ({tool.override}={given} is not an executable)" if given else "not found"
        pytest.fail(tool.missing(detail), pytrace=False)
    return found


def require_node_packages(directory: Path, package: str) -> None:
    """``directory``'s npm packages are installed (``package`` is one of them); else one line."""
    if not (directory / "node_modules" / package).is_dir():
        shown = _shown(directory)
        pytest.fail(f"{shown}/node_modules not found: npm ci --prefix {shown} "
                    "(apt-get install npm; make test does it)", pytrace=False)


def _shown(directory: Path) -> str:
    try:
        return str(directory.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(directory)
