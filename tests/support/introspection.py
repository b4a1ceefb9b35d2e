"""A scripted RFC 7662 introspection endpoint on 127.0.0.1, hostile on demand.

    server = IntrospectionServer(client_id="gk", client_secret="s3cret")
    server.script["tok-alice"] = Reply(json={"active": True, "sub": "alice", ...})
    with serve_asgi(server, lifespan="off") as url:   # POST {url}/introspect

Each token (the form's ``token``) is answered as scripted: a JSON body, a raw body, a status, a
delay. A token with no script is ``{"active": false}``. A request whose client credentials are
not the configured ones (client_secret_basic or client_secret_post) gets 401. Every request is
recorded: which token, and how the client authenticated.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class Reply:
    json: Any = None
    raw: bytes | None = None  # sent as is instead of ``json``
    status: int = 200
    delay: float = 0.0  # seconds before the answer starts


@dataclass
class Asked:
    token: str
    method: str  # "client_secret_basic" or "client_secret_post"


@dataclass
class IntrospectionServer:
    client_id: str
    client_secret: str
    script: dict[str, Reply] = field(default_factory=dict)
    asked: list[Asked] = field(default_factory=list)

    def times_asked(self, token: str) -> int:
        return sum(1 for a in self.asked if a.token == token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        headers = dict((k.decode().lower(), v.decode()) for k, v in scope["headers"])
        method = self._client(headers.get("authorization"), form)
        token = form.get("token", "")
        if method is None:
            await _send(send, 401, b'{"error":"invalid_client"}')
            return
        self.asked.append(Asked(token, method))
        reply = self.script.get(token, Reply(json={"active": False}))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        body = reply.raw if reply.raw is not None else json.dumps(reply.json).encode()
        await _send(send, reply.status, body)

    def _client(self, authorization: str | None, form: dict[str, str]) -> str | None:
        if authorization is not None:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "basic":
                return None
            user, _, password = base64.b64decode(value).decode().partition(":")
            ok = (unquote(user), unquote(password)) == (self.client_id, self.client_secret)
            return "client_secret_basic" if ok and "client_secret" not in form else None
        if (form.get("client_id"), form.get("client_secret")) == (self.client_id, self.client_secret):
            return "client_secret_post"
        return None


async def _send(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
