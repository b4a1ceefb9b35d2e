"""Config: every problem at once, with its key path; env expansion and overrides; no secret echoed."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings
from tests.support.paths import ROOT

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


@pytest.mark.parametrize("where", ["session.secret", "oidc.client_secret", "redis.password",
                                   "redis.url", "session.redis_url"])
def test_a_secret_is_blanked_even_inside_a_value_quoted_for_another_key(
        tmp_path: Path, where: str) -> None:
    """A secret pasted into a key that holds none (here a path pattern, which problems quote)
    is still not repeated: every secret the config holds is blanked out of every problem."""
    secret = "S3CR3T-paste-value"
    value = f"redis://:{secret}@127.0.0.1:6379/0" if where.endswith("url") else secret
    found = problems(tmp_path, f'public_paths: ["nope-{secret}"]\n',
                     env={"GATEKEEPER_" + where.upper().replace(".", "__"): value})
    assert any(p.startswith("public_paths") for p in found), found
    assert all(secret not in p for p in found), found


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
    (tmp_path / "policies").symlink_to(PACKAGE.parent / "policies")
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
    (TWO % (", subject_prefix: 'p:'", ", subject_prefix: 'p:x'"), "auth.issuers.1.subject_prefix"),
    (TWO % (", subject_prefix: 'https://b.example#'", ""), "could overlap"),
    (TWO % (", subject_prefix: 'Role:x'", ""), "auth.issuers.0.subject_prefix:"),
    ("auth:\n  issuers:\n    - {issuer: 'https://a.example/#x', audience: [x]}\n", "auth.issuers.0.issuer:"),
    ("auth:\n  issuers:\n    - {issuer: https://a.example, audience: [x], subject_prefix: 'x:'}\n"
     "oidc: {issuer: https://a.example, client_id: c, client_secret: s, subject_prefix: 'y:',"
     " redirect_url: 'https://app/oauth2/callback'}\nsession: {secret: " + "s" * 44 + "}\n",
     "auth.issuers.0.subject_prefix and oidc.subject_prefix name the same issuer"),
], ids=["a prefix that begins another is refused", "a prefix equal to another issuer's default is refused",
        "a prefix in the roles' name space is refused", "an issuer with a fragment is refused",
        "one issuer with two prefixes is refused"])
def test_subject_prefixes_that_could_mix_identities_are_refused(tmp_path: Path, text: str,
                                                                words: str) -> None:
    assert any(words in p for p in problems(tmp_path, text)), problems(tmp_path, text)


LOGIN = ("oidc: {issuer: https://a.example, client_id: c, client_secret: s,"
         " redirect_url: 'https://app/oauth2/callback', extra_auth_params: {%s}}\n"
         "session: {secret: " + "s" * 44 + "}\n")


@pytest.mark.parametrize("name", ["state", "nonce", "code_challenge", "code_challenge_method",
                                  "redirect_uri", "client_id", "response_type", "scope",
                                  "response_mode", "request_uri", "Nonce"])
def test_extra_auth_params_may_not_set_the_protocols_own(tmp_path: Path, name: str) -> None:
    found = problems(tmp_path, LOGIN % f"prompt: consent, {name}: x")
    assert [p for p in found if "extra_auth_params" in p and repr(name) in p], found


def test_extra_auth_params_are_kept_in_their_order(tmp_path: Path) -> None:
    text = LOGIN % "prompt: consent, access_type: offline"
    oidc = load_settings(write(tmp_path, text), environ={}).oidc
    assert oidc is not None
    [provider] = oidc.providers
    assert provider.extra_auth_params == {"prompt": "consent", "access_type": "offline"}


PACKAGE = ROOT / "gatekeeper"


def test_no_invariant_rests_on_assert() -> None:
    """``python -O`` removes every ``assert``: an invariant guarded by one is not guarded."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found += [f"{path.relative_to(PACKAGE)}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Assert)]
    assert found == []


@pytest.mark.parametrize(("text", "key"), [
    ("oidc: {issuer: 'https://idp.example', client_id: gk, client_secret: s}\n"
     f"session: {{secret: [{SECRET}]}}\n", "oidc"),
    ("oidc: {issuer: 'https://idp.example', client_id: gk, client_secret: s, "
     "redirect_url: 'https://app.example/oauth2/callback'}\n", "(top level)"),
    ("revocation: {enabled: true}\n", "revocation"),
    ("listen: 127.0.0.1:9000\nadmin_listen: 127.0.0.1:9000\n", "(top level)"),
], ids=["a provider needs a redirect url", "login needs a session secret",
        "revocation needs an admin secret", "the two listeners differ"])
def test_an_invariant_is_refused_alike_under_python_O(tmp_path: Path, text: str, key: str) -> None:
    path = str(write(tmp_path, text))
    env = {"PATH": "/usr/bin:/bin"}
    plain = run_cli("check", "--config", path, env=env)
    optimized = subprocess.run([sys.executable, "-O", "-m", "gatekeeper", "check", "--config", path],
                               capture_output=True, text=True, timeout=30, env=env)
    assert plain.returncode == optimized.returncode == 2, optimized.stderr
    assert optimized.stderr == plain.stderr
    assert f"  {key}:" in optimized.stderr


# -- what a newcomer stumbled on (issue 12 §4) ----------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("upstrem: http://127.0.0.1:1\n", "upstrem: unknown key (did you mean upstream?)"),
    ("auth:\n  leeway_secnds: 3\n", "auth.leeway_secnds: unknown key (did you mean leeway_seconds?)"),
    ("auth:\n  issuers:\n    - {issuer: https://a, audience: [x], algorithm: [RS256]}\n",
     "auth.issuers.0.algorithm: unknown key (did you mean algorithms?)"),
    ("oidc:\n  issuer: https://idp.example\n  client_id: gk\n  client_secret: s\n"
     "  redirect_url: https://app.example/oauth2/callback\n  scops: [openid]\n"
     f"session: {{secret: [{SECRET}]}}\n",
     "oidc.scops: unknown key (did you mean scopes?)"),
    ("rate_limits:\n  - {path: /api/*, limit: 5, window_second: 1}\n",
     "rate_limits.0.window_second: unknown key (did you mean window_seconds?)"),
    ("frobnicate: 1\n", "frobnicate: unknown key"),
], ids=["a top-level key", "a nested key", "a key in a list item", "a provider key in oidc's short form",
        "a rate limit key", "nothing close: no guess"])
def test_a_mistyped_key_gets_the_closest_known_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)


@pytest.mark.parametrize(("env", "expected"), [
    ({"GATEKEEPER_AUTH__LEEWAY_SECONDS": "lots"}, "auth.leeway_seconds: "),
    ({"GATEKEEPER_MAX_CONNECTIONS": "0"}, "max_connections: "),
    ({"GATEKEEPER_AUTH__ISSUERS": '[{"issuer": "https://a"}]'}, "auth.issuers.0.audience: "),
    ({"GATEKEEPER_SESSION__COOKIE_NAM": "x"}, "session.cookie_nam: unknown key"),
], ids=["a value that is not a number", "a value out of range", "a JSON list missing a key",
        "a mistyped key"])
def test_a_problem_set_by_an_environment_variable_names_it(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    (variable,) = env
    found = [p for p in problems(tmp_path, "upstream: http://127.0.0.1:1\n", env=env)
             if p.startswith(expected)]
    assert found and all(p.endswith(f"(set by the environment variable {variable})") for p in found)


def test_a_problem_in_the_file_names_no_variable(tmp_path: Path) -> None:
    found = problems(tmp_path, "max_connections: 0\n", env={"GATEKEEPER_AUTH__LEEWAY_SECONDS": "5"})
    assert found == ["max_connections: Input should be greater than or equal to 1"]


OIDC_SHORT = f"""
oidc:
  issuer: https://idp.example
  client_id: gk
  client_secret: s
  redirect_url: {{redirect}}
  scopes: {{scopes}}
session: {{{{secret: [{SECRET}]}}}}
"""


@pytest.mark.parametrize(("redirect", "scopes", "key"), [
    ("not-a-url", "[openid]", "oidc.redirect_url"),
    ("https://app.example/oauth2/callback", "[profile]", "oidc.scopes"),
], ids=["redirect_url", "scopes"])
def test_oidc_s_short_form_is_reported_with_the_keys_as_written(
    tmp_path: Path, redirect: str, scopes: str, key: str
) -> None:
    found = problems(tmp_path, OIDC_SHORT.format(redirect=redirect, scopes=scopes))
    assert [p.split(":")[0] for p in found] == [key]


def test_the_providers_list_is_reported_with_its_index(tmp_path: Path) -> None:
    found = problems(tmp_path, "oidc:\n  providers:\n    - {issuer: https://idp.example, client_id: gk, "
                               "client_secret: s, redirect_url: nope}\n"
                               f"session: {{secret: [{SECRET}]}}\n")
    assert [p.split(":")[0] for p in found] == ["oidc.providers.0.redirect_url"]


@pytest.mark.parametrize("missing", ["model", "policy"])
def test_a_missing_policy_file_is_reported_with_its_key_among_the_other_problems(
    tmp_path: Path, missing: str
) -> None:
    (tmp_path / "model.conf").write_text("")
    (tmp_path / "policy.csv").write_text("")
    (tmp_path / ("model.conf" if missing == "model" else "policy.csv")).unlink()
    found = problems(tmp_path, "listen: nowhere\npolicy: {model: model.conf, policy: policy.csv}\n")
    assert [p.split(":")[0] for p in found] == ["listen", f"policy.{missing}"]
    assert str(tmp_path) in found[1] and "no such file" in found[1]


def test_policy_files_are_read_from_the_config_file_s_directory(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    for name in ("model.conf", "policy.csv"):
        (tmp_path / "etc" / name).write_text("")
    monkeypatch.chdir(tmp_path)  # a relative path is not read from the working directory
    settings = load_settings(write(tmp_path / "etc", "policy: {model: model.conf, policy: policy.csv}\n"),
                             environ={})
    assert settings.policy is not None and settings.policy.model == tmp_path / "etc" / "model.conf"


def gatekeeper_command(*args: str, cwd: Path, env: dict[str, str] | None = None
                       ) -> subprocess.CompletedProcess[str]:
    """The installed ``gatekeeper`` console script, with no GATEKEEPER_* variables but ``env``'s."""
    script = Path(sys.executable).parent / "gatekeeper"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=30,
                          cwd=cwd, env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_check_without_a_config_file_refuses_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "gatekeeper.yaml").write_text("listen: nowhere\n")  # not read: not named
    result = gatekeeper_command("check", cwd=tmp_path)
    assert result.returncode == 2, result.stdout
    assert "(defaults)" not in result.stdout + result.stderr
    assert "no config file given" in result.stderr
    assert "--config FILE" in result.stderr and "GATEKEEPER_CONFIG" in result.stderr


def test_check_without_a_file_but_with_variables_says_what_it_checked(tmp_path: Path) -> None:
    result = gatekeeper_command("check", cwd=tmp_path,
                                env={"GATEKEEPER_UPSTREAM": "http://127.0.0.1:8081"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: no config file given: the built-in defaults with "
                                    "GATEKEEPER_UPSTREAM are valid")
    bad = gatekeeper_command("check", cwd=tmp_path, env={"GATEKEEPER_UPSTREAM": "ftp://x"})
    assert bad.returncode == 2
    assert "(set by the environment variable GATEKEEPER_UPSTREAM)" in bad.stderr


def test_check_names_the_file_it_checked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = gatekeeper_command("check", "--config", str(path), cwd=tmp_path,
                                env={"SESSION_SECRET": SECRET})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {path} is valid")


def test_version_prints_the_installed_package_version(tmp_path: Path) -> None:
    result = gatekeeper_command("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"gatekeeper {importlib.metadata.version('gatekeeper')}\n"


def test_one_run_reports_a_typo_an_env_override_and_a_missing_policy_file(tmp_path: Path) -> None:
    (tmp_path / "model.conf").write_text("")
    path = write(tmp_path, "upstrem: http://127.0.0.1:1\npolicy: {model: model.conf, policy: rules.csv}\n")
    result = gatekeeper_command("check", "--config", str(path), cwd=tmp_path,
                                env={"GATEKEEPER_LOG_LEVEL": "loud"})
    assert result.returncode == 2
    lines = [line.strip() for line in result.stderr.splitlines()[1:]]
    assert sorted(line.split(":")[0] for line in lines) == ["log_level", "policy.policy", "upstrem"]
    assert any(line.startswith("log_level:") and
               line.endswith("(set by the environment variable GATEKEEPER_LOG_LEVEL)") for line in lines)
    assert "upstrem: unknown key (did you mean upstream?)" in lines


@pytest.mark.parametrize(("listen", "admin", "upstream", "key"), [
    ("127.0.0.1:8080", "127.0.0.1:9901", "http://127.0.0.1:8080", "listen"),
    ("0.0.0.0:8080", "127.0.0.1:9901", "http://127.0.0.1:8080", "listen"),
    ("0.0.0.0:8080", "127.0.0.1:9901", "http://localhost:8080", "listen"),
    ("[::]:8080", "127.0.0.1:9901", "http://127.0.0.1:8080", "listen"),
    ("127.0.0.1:4180", "localhost:8080", "http://127.0.0.1:8080", "admin_listen"),
    ("127.0.0.1:80", "127.0.0.1:9901", "http://127.0.0.1", "listen"),
], ids=["the same address", "a wildcard listener", "localhost and a wildcard",
        "an IPv6 wildcard", "the admin listener", "the upstream's default port 80"])
def test_an_upstream_that_is_gatekeeper_itself_is_refused_naming_both_keys(
    tmp_path: Path, listen: str, admin: str, upstream: str, key: str
) -> None:
    found = problems(tmp_path, f"listen: '{listen}'\nadmin_listen: '{admin}'\nupstream: {upstream}\n")
    assert found == [f"upstream: is gatekeeper's own {key} ({listen if key == 'listen' else admin}): "
                     "every request would come back to gatekeeper; give the app its own port"]


@pytest.mark.parametrize(("listen", "upstream"), [
    ("0.0.0.0:8080", "http://app:8080"),
    ("10.0.0.5:8080", "http://127.0.0.1:8080"),
    ("127.0.0.1:4180", "http://127.0.0.1:8080"),
], ids=["another host on the same port", "another local address", "another port"])
def test_an_upstream_elsewhere_on_the_same_port_is_fine(tmp_path: Path, listen: str, upstream: str) -> None:
    settings = load_settings(write(tmp_path, f"listen: '{listen}'\nupstream: {upstream}\n"), environ={})
    assert settings.upstream == upstream


def test_a_problem_in_a_value_from_a_variable_names_the_variable_not_its_value(tmp_path: Path) -> None:
    found = problems(tmp_path, "upstream: ${APP_URL}\nlisten: ${HOST}:${PORT}\n",
                     env={"APP_URL": "ftp://secret-host", "HOST": "0.0.0.0", "PORT": "x"})
    assert sorted(found) == [
        "listen: must be HOST:PORT, e.g. 0.0.0.0:4180 (from ${HOST}, ${PORT})",
        "upstream: must be http://HOST:PORT (the app on localhost) (from ${APP_URL})"]


def test_an_override_replaces_the_file_s_variable_as_the_source(tmp_path: Path) -> None:
    found = problems(tmp_path, "upstream: ${APP_URL}\n", env={"APP_URL": "http://127.0.0.1:1",
                                                                "GATEKEEPER_UPSTREAM": "ftp://x"})
    assert found == ["upstream: must be http://HOST:PORT (the app on localhost) "
                     "(set by the environment variable GATEKEEPER_UPSTREAM)"]


def test_a_key_yaml_reads_as_another_type_is_named_where_it_sits(tmp_path: Path) -> None:
    """``on:`` is a boolean to YAML: the problem says so at the top level, as a key."""
    found = problems(tmp_path, "upstream: http://127.0.0.1:8080\non: 60\n")
    assert any(p.startswith("(top level): the key") and "quote it" in p for p in found), found
