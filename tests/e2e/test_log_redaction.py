"""Credentials never reach a log: a URL's ``user:password@`` and query are redacted in every line,
whichever logger wrote it (httpx logs each request's full URL at INFO). A real gatekeeper process
whose JWKS and upstream URLs carry credentials; its whole output is searched for them.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.logs import JsonFormatter, redact
from tests.conftest import AUDIENCE, Gatekeeper, Upstream

PASSWORD = "pw-" + secrets.token_hex(8)
API_KEY = "key-" + secrets.token_hex(8)
UPSTREAM_PASSWORD = "up-" + secrets.token_hex(8)


def test_urls_with_credentials_are_logged_without_them(
    gatekeeper_factory: Callable[..., Gatekeeper], issuer: DevIssuer, upstream: Upstream,
) -> None:
    host = issuer.issuer.removeprefix("http://")
    gk = gatekeeper_factory(
        log_level="debug",
        upstream=f"http://app:{UPSTREAM_PASSWORD}@127.0.0.1:{upstream.port}",
        auth={"issuers": [{"issuer": issuer.issuer, "audience": [AUDIENCE], "algorithms": ["RS256"],
                           "jwks_uri": f"http://keys:{PASSWORD}@{host}/jwks?api_key={API_KEY}"}],
              "jwks_min_refresh_seconds": 1},
    )
    token = issuer.mint("alice", audience=AUDIENCE)
    assert httpx.get(gk.url + "/x", headers={"authorization": f"Bearer {token}"},
                     trust_env=False).status_code == 200
    output = gk.process.output()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    # URLs with credentials are logged (so this test can see a leak), their credentials are not.
    [ready] = [line for line in lines if line.get("message") == "gatekeeper ready"]  # access lines have none
    assert ready["upstream"] == f"http://***@127.0.0.1:{upstream.port}"
    leaks = [line for line in output.splitlines()
             if any(secret in line for secret in (PASSWORD, API_KEY, UPSTREAM_PASSWORD))]
    assert leaks == []


def test_a_library_s_log_line_is_redacted_by_the_formatter() -> None:
    # httpx's own call: logger.info('HTTP Request: %s %s "%s %d %s"', method, url, ...)
    record = logging.getLogger("httpx").makeRecord(
        "httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s %d %s"',
        ("GET", httpx.URL(f"http://keys:{PASSWORD}@idp/jwks?api_key={API_KEY}"), "HTTP/1.1", 200,
         "OK"), None, extra={"url": httpx.URL(f"https://u:{PASSWORD}@idp/x")})
    line = JsonFormatter().format(record)
    assert PASSWORD not in line and API_KEY not in line
    assert json.loads(line)["message"] == 'HTTP Request: GET http://***@idp/jwks?*** "HTTP/1.1 200 OK"'
    assert json.loads(line)["url"] == "https://***@idp/x"


@pytest.mark.parametrize(("text", "expected"), [
    ("GET http://u:p@h/x?token=t", "GET http://***@h/x?***"),
    ("redis://:hunter2@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
    ("rediss+sentinel://svc:pw@a:26379,b:26379/mymaster", "rediss+sentinel://***@a:26379,b:26379/mymaster"),
    ("a password with an @: https://u:p@ss@h/", "a password with an @: https://***@h/"),
    ("HTTPS://U:P@H/X", "HTTPS://***@H/X"),
    ("'http://u:p@h' \"http://h?code=c\"", "'http://***@h' \"http://h?***\""),
    ("https://idp.example.com/realms/demo", "https://idp.example.com/realms/demo"),
    ("connect to 127.0.0.1:6379 refused", "connect to 127.0.0.1:6379 refused"),
], ids=["user info and query", "a redis password", "sentinel user and password", "an @ in a password",
        "upper case", "quoted urls", "a plain url is kept", "no url"])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
