"""admin: the policy page's access settings — safe defaults, every bad value refused by its key,
the token never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings

TOKEN = "Adm1n-t0ken-" + "x" * 30


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("upstream: http://127.0.0.1:8080\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env or {})
    return caught.value.problems


def test_by_default_only_loopback_peers_are_trusted_and_there_is_no_token() -> None:
    admin = Settings().admin
    assert admin.trusted_peers == ["127.0.0.0/8", "::1/128"]
    assert admin.token is None


def test_a_token_loads_and_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("upstream: http://127.0.0.1:8080\nadmin:\n  token: ${ADMIN_TOKEN}\n"
                    "  trusted_peers: []\n")
    settings = load_settings(path, environ={"ADMIN_TOKEN": TOKEN})
    assert settings.admin.token is not None and settings.admin.token.get_secret_value() == TOKEN
    assert settings.admin.trusted_peers == []
    assert TOKEN not in repr(settings)


@pytest.mark.parametrize(("text", "key"), [
    ("admin: {trusted_peers: [localhost]}\n", "admin.trusted_peers"),
    ("admin: {trusted_peers: ['10.0.0.0/33']}\n", "admin.trusted_peers"),
    ("admin: {token: short-token}\n", "admin.token"),
    ("admin: {token: 'a token with spaces in it, long enough to pass the length'}\n", "admin.token"),
    ("admin: {tokens: [x]}\n", "admin.tokens"),
], ids=["a peer is an IP or a CIDR, not a name", "a CIDR must be valid",
        "a token has at least 32 characters", "a token is visible ASCII without spaces",
        "an unknown admin key is refused"])
def test_bad_admin_values_are_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    found = problems(tmp_path, text)
    assert any(p.startswith(key + ":") for p in found), found


def test_a_refused_token_is_not_echoed(tmp_path: Path) -> None:
    secret = "too-short-secret"
    found = problems(tmp_path, "admin:\n  token: ${ADMIN_TOKEN}\n", env={"ADMIN_TOKEN": secret})
    assert any(p.startswith("admin.token:") for p in found), found
    assert all(secret not in p for p in found), found
