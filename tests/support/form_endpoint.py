"""What the scripted back-channel endpoints share (introspection.py, token_endpoint.py): the
POSTed form read, the client authenticated by client_secret_basic or client_secret_post, and a
scripted reply — a JSON body, a raw one, a status, a delay — sent."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import Receive, Send


@dataclass(frozen=True)
class Reply:
    json: Any = None
    raw: bytes | None = None  # sent as is instead of ``json``
    status: int = 200
    delay: float = 0.0  # seconds before the answer starts
    content_type: bytes = b"application/json"


async def read_form(receive: Receive) -> dict[str, str]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}


def client_method(client_id: str, client_secret: str, authorization: str | None,
                  form: dict[str, str]) -> str | None:
    """How the client authenticated with the configured credentials, or None (RFC 6749 §2.3.1:
    Basic with each part form-encoded, never both Basic and a secret in the form)."""
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        ok = (unquote(user), unquote(password)) == (client_id, client_secret)
        return "client_secret_basic" if ok and "client_secret" not in form else None
    if (form.get("client_id"), form.get("client_secret")) == (client_id, client_secret):
        return "client_secret_post"
    return None


async def send_reply(send: Send, reply: Reply) -> None:
    if reply.delay:
        await asyncio.sleep(reply.delay)
    body = reply.raw if reply.raw is not None else json.dumps(reply.json).encode()
    await send({"type": "http.response.start", "status": reply.status,
                "headers": [(b"content-type", reply.content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


INVALID_CLIENT = Reply(json={"error": "invalid_client"}, status=401)
