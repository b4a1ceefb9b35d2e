"""``gatekeeper check`` and ``gatekeeper run`` warn about each setting that is only safe on
localhost (gatekeeper/settings/localhost.py), naming its key; the config stays valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.settings import Settings
from gatekeeper.settings.localhost import localhost_only_warnings
from tests.support.servers import free_port, run_process

SECRET = "localhost-warnings-secret-0123456789abcdef"


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}", "admin_listen": f"127.0.0.1:{free_port()}",
        "auth": {"issuers": [{"issuer": "https://idp.example.com", "audience": ["api"]}]},
        "session": {"secret": SECRET},
    }
    return {**base, **overrides}


def login(**oidc: Any) -> dict[str, Any]:
    return {"issuer": "https://idp.example.com", "client_id": "gk", "client_secret": "s",
            "redirect_url": "https://app.example.com/oauth2/callback", **oidc}


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("all https", config(oidc=login()), set()),
    ("an http issuer elsewhere", config(auth={"issuers": [{"issuer": "http://idp.example.com",
                                                          "audience": ["api"]}]}),
     {"auth.issuers.0.issuer"}),
    ("an http jwks_uri elsewhere", config(auth={"issuers": [{
        "issuer": "https://idp.example.com", "audience": ["api"],
        "jwks_uri": "http://10.0.0.5/jwks"}]}), {"auth.issuers.0.jwks_uri"}),
    ("an http token-exchange endpoint elsewhere", config(auth={"issuers": [{
        "issuer": "https://idp.example.com", "audience": ["api"], "token_exchange": {
            "client_id": "gk", "client_secret": "s", "token_endpoint": "http://10.0.0.5/token"}}]}),
     {"auth.issuers.0.token_exchange.token_endpoint"}),
    ("an http token-exchange endpoint on loopback", config(auth={"issuers": [{
        "issuer": "https://idp.example.com", "audience": ["api"], "token_exchange": {
            "client_id": "gk", "client_secret": "s", "token_endpoint": "http://127.0.0.1:9/token"}}]}),
     set()),
    ("an http issuer on loopback", config(auth={"issuers": [{"issuer": "http://127.0.0.1:9000",
                                                            "audience": ["api"]}]}), set()),
    ("an http issuer on localhost", config(auth={"issuers": [{"issuer": "http://localhost:9000",
                                                             "audience": ["api"]}]}), set()),
    ("an http issuer on ::1", config(auth={"issuers": [{"issuer": "http://[::1]:9000",
                                                       "audience": ["api"]}]}), set()),
    ("a host that only starts like loopback", config(auth={"issuers": [{
        "issuer": "http://127.0.0.1.example.com", "audience": ["api"]}]}), {"auth.issuers.0.issuer"}),
    ("an http login provider", config(oidc=login(issuer="http://idp.example.com")),
     {"oidc.issuer"}),
    ("an http redirect url (one provider's keys under oidc)",
     config(oidc=login(redirect_url="http://app.example.com/oauth2/callback")),
     {"oidc.redirect_url"}),
    ("an http provider in the providers list", config(oidc={
        "providers": [login(), login(id="second", issuer="http://idp2.example.com")]}),
     {"oidc.providers.1.issuer"}),
    ("an http redirect url for several providers", config(oidc={
        "providers": [{k: v for k, v in login().items() if k != "redirect_url"}],
        "redirect_url": "http://app.example.com/oauth2/callback"}), {"oidc.redirect_url"}),
    ("an http post-logout url", config(oidc=login(post_logout_redirect_url="http://app.example.com/")),
     {"oidc.post_logout_redirect_url"}),
    ("cookie_secure false elsewhere", config(oidc=login(), session={"secret": SECRET,
                                                                    "cookie_secure": False}),
     {"session.cookie_secure"}),
    ("an upstream on another host", config(upstream="http://10.1.2.3:8080"), {"upstream"}),
    ("an upstream named localhost", config(upstream="http://localhost:8080"), set()),
    ("cookie_secure false on localhost", config(
        oidc=login(issuer="http://127.0.0.1:9000", redirect_url="http://localhost:4180/oauth2/callback"),
        session={"secret": SECRET, "cookie_secure": False}), set()),
]


@pytest.mark.parametrize(("data", "keys"), [(d, k) for _, d, k in CASES], ids=[n for n, _, _ in CASES])
def test_each_setting_only_safe_on_localhost_is_warned_about_by_its_key(
    data: dict[str, Any], keys: set[str]
) -> None:
    warnings = localhost_only_warnings(Settings.model_validate(data))
    assert {line.split(":")[0] for line in warnings} == keys


def risky(tmp_path: Path) -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config(
        auth={"issuers": [{"issuer": "http://idp.example.test", "audience": ["api"]}]},
        oidc=login(issuer="https://idp.example.com"), session={"secret": SECRET, "cookie_secure": False})))
    return path


EXPECTED = ["warning: auth.issuers.0.issuer: ", "warning: session.cookie_secure: "]


def test_check_prints_the_warnings_and_still_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gatekeeper", "check", "--config", str(risky(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [line[:len(prefix)] for line, prefix in zip(lines, EXPECTED, strict=True)] == EXPECTED


def test_run_prints_the_same_warnings_before_serving(tmp_path: Path) -> None:
    path = risky(tmp_path)
    port = int(yaml.safe_load(path.read_text())["listen"].rsplit(":", 1)[1])
    with run_process([sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                     ready_port=port, timeout=60) as gk:
        output = gk.output()
    lines = [line for line in output.splitlines() if line.startswith("warning: ")]
    assert [line[:len(prefix)] for line, prefix in zip(lines, EXPECTED, strict=True)] == EXPECTED
