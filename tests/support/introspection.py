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

from dataclasses import dataclass, field

from starlette.types import Receive, Scope, Send

from tests.support.form_endpoint import INVALID_CLIENT, Reply, client_method, read_form, send_reply

__all__ = ["Asked", "IntrospectionServer", "Reply"]


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
        form = await read_form(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        method = client_method(self.client_id, self.client_secret, headers.get("authorization"),
                               form)
        if method is None:
            await send_reply(send, INVALID_CLIENT)
            return
        token = form.get("token", "")
        self.asked.append(Asked(token, method))
        await send_reply(send, self.script.get(token, Reply(json={"active": False})))
