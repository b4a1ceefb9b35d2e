"""Every answer gatekeeper writes itself (not proxied): one function from Decision to response.

Client-facing text comes from the error's ``description`` (written for clients), never from
``str(exc)`` of a library exception, and never echoes a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gatekeeper.edge import pages
from gatekeeper.errors import GatekeeperError, InvalidToken
from gatekeeper.principal import Decision, Outcome
from gatekeeper.types import Send

_REALM = 'realm="gatekeeper"'


def wants_html(accept: bytes | None) -> bool:
    return accept is not None and b"text/html" in accept


def _quoted(text: str) -> str:
    # RFC 6750 §3: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def status_of(decision: Decision) -> int:
    if decision.outcome is Outcome.UNAUTHENTICATED:
        return 401
    if decision.outcome is Outcome.UNAUTHORIZED:
        return 403
    return decision.error.status if decision.error is not None else 500


def error_body(decision: Decision) -> tuple[str, str]:
    error = decision.error
    if decision.outcome is Outcome.UNAUTHORIZED:
        return "forbidden", "the policy does not allow this request"
    if decision.outcome is Outcome.UNAUTHENTICATED and error is None:
        return "unauthenticated", "a bearer token is required"
    if error is not None:
        return error.code, error.description or error.code
    return "error", "internal error"


async def send_decision(
    send: Send, decision: Decision, request_id: str, accept: bytes | None,
    sign_out: str | None = None,
) -> int:
    """``sign_out``: the sign-out route, offered on the HTML 403 page to a browser session."""
    status = status_of(decision)
    code, description = error_body(decision)
    headers = own_headers(request_id)
    if status == 401:
        challenge = f"Bearer {_REALM}"
        if isinstance(decision.error, InvalidToken):
            # RFC 6750 §3.1: error codes only when a token was presented and failed.
            challenge += f', error="invalid_token", error_description="{_quoted(description)}"'
        headers.append((b"www-authenticate", challenge.encode("ascii")))
    if status == 503:
        headers.append((b"retry-after", b"5"))
    if status == 403 and wants_html(accept):
        who = str(decision.principal.claims.get("email") or decision.principal.subject)
        offer = [("Sign in as someone else", sign_out)] if sign_out is not None else []
        body = pages.render("Access denied",
                            f"You are signed in as {who}, but not allowed to open this page.",
                            actions=offer, request_id=request_id)
        content_type = HTML
    elif status == 503 and wants_html(accept):
        # A dependency is down (session store, signing keys): say so, keep the session.
        body = pages.render("Temporarily unavailable",
                            "Signing you in is not possible right now. Please try again shortly.",
                            detail=f"Reason: {code}", request_id=request_id)
        content_type = HTML
    else:
        body = _json_body(code, description, request_id)
        content_type = b"application/json"
    await send_raw(send, status, headers, content_type, body)
    return status


async def send_error(send: Send, error: GatekeeperError, request_id: str) -> int:
    body = _json_body(error.code, error.description or error.code, request_id)
    await send_raw(send, error.status, own_headers(request_id), b"application/json", body)
    return error.status


HTML = b"text/html; charset=utf-8"


def websocket_denial(scope: Any, send: Send) -> Send | None:
    """A ``send`` that answers a WebSocket handshake with a plain HTTP response (the ASGI
    WebSocket Denial Response extension: a 401 with its challenge, a 503, the app's own 404),
    taking the same messages as an HTTP answer. None when the server lacks the extension: then
    the only refusal is a close before accept, which the server sends as 403."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        return None

    async def denial(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind.startswith("http.response."):
            message = {**message, "type": "websocket." + kind}
        await send(message)

    return denial


def own_headers(request_id: str) -> list[tuple[bytes, bytes]]:
    """What every answer gatekeeper writes itself carries: the request id, and no caching."""
    return [(b"x-request-id", request_id.encode("ascii")), (b"cache-control", b"no-store")]


def json_answer_body(fields: Mapping[str, Any], request_id: str) -> bytes:
    """A JSON body of ``fields`` and the request id (the login routes' answers)."""
    return json.dumps({**fields, "request_id": request_id}).encode()


def _json_body(code: str, description: str, request_id: str) -> bytes:
    return json.dumps({"error": code, "error_description": description,
                       "request_id": request_id}).encode()


async def send_raw(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], content_type: bytes, body: bytes
) -> None:
    headers = [*headers, (b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
