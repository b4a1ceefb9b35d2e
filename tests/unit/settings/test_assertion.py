"""The assertion section (gatekeeper/settings/assertion.py): what is refused at start, each
problem with its key and reason — the key files' contents at `check` and `run` too, never
their bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings.file import load_settings
from tests.support.assertion import new_key, private_pem, write_private_key

BASE = """
listen: 127.0.0.1:4180
admin_listen: 127.0.0.1:9901
upstream: http://127.0.0.1:8080
"""


def config(tmp_path: Path, assertion: str, extra: str = "") -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(BASE + extra + "assertion:\n" + assertion)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


def test_a_relative_key_file_is_read_from_the_config_file_s_directory(tmp_path: Path) -> None:
    write_private_key(tmp_path / "assertion.pem")
    settings = load_settings(config(tmp_path, "  key_file: assertion.pem\n  audience: orders\n"),
                             environ={})
    assert settings.assertion is not None
    assert settings.assertion.key_file == tmp_path / "assertion.pem"
    assert (settings.assertion.header, settings.assertion.algorithm,
            settings.assertion.ttl_seconds, settings.assertion.issuer) == (
        "X-Auth-Request-Jwt", "ES256", 60, "gatekeeper")


CASES = [
    ("  key_file: missing.pem\n  audience: orders\n", "assertion.key_file: ",
     "missing.pem: no such file (a relative path is read from the config file's directory)"),
    ("  key_file: key.pem\n", "assertion.audience: ", "Field required"),
    ("  key_file: key.pem\n  audience: orders\n  ttl_seconds: 300\n", "assertion.ttl_seconds: ",
     "less than or equal to 60"),
    ("  key_file: key.pem\n  audience: orders\n  algorithm: HS256\n", "assertion.algorithm: ",
     "'ES256'"),
    ("  key_file: key.pem\n  audience: orders\n  claims: {sub: email}\n", "assertion.claims: ",
     "'sub' is a claim gatekeeper writes itself"),
    ("  key_file: key.pem\n  audience: orders\n  header: X-Forwarded-User_\n", "assertion.header: ",
     "not a valid header name"),
    ("  key_file: key.pem\n  audience: orders\n  header: X-Original-URL\n", "assertion: ",
     "header 'X-Original-URL' is a header gatekeeper strips or sets itself"),
    ("  key_file: key.pem\n  audience: orders\n  header: x_auth_request_user\n", "assertion.header: ",
     "not a valid header name"),
    ("  key_file: key.pem\n  audience: orders\n  header: X-AUTH-REQUEST-USER\n", "assertion: ",
     "is also an identity header in `headers`"),
    ("  key_file: key.pem\n  audience: orders\n  published_key_files: [old.pem]\n",
     "assertion.published_key_files: ", "item 0: "),
]


@pytest.mark.parametrize(("assertion", "key", "reason"), [(a, k, r) for a, k, r in CASES],
                         ids=["a missing key file", "no audience", "a ttl over 60 s",
                              "a symmetric algorithm", "a claim that would replace sub",
                              "a header name with a trailing _", "a path-override header",
                              "an identity header name, underscored", "an identity header name, in capitals",
                              "a missing published key"])
def test_a_bad_assertion_section_is_refused_naming_the_key(
    tmp_path: Path, assertion: str, key: str, reason: str,
) -> None:
    write_private_key(tmp_path / "key.pem")
    (problem,) = problems(config(tmp_path, assertion))
    assert problem.startswith(key), problem
    assert reason in problem


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", *args], capture_output=True,
                          text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_key_file_holding_the_wrong_key_is_refused_before_serving(
    tmp_path: Path, command: str,
) -> None:
    pem = private_pem(new_key("RS256"))
    (tmp_path / "key.pem").write_bytes(pem)
    path = config(tmp_path, "  key_file: key.pem\n  audience: orders\n")
    result = run_cli(command, "--config", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"assertion.key_file: {tmp_path / 'key.pem'}: the key is RSA; assertion.algorithm "
            "ES256 needs an EC P-256 key") in result.stderr
    assert pem.decode().splitlines()[1][:32] not in result.stdout + result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


def test_check_passes_with_a_good_key(tmp_path: Path) -> None:
    write_private_key(tmp_path / "key.pem")
    result = run_cli("check", "--config", str(config(tmp_path, "  key_file: key.pem\n  audience: orders\n")))
    assert result.returncode == 0, result.stderr
