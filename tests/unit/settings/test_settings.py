"""Config: every problem at once, with its key path; env expansion and overrides; no secret echoed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings

SECRET = "s3cret-value-of-at-least-32-bytes!"  # session.secret needs 32 bytes

GOOD = """
listen: 127.0.0.1:4180
admin_listen: 127.0.0.1:9901
upstream: http://127.0.0.1:8080
public_paths: ["/public/*", "/favicon.ico"]
auth:
  issuers:
    - issuer: https://idp.example.com/realms/demo
      audience: [my-api]
      algorithms: [RS256, ES256]
session:
  secret: ${SESSION_SECRET}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env or {})
    return caught.value.problems


def test_a_good_file_loads_and_expands_env(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={"SESSION_SECRET": SECRET})
    assert settings.auth.issuers[0].audience == ["my-api"]
    assert [s.get_secret_value() for s in settings.session.secret] == [SECRET]
    assert SECRET not in repr(settings)


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, """
listen: nowhere
upstream: ftp://app
auth:
  leeway_seconds: -5
  issuers:
    - issuer: https://idp.example.com
      algorithms: [HS256]
  token_sources: [query]
  typo_key: 1
session:
  secret: ${MISSING_SECRET}
""")
    joined = "\n".join(found)
    for fragment in ("listen:", "upstream:", "auth.leeway_seconds:", "auth.issuers.0.audience:",
                     "auth.issuers.0.algorithms.0:", "auth.token_sources:", "auth.typo_key: unknown key",
                     "session.secret: environment variable MISSING_SECRET is not set"):
        assert fragment in joined, f"{fragment!r} missing from:\n{joined}"
    assert len(found) >= 8


def test_values_are_never_echoed_in_errors(tmp_path: Path) -> None:
    found = problems(tmp_path, "upstream: http://user:hunter2-secret@example.com/path?x=1\n")
    assert found and all("hunter2-secret" not in p for p in found)


def test_env_overrides_win_over_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={
        "SESSION_SECRET": SECRET,
        "GATEKEEPER_UPSTREAM": "http://127.0.0.1:9999",
        "GATEKEEPER_AUTH__LEEWAY_SECONDS": "5",
        "GATEKEEPER_PUBLIC_PATHS": '["/health"]',
    })
    assert settings.upstream == "http://127.0.0.1:9999"
    assert settings.auth.leeway_seconds == 5
    assert settings.auth.issuers[0].issuer == "https://idp.example.com/realms/demo"
    assert settings.public_paths == ["/health"]


def test_kubernetes_service_links_are_not_config(tmp_path: Path) -> None:
    """A Service named gatekeeper makes the kubelet inject GATEKEEPER_SERVICE_HOST & co.: they
    must not read as unknown config keys (the pod would never start)."""
    settings = load_settings(write(tmp_path, "upstream: http://127.0.0.1:1\n"), environ={
        "GATEKEEPER_SERVICE_HOST": "10.0.0.7", "GATEKEEPER_SERVICE_PORT": "80",
        "GATEKEEPER_SERVICE_PORT_HTTP": "80", "GATEKEEPER_PORT": "tcp://10.0.0.7:80",
        "GATEKEEPER_PORT_80_TCP": "tcp://10.0.0.7:80", "GATEKEEPER_PORT_80_TCP_PROTO": "tcp",
        "GATEKEEPER_PORT_80_TCP_PORT": "80", "GATEKEEPER_PORT_80_TCP_ADDR": "10.0.0.7",
        "GATEKEEPER_METRICS_SERVICE_HOST": "10.0.0.8",
    })
    assert settings.upstream == "http://127.0.0.1:1"


def test_policy_paths_are_next_to_the_config_link_not_its_target(tmp_path: Path) -> None:
    """A ConfigMap volume: gatekeeper.yaml -> ..data/gatekeeper.yaml -> ..2026_11_26/…"""
    real = tmp_path / "..2026_11_26_10_00_00.1" / "gatekeeper.yaml"
    real.parent.mkdir()
    real.write_text("upstream: http://127.0.0.1:1\npolicy: {model: policies/model.conf, "
                    "policy: policies/policy.csv}\n")
    (tmp_path / "..data").symlink_to(real.parent.name)
    (tmp_path / "gatekeeper.yaml").symlink_to("..data/gatekeeper.yaml")
    settings = load_settings(tmp_path / "gatekeeper.yaml", environ={})
    assert settings.policy is not None
    assert settings.policy.model == tmp_path / "policies" / "model.conf"


def test_a_bad_env_override_names_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, "upstream: http://127.0.0.1:1\n",
                     env={"GATEKEEPER_AUTH__LEEWAY_SECONDS": "lots"})
    assert any(p.startswith("auth.leeway_seconds:") for p in found)


@pytest.mark.parametrize(("text", "key"), [
    ("auth:\n  issuers:\n    - {issuer: https://a, audience: [x], algorithms: [none]}\n",
     "auth.issuers.0.algorithms.0"),
    ("headers:\n  X-User: sub\n  x_user: email\n", "headers"),
    ("listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\n", "(top level)"),
    ("public_paths: [public]\n", "public_paths"),
    ("trusted_proxies: [not-an-ip]\n", "trusted_proxies"),
    ("upstream: http://127.0.0.1:8080/app\n", "upstream"),
    ("session:\n  allowed_origins: ['https://a.example/']\n", "session.allowed_origins"),
    ("session:\n  allowed_origins: ['null']\n", "session.allowed_origins"),
    ("session:\n  allowed_origins: ['*']\n", "session.allowed_origins"),
    ("session:\n  allowed_origins: [a.example]\n", "session.allowed_origins"),
], ids=["alg none is refused", "header names that fold together are refused",
        "listeners must differ", "public paths start with a slash", "trusted proxies are IPs",
        "upstream has no path", "an allowed origin has no path", "origin null cannot be allowed",
        "no wildcard origin", "an allowed origin has a scheme"])
def test_invalid_values_are_refused(tmp_path: Path, text: str, key: str) -> None:
    assert any(p.startswith(key + ":") for p in problems(tmp_path, text))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "listen: 1\nauth: [\n")
    assert "line" in found[0]


def test_defaults_match_the_documented_interface() -> None:
    settings = Settings()
    assert settings.listen == "0.0.0.0:4180"
    assert settings.admin_listen == "0.0.0.0:9901"
    assert settings.headers == {"X-Auth-Request-User": "sub", "X-Auth-Request-Email": "email",
                                "X-Auth-Request-Groups": "roles", "X-Auth-Request-Issuer": "iss"}
    assert settings.auth.roles_claims == ["roles", "groups", "realm_access.roles"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper", *args], capture_output=True,
                          text=True, timeout=30, env=env)


def test_check_exits_zero_on_a_good_file(tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(write(tmp_path, GOOD)),
                     env={"SESSION_SECRET": SECRET, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_check_lists_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(write(tmp_path, "listen: x\nupstream: y\nbogus: 1\n")))
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert {line.split(":")[0] for line in lines} == {"listen", "upstream", "bogus"}


def test_run_with_a_bad_config_refuses_before_serving_with_the_same_messages(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: x\nupstream: y\n")
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == run_cli("check", "--config", str(path)).stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


def test_run_refuses_before_importing_the_server() -> None:
    # Refusal "within a second" comes from validating before the heavy imports happen.
    probe = (
        "import sys; from gatekeeper.__main__ import main\n"
        "rc = main(['run', '--config', '/nonexistent.yaml'])\n"
        "print(rc, 'uvicorn' in sys.modules, 'jwt' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["2", "False", "False"]


def test_an_issuer_url_with_an_impossible_port_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "auth:\n  issuers:\n    - {issuer: https://a, audience: [x], "
                                "jwks_uri: 'http://idp:99999/jwks'}\n")
    assert any(p.startswith("auth.issuers.0.jwks_uri:") for p in found)


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Host", "Connection",
                                  "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP", "Forwarded",
                                  "X-Original-URL", "X-HTTP-Method-Override", "X-Request-Id",
                                  "Authorization", "Cookie", "Proxy"])
def test_an_identity_header_cannot_be_one_gatekeeper_strips_or_sets(tmp_path: Path, name: str) -> None:
    # A claim value as Content-Length or Transfer-Encoding would reframe the upstream request;
    # as X-Forwarded-For or X-Original-URL it would be a forwarding claim or a route.
    found = problems(tmp_path, f"headers:\n  {name}: sub\n")
    assert any(p.startswith("headers:") and "strips or sets itself" in p for p in found), found


# -- subject name spaces (issue 11 §1.9) --------------------------------------------------------
TWO = "auth:\n  issuers:\n    - {issuer: https://a.example, audience: [x]%s}\n" \
      "    - {issuer: https://b.example, audience: [x]%s}\n"


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("", "", {"https://a.example": "https://a.example#", "https://b.example": "https://b.example#"}),
    (", subject_prefix: ''", "", {"https://a.example": "", "https://b.example": "https://b.example#"}),
    (", subject_prefix: 'corp:'", ", subject_prefix: 'partner:'",
     {"https://a.example": "corp:", "https://b.example": "partner:"}),
    (", subject_prefix: ''", ", subject_prefix: ''", {"https://a.example": "", "https://b.example": ""}),
], ids=["several issuers are each namespaced by their URL", "one issuer mapped into the plain name space",
        "short prefixes of one's own", "both mapped into the plain name space on purpose"])
def test_each_issuer_gets_its_subject_prefix(tmp_path: Path, a: str, b: str,
                                              expected: dict[str, str]) -> None:
    assert load_settings(write(tmp_path, TWO % (a, b)), environ={}).subject_prefixes() == expected


def test_one_issuer_for_tokens_and_login_is_one_plain_name_space(tmp_path: Path) -> None:
    text = ("auth:\n  issuers:\n    - {issuer: https://a.example, audience: [x]}\n"
            "oidc: {issuer: https://a.example, client_id: c, client_secret: s,"
            " redirect_url: 'https://app/oauth2/callback'}\n"
            "session: {secret: " + "s" * 44 + "}\n")
    assert load_settings(write(tmp_path, text), environ={}).subject_prefixes() == {"https://a.example": ""}


@pytest.mark.parametrize(("text", "words"), [
    (TWO % (", subject_prefix: 'p:'", ", subject_prefix: 'p:x'"), "auth.issuers[1].subject_prefix"),
    (TWO % (", subject_prefix: 'https://b.example#'", ""), "could overlap"),
    (TWO % (", subject_prefix: 'Role:x'", ""), "auth.issuers.0.subject_prefix:"),
    ("auth:\n  issuers:\n    - {issuer: 'https://a.example/#x', audience: [x]}\n", "auth.issuers.0.issuer:"),
    ("auth:\n  issuers:\n    - {issuer: https://a.example, audience: [x], subject_prefix: 'x:'}\n"
     "oidc: {issuer: https://a.example, client_id: c, client_secret: s, subject_prefix: 'y:',"
     " redirect_url: 'https://app/oauth2/callback'}\nsession: {secret: " + "s" * 44 + "}\n",
     "oidc.providers[0].subject_prefix"),
], ids=["a prefix that begins another is refused", "a prefix equal to another issuer's default is refused",
        "a prefix in the roles' name space is refused", "an issuer with a fragment is refused",
        "one issuer with two prefixes is refused"])
def test_subject_prefixes_that_could_mix_identities_are_refused(tmp_path: Path, text: str,
                                                                words: str) -> None:
    assert any(words in p for p in problems(tmp_path, text)), problems(tmp_path, text)
