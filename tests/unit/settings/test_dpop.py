"""auth.dpop: off by default, safe defaults, every bad value refused at start naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings
from gatekeeper.settings.file import load_settings


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("upstream: http://127.0.0.1:8080\n" + text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


def test_dpop_is_off_and_asymmetric_by_default() -> None:
    dpop = Settings(upstream="http://127.0.0.1:8080").auth.dpop
    assert not dpop.enabled and dpop.replay_store == "memory" and not dpop.require_nonce
    assert not {"none", "HS256"} & set(dpop.algorithms)


@pytest.mark.parametrize(("text", "key"), [
    ("auth: {dpop: {enabled: true, algorithms: [HS256]}}", "auth.dpop.algorithms"),
    ("auth: {dpop: {enabled: true, algorithms: [none]}}", "auth.dpop.algorithms"),
    ("auth: {dpop: {enabled: true, algorithms: []}}", "auth.dpop.algorithms"),
    ("auth: {dpop: {iat_window_seconds: 3600}}", "auth.dpop.iat_window_seconds"),
    ("auth: {dpop: {replay_store: disk}}", "auth.dpop.replay_store"),
    ("auth: {dpop: {nonce_secret_file: /nonexistent/secret}}", "nonce_secret_file"),
    ("workers: 2\nauth: {dpop: {enabled: true}}", "auth.dpop.replay_store"),
    ("workers: 2\nredis: {url: 'redis://127.0.0.1:6379/0'}\n"
     "auth: {dpop: {enabled: true, replay_store: redis, require_nonce: true}}",
     "auth.dpop.nonce_secret_file"),
], ids=["HMAC alg", "alg none", "no alg", "a window of an hour", "an unknown store",
        "an unreadable nonce secret", "a per-process replay cache with two workers",
        "nonces from a per-process secret with two workers"])
def test_bad_dpop_values_are_refused_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    found = problems(tmp_path, text)
    assert any(key in problem for problem in found), found


def test_a_short_nonce_secret_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "nonce"
    secret.write_bytes(b"short")
    found = problems(tmp_path, f"auth: {{dpop: {{nonce_secret_file: {secret}}}}}")
    assert any("fewer than 32 bytes" in problem for problem in found), found
