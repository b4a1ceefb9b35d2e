"""A program the tests drive that this machine lacks fails the tests that need it with one line
naming the Debian package (tests/support/tools.py): no traceback, no collection error, no skip.

Each case runs pytest in a subprocess on a one-test file that starts the tool through its real
support helper, with a PATH that holds every program of this machine's PATH except that tool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import CHROMIUM, NGINX, NODE, REDIS_SERVER, Tool, find

REPO = Path(__file__).resolve().parents[2]

# (tool, body of the test that needs it, the one line it must fail with)
CASES = [
    pytest.param(CHROMIUM, "from tests.support.browser import chromium_page\n"
                 "    with chromium_page():\n        pass",
                 "chromium not found: apt-get install chromium (or set CHROMIUM_BIN to its path)",
                 id="chromium"),
    pytest.param(REDIS_SERVER, "from tests.support.redis import run_redis\n"
                 "    with run_redis():\n        pass",
                 "redis-server not found: apt-get install redis-server (or set REDIS_SERVER_BIN to its path)",
                 id="redis-server"),
    pytest.param(NGINX, "from tests.support.nginx import run_nginx\n"
                 "    with run_nginx('', tmp_path, 9):\n        pass",
                 "nginx not found: apt-get install nginx-light (or set NGINX_BIN to its path)",
                 id="nginx"),
    pytest.param(NODE, "from tests.support.oidc import run_oidc_provider\n"
                 "    with run_oidc_provider(redirect_uris=['http://127.0.0.1:9/cb']):\n        pass",
                 "node not found: apt-get install nodejs (or set NODE_BIN to its path)",
                 id="node"),
]


def _search_dirs() -> list[Path]:
    entries = [Path(e) for e in os.environ.get("PATH", "").split(os.pathsep) if e]
    return entries + [e.parent / "sbin" for e in entries if e.name == "bin"]


def path_without(tool: Tool, directory: Path) -> str:
    """A PATH of one directory holding a link to every program this machine's PATH (and its sbin
    siblings) finds, except ``tool``'s names."""
    directory.mkdir()
    for source in _search_dirs():
        if not source.is_dir():
            continue
        for program in source.iterdir():
            link = directory / program.name
            if program.name not in tool.candidates and not link.exists() and os.access(program, os.X_OK):
                link.symlink_to(program)
    return str(directory)


def run_pytest_on(body: str, tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_needs.py"
    test.write_text(f"def test_needs(tmp_path):\n    {body}\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", str(test)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)


def environment(path: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_BIN") and not k.startswith("PYTEST")}
    return {**env, "PATH": path, "PYTHONPATH": str(REPO), "COLUMNS": "400"}  # summary lines whole


def assert_fails_with_one_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # 1: a test failed; 2 or more: collection or usage errors
    rows = out.splitlines()
    header = next(i for i, row in enumerate(rows) if row.strip("_ ") == "test_needs")
    report = rows[header + 1:next(i for i in range(header + 1, len(rows)) if rows[i].startswith("="))]
    assert report == [line], out  # the failure's whole report: that line, no traceback
    assert f"FAILED test_needs.py::test_needs - Failed: {line}" in rows, out
    assert "Traceback" not in out and "ERROR" not in out, out


@pytest.mark.parametrize(("tool", "body", "line"), CASES)
def test_a_missing_tool_fails_the_test_with_one_line(tool: Tool, body: str, line: str,
                                                      tmp_path: Path) -> None:
    path = path_without(tool, tmp_path / "bin-without")
    done = run_pytest_on(body, tmp_path, environment(path))
    assert_fails_with_one_line(done, line)


def test_a_wrong_override_names_the_variable(tmp_path: Path) -> None:
    env = {**environment(os.environ.get("PATH", "")), "CHROMIUM_BIN": str(tmp_path / "no-such-chromium")}
    done = run_pytest_on("from tests.support.browser import chromium_page\n"
                         "    with chromium_page():\n        pass", tmp_path, env)
    assert_fails_with_one_line(
        done, f"chromium not found (CHROMIUM_BIN={tmp_path / 'no-such-chromium'} is not an executable): "
              "apt-get install chromium (or set CHROMIUM_BIN to its path)")


def test_missing_node_packages_name_the_npm_command(tmp_path: Path) -> None:
    (tmp_path / "oidc").mkdir()
    done = run_pytest_on("from pathlib import Path\n"
                         "    from tests.support.tools import require_node_packages\n"
                         f"    require_node_packages(Path({str(tmp_path / 'oidc')!r}), 'oidc-provider')",
                         tmp_path, environment(os.environ.get("PATH", "")))
    # cwd is tmp_path, so the directory is shown relative to it, as a developer would type it
    assert_fails_with_one_line(
        done, "oidc/node_modules not found: npm ci --prefix oidc (apt-get install npm; make test does it)")


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("tool", "where"), [
    pytest.param(CHROMIUM, "bin/chromium-browser", id="chromium-browser-on-PATH"),
    pytest.param(CHROMIUM, "bin/google-chrome", id="google-chrome-on-PATH"),
    pytest.param(NGINX, "sbin/nginx", id="nginx-in-sbin-beside-a-PATH-bin"),
    pytest.param(NODE, "bin/nodejs", id="nodejs-on-PATH"),
])
def test_a_tool_is_found_where_the_machine_has_it(tool: Tool, where: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    program = _executable(tmp_path / where)
    (tmp_path / "bin").mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(tool.override, raising=False)
    assert find(tool) == str(program)


def test_the_override_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _executable(tmp_path / "bin" / "chromium")
    chosen = _executable(tmp_path / "elsewhere" / "my-chrome")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("CHROMIUM_BIN", str(chosen))
    assert find(CHROMIUM) == str(chosen)
