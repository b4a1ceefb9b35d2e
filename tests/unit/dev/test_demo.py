"""`gatekeeper demo` — the newcomer's first minute: it must show an allowed and a denied request."""

from __future__ import annotations

import subprocess
import sys

from gatekeeper.dev.login import DEMO_USERS
from tests.support.servers import free_port


def test_demo_self_check_shows_allowed_and_denied_requests_and_a_browser_login() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gatekeeper", "demo", "--check",
         "--port", str(free_port()), "--admin-port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    allowed = [line for line in lines if line.strip().startswith("200  GET /hello")
               and "browser login" not in line]
    browser = [line for line in lines if "browser login" in line]
    denied = [line for line in lines if line.strip().startswith("401  GET /hello")]
    assert len(allowed) == 1 and '"x-auth-request-user": "alice"' in allowed[0]
    # One alice: her token carries the e-mail address she signs in with at the dev login.
    [alice] = [user for user in DEMO_USERS if user.username == "alice"]
    assert f'"x-auth-request-email": "{alice.email}"' in allowed[0]
    assert len(denied) == 3  # no token, wrong audience, spoofed header
    assert any("spoofed" in line for line in denied)
    admin = [line.strip()[:4] for line in lines if "GET /admin/users" in line]
    assert admin == ["200 ", "403 "]  # alice (admin) allowed, carol (user) refused by the policy
    assert 'curl -s -H "Authorization: Bearer $ALICE"' in result.stdout
    # The browser flow: redirect, the dev issuer's login form, callback, the page signed in.
    assert len(browser) == 1 and browser[0].strip().startswith("200")
    assert '"x-auth-request-user": "bob"' in browser[0]
    assert "sign in as alice / alice-password" in result.stdout
