"""The ``cors`` rules: a bad one is refused at start, naming its key and the reason; a good one
loads in the form the runtime compares (methods upper case, header names lower case)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gatekeeper.errors import ConfigError
from gatekeeper.settings.file import load_settings


def problems(tmp_path: Path, rules: list[dict[str, object]]) -> list[str]:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump({"cors": rules}))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


def rule(**fields: object) -> dict[str, object]:
    return {"paths": ["/api/*"], "allowed_origins": ["https://app.example.com"], **fields}


# (name, the rule, the key named, words of the reason)
REFUSED: list[tuple[str, dict[str, object], str, str]] = [
    ("credentials with any origin", rule(allowed_origins=["*"], allow_credentials=True),
     "cors.0.allow_credentials", "cannot go with allowed_origins '*'"),
    ("credentials with null", rule(allowed_origins=["null"], allow_credentials=True),
     "cors.0.allow_credentials", "'null'"),
    ("an origin with a path", rule(allowed_origins=["https://app.example.com/"]),
     "cors.0.allowed_origins", "has a path"),
    ("an origin with a longer path", rule(allowed_origins=["https://app.example.com/app"]),
     "cors.0.allowed_origins", "has a path"),
    ("an origin with user info", rule(allowed_origins=["https://u@app.example.com"]),
     "cors.0.allowed_origins", "user info"),
    ("a host without a scheme", rule(allowed_origins=["app.example.com"]),
     "cors.0.allowed_origins", "is not an origin"),
    ("another scheme", rule(allowed_origins=["ftp://app.example.com"]),
     "cors.0.allowed_origins", "is not an origin"),
    ("a port out of range", rule(allowed_origins=["https://app.example.com:99999"]),
     "cors.0.allowed_origins", "is not an origin"),
    ("a raw IDN host", rule(allowed_origins=["https://bücher.example"]),
     "cors.0.allowed_origins", "punycode"),
    ("a wildcard that is no whole label", rule(allowed_origins=["https://*app.example.com"]),
     "cors.0.allowed_origins", "whole left-most label"),
    ("a wildcard over a top-level domain", rule(allowed_origins=["https://*.com"]),
     "cors.0.allowed_origins", "two labels or more"),
    ("a star beside other origins", rule(allowed_origins=["*", "https://app.example.com"]),
     "cors.0.allowed_origins", "stands alone"),
    ("an origin twice (default port written out)",
     rule(allowed_origins=["https://app.example.com", "https://app.example.com:443"]),
     "cors.0.allowed_origins", "listed twice"),
    ("a star for methods", rule(allowed_methods=["*"]), "cors.0.allowed_methods", "list the methods"),
    ("a method that is no token", rule(allowed_methods=["GET POST"]), "cors.0.allowed_methods",
     "not an HTTP method"),
    ("a star for request headers", rule(allowed_headers=["*"]), "cors.0.allowed_headers",
     "list the header names"),
    ("a header name with a colon", rule(exposed_headers=["X-A:"]), "cors.0.exposed_headers",
     "not a header name"),
    ("a path pattern with a star inside", rule(paths=["/api/*/x"]), "cors.0.paths", "only at the end"),
    ("a path that is not canonical", rule(paths=["/api/../admin/*"]), "cors.0.paths", "not a canonical"),
    ("no paths", rule(paths=[]), "cors.0.paths", "at least 1"),
    ("a max age over a day", rule(max_age_seconds=86401), "cors.0.max_age_seconds", "86400"),
    ("an unknown key", rule(allowed_origin=["https://a.example"]), "cors.0.allowed_origin",
     "allowed_origins"),
]


@pytest.mark.parametrize(("given", "key", "words"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_a_bad_rule_is_refused_naming_its_key_and_the_reason(
    tmp_path: Path, given: dict[str, object], key: str, words: str,
) -> None:
    found = problems(tmp_path, [given])
    assert any(p.startswith(key + ":") and words in p for p in found), found


def test_a_rule_an_earlier_one_covers_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, [rule(paths=["/api/*"]), rule(paths=["/api/v2/*", "/api/x"])])
    assert any(p.startswith("cors:") and "item 1" in p and "never applies" in p for p in found), found


def test_a_good_rule_loads_in_the_form_compared_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump({"cors": [
        rule(allowed_origins=["https://app.example.com", "https://*.example.org:8443", "null"],
             allowed_methods=["get", "Post"], allowed_headers=["Content-Type"],
             exposed_headers=["X-Request-Id"]),
        rule(paths=["/*"], allowed_origins=[]),
    ]}))
    settings = load_settings(path, environ={})
    first, catch_all = settings.cors
    assert first.allowed_methods == ["GET", "POST"]
    assert first.allowed_headers == ["content-type"] and first.exposed_headers == ["x-request-id"]
    assert first.max_age_seconds == 600 and first.allow_credentials is False
    assert catch_all.allowed_origins == [] and catch_all.allowed_methods == ["GET", "HEAD"]
