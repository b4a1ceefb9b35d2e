"""The pages that ask the user instead of acting on another page's say-so.

- A sign-out another site sent the browser to (a link, an ``<img>``, a form: logout CSRF) gets a
  "Sign out?" page whose button is a same-origin link; it cannot be framed under a decoy.
- A protected page inside a frame gets a "Sign in" button that opens the login in the top window:
  providers refuse to be framed, and each frame would start a login of its own.
"""

from __future__ import annotations

from gatekeeper.edge import pages
from gatekeeper.edge.responses import HTML, own_headers, send_raw
from gatekeeper.types import Send


async def ask_before_signing_out(send: Send, request_id: str, sign_out: str, stay: str) -> int:
    body = pages.render("Sign out?", "Another site sent you here to sign out.",
                        actions=[("Sign out", sign_out), ("Stay signed in", stay)],
                        request_id=request_id)
    await send_raw(send, 200, [*own_headers(request_id), *pages.NOT_FRAMED], HTML, body)
    return 200


async def sign_in_from_the_top(send: Send, request_id: str, start: str) -> int:
    body = pages.render("Sign-in required", "Sign in to see this content.",
                        actions=[("Sign in", start)], top=True, request_id=request_id)
    headers = [*own_headers(request_id), (b"www-authenticate", b'Bearer realm="gatekeeper"')]
    await send_raw(send, 401, headers, HTML, body)
    return 401
