"""The pages that ask the user instead of acting on another page's say-so.

- A sign-out another site sent the browser to (a link, an ``<img>``, a form: logout CSRF) gets a
  "Sign out?" page whose button is a same-origin link; it cannot be framed under a decoy.
- A protected page inside a frame gets a "Sign in" button that opens the login in the top window:
  providers refuse to be framed, and each frame would start a login of its own.
"""

from __future__ import annotations

from gatekeeper.edge import pages
from gatekeeper.edge.responses import Answer
from gatekeeper.login.answer import page
from gatekeeper.principal import Decision, Outcome


def ask_before_signing_out(request_id: str, sign_out: str, stay: str) -> Answer:
    return page(request_id, 200, Decision(Outcome.UNAUTHENTICATED, "sign_out_confirm"),
                "Sign out?", "Another site sent you here to sign out.",
                actions=[("Sign out", sign_out), ("Stay signed in", stay)],
                extra_headers=pages.NOT_FRAMED)


def sign_in_from_the_top(request_id: str, start: str) -> Answer:
    return page(request_id, 401, Decision(Outcome.UNAUTHENTICATED, "login_required"),
                "Sign-in required", "Sign in to see this content.", actions=[("Sign in", start)],
                top=True, extra_headers=[(b"www-authenticate", b'Bearer realm="gatekeeper"')])
