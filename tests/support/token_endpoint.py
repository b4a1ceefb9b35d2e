"""A scripted RFC 8693 token endpoint on 127.0.0.1, hostile on demand.

    server = TokenEndpoint(client_id="gk", client_secret="s3cret")
    server.script["tok-alice"] = Reply(json={"error": "invalid_grant"}, status=400)
    with serve_asgi(server, lifespan="off") as url:   # POST {url}/token

A token-exchange request (the form's ``subject_token``) without a script gets a good answer: an
access token ``x-<audience>-<n>`` that names the audience asked for, ``Bearer``, ``expires_in``
300. A request whose client credentials are not the configured ones (client_secret_basic or
client_secret_post) gets 401 ``invalid_client``. Every request is recorded (its form), so a test
counts the calls the provider got.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import Receive, Scope, Send

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class Reply:
    json: Any = None
    raw: bytes | None = None  # sent as is instead of ``json``
    status: int = 200
    delay: float = 0.0  # seconds before the answer starts
    content_type: bytes = b"application/json"


@dataclass
class TokenEndpoint:
    client_id: str
    client_secret: str
    script: dict[str, Reply] = field(default_factory=dict)
    asked: list[dict[str, str]] = field(default_factory=list)

    def times_asked(self, subject_token: str) -> int:
        return sum(1 for form in self.asked if form.get("subject_token") == subject_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if not self._client_ok(headers.get("authorization"), form):
            await _send(send, 401, b'{"error":"invalid_client"}', b"application/json")
            return
        self.asked.append(form)
        reply = self.script.get(form.get("subject_token", ""))
        if reply is None:
            reply = self._issue(form)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.raw if reply.raw is not None else json.dumps(reply.json).encode()
        await _send(send, reply.status, body, reply.content_type)

    def _issue(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != GRANT or form.get("subject_token_type") != ACCESS_TOKEN:
            return Reply(json={"error": "invalid_request"}, status=400)
        return Reply(json={"access_token": f"x-{form.get('audience')}-{len(self.asked)}",
                           "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer",
                           "expires_in": 300})

    def _client_ok(self, authorization: str | None, form: dict[str, str]) -> bool:
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            user, _, password = base64.b64decode(value).decode().partition(":")
            return (scheme.lower() == "basic" and "client_secret" not in form
                    and (unquote(user), unquote(password)) == (self.client_id, self.client_secret))
        return (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret)


async def _send(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
