"""Every answer gatekeeper writes itself (not proxied), built here and nowhere else: one function
from Decision to response (``send_decision``: 401 with its challenge, 403, 429 with
``Retry-After``, 503, 400; JSON or a small HTML page by ``Accept``), the errors of the proxy hop
(``send_error``: 400/502/504/500), a WebSocket handshake refused (``refuse_websocket``,
``refuse_handshake``), forward-auth's 202 (``send_check_passed``), a CORS preflight's 204 or
403 (``send_preflight``), the admin listener's
error bodies (``error_json``), and the login routes' ``Answer`` values (``send_answer``; the
routes build them with login/answer.py and never touch ``send``). The pipeline's stages decide,
never answer.

Client-facing text comes from the error's ``description`` (written for clients), never from
``str(exc)`` of a library exception, and never echoes a token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatekeeper.edge import pages
from gatekeeper.errors import (
    DpopRefused,
    GatekeeperError,
    InvalidToken,
    RateLimited,
    UpstreamUnavailable,
)
from gatekeeper.principal import Decision, Outcome
from gatekeeper.types import Send

_REALM = 'realm="gatekeeper"'

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Answer:
    """One complete answer a route computed, and the decision it carries (access log, metrics)."""

    status: int
    decision: Decision
    headers: tuple[Header, ...] = ()
    content_type: bytes = b"text/plain"
    body: bytes = b""


async def send_answer(send: Send, answer: Answer) -> int:
    await send_raw(send, answer.status, list(answer.headers), answer.content_type, answer.body)
    return answer.status


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
    sign_out: str | None = None, *, dpop_algs: tuple[str, ...] = (),
) -> int:
    """``sign_out``: the sign-out route, offered on the HTML 403 page to a browser session.
    ``dpop_algs``: with DPoP enabled, every 401 offers the DPoP scheme too (RFC 9449 §7.1)."""
    if isinstance(decision.error, RateLimited):
        return await _send_rate_limited(send, decision.error, request_id, accept)
    status = status_of(decision)
    code, description = error_body(decision)
    headers = own_headers(request_id)
    if status == 401 and isinstance(decision.error, DpopRefused):
        # RFC 9449 §7.1: the DPoP challenge names the accepted algs and the RFC's error code;
        # §8: a nonce the client must use comes as DPoP-Nonce.
        error = decision.error
        challenge = (f'DPoP algs="{" ".join(error.algs)}", error="{error.error}", '
                     f'error_description="{_quoted(description)}"')
        headers.append((b"www-authenticate", challenge.encode("ascii")))
        if error.nonce is not None:
            headers.append((b"dpop-nonce", error.nonce.encode("ascii")))
    elif status == 401:
        challenge = f"Bearer {_REALM}"
        if isinstance(decision.error, InvalidToken):
            # RFC 6750 §3.1: error codes only when a token was presented and failed.
            challenge += f', error="invalid_token", error_description="{_quoted(description)}"'
        headers.append((b"www-authenticate", challenge.encode("ascii")))
        if dpop_algs:
            headers.append((b"www-authenticate", f'DPoP algs="{" ".join(dpop_algs)}"'.encode("ascii")))
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


async def _send_rate_limited(send: Send, error: RateLimited, request_id: str,
                             accept: bytes | None) -> int:
    """429 (RFC 6585 §4) with Retry-After (RFC 9110 §10.2.3) and X-RateLimit-Limit/-Remaining."""
    headers = [*own_headers(request_id), (b"retry-after", str(error.retry_after).encode()),
               (b"x-ratelimit-limit", str(error.limit).encode()), (b"x-ratelimit-remaining", b"0")]
    if wants_html(accept):
        body = pages.render("Too many requests",
                            f"Please wait {error.retry_after} s, then try again.",
                            request_id=request_id)
        content_type = HTML
    else:
        body = json.dumps({"error": error.code, "error_description": error.description,
                           "retry_after": error.retry_after, "request_id": request_id}).encode()
        content_type = b"application/json"
    await send_raw(send, 429, headers, content_type, body)
    return 429


async def send_check_passed(send: Send, decision: Decision, request_id: str) -> int:
    """Forward-auth's "yes": 202 with the identity headers (for ``auth_request_set``) and the
    rate-limit budget, if a rule applies. ``no-store`` as every answer of ours: it names one
    caller (their token, an assertion bound to this request), and a cache in front of the
    check keyed on less than every credential would hand it to another (RFC 9111 §5.2.2.5)."""
    headers = [*decision.identity_headers, *decision.response_headers, *own_headers(request_id)]
    await send_raw(send, 202, headers, b"text/plain", b"")
    return 202


async def send_preflight(send: Send, decision: Decision, request_id: str,
                         accept: bytes | None) -> int:
    """A CORS preflight gatekeeper answered (cors.py decided): 204 with the grant — no body, so
    no Content-Length either (RFC 9110 §8.6) — or the refusal's 403, which carries no
    Access-Control-* header (to the browser, that is the refusal: Fetch §4.9)."""
    if not decision.allowed:
        return await send_decision(_adding(send, decision.response_headers), decision, request_id,
                                   accept)
    headers = [*own_headers(request_id), *decision.response_headers]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    return 204


def _adding(send: Send, headers: tuple[Header, ...]) -> Send:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message["headers"], *headers]}
        await send(message)

    return sending


async def refuse_websocket(scope: Any, send: Send, decision: Decision, request_id: str,
                           accept: bytes | None) -> int:
    """A handshake the pipeline refused: the same answer as for HTTP (401 with its challenge,
    403, 429, 503) when the server can send one; else a close before accept (the server's 403)."""
    denial = websocket_denial(scope, send)
    if denial is None:
        await send({"type": "websocket.close", "code": 1008})
        return 403
    return await send_decision(denial, decision, request_id, accept)


async def refuse_handshake(scope: Any, send: Send, status: int, content_type: str | None,
                           body: bytes | None, request_id: str) -> int:
    """Answer the client's handshake with ``status`` (the app's, or 502 when it could not be
    reached); without the denial extension, the server's 403 is all a client can get."""
    denial = websocket_denial(scope, send)
    if denial is None:
        await send({"type": "websocket.close", "code": 1011})
        return 403
    if status == 502:
        return await send_error(denial, UpstreamUnavailable("the app could not be reached"), request_id)
    await send_raw(denial, status, own_headers(request_id),
                   (content_type or "text/plain").encode("latin-1"), body or b"")
    return status


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


def error_json(code: str, description: str) -> bytes:
    """An error body for a listener without request ids (the admin listener)."""
    return json.dumps({"error": code, "error_description": description}).encode()


async def send_raw(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], content_type: bytes, body: bytes
) -> None:
    headers = [*headers, (b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
