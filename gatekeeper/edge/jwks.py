"""The assertion keys on the public listener (``assertion.serve_jwks_on_listen``).

Off by default: the admin listener always serves them, and the app's own path at
``/.well-known/gatekeeper/jwks.json`` stays the app's. When on, gatekeeper answers that path
itself — no authentication, the keys are public — in its canonical spelling, any method (405
for all but GET and HEAD, so no request there reaches the app under another method).
"""

from __future__ import annotations

from collections.abc import Callable

from gatekeeper.assertion import JWKS_CACHE_CONTROL, JWKS_PATH
from gatekeeper.edge.responses import send_raw
from gatekeeper.exchange import Exchange
from gatekeeper.principal import Decision, Outcome
from gatekeeper.types import Send


class PublicJwks:
    def __init__(self, body: Callable[[], bytes]) -> None:
        self._body = body  # the current key ring's JWKS (a reload swaps it)

    @staticmethod
    def handles(path: str) -> bool:
        return path == JWKS_PATH

    async def answer(self, exchange: Exchange, send: Send) -> tuple[Decision, int]:
        """The JWKS (200), or 405 for a method other than GET and HEAD; the decision logged."""
        request_id = [(b"x-request-id", exchange.request_id.encode("ascii"))]
        if exchange.method not in ("GET", "HEAD"):
            await send_raw(send, 405, [*request_id, (b"allow", b"GET, HEAD")], b"text/plain", b"")
            return Decision(Outcome.ERROR, "method_not_allowed", path=exchange.path), 405
        # HEAD: the same Content-Length; the server sends no body (RFC 9110 §9.3.2).
        await send_raw(send, 200, [*request_id, (b"cache-control", JWKS_CACHE_CONTROL)],
                       b"application/json", self._body())
        return Decision(Outcome.ALLOW, "jwks", path=exchange.path), 200
