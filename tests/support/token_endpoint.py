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

from dataclasses import dataclass, field

from starlette.types import Receive, Scope, Send

from tests.support.form_endpoint import INVALID_CLIENT, Reply, client_method, read_form, send_reply

__all__ = ["ACCESS_TOKEN", "GRANT", "Reply", "TokenEndpoint"]

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


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
        form = await read_form(receive)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if client_method(self.client_id, self.client_secret, headers.get("authorization"),
                         form) is None:
            await send_reply(send, INVALID_CLIENT)
            return
        self.asked.append(form)
        reply = self.script.get(form.get("subject_token", ""))
        await send_reply(send, reply if reply is not None else self._issue(form))

    def _issue(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != GRANT or form.get("subject_token_type") != ACCESS_TOKEN:
            return Reply(json={"error": "invalid_request"}, status=400)
        return Reply(json={"access_token": f"x-{form.get('audience')}-{len(self.asked)}",
                           "issued_token_type": ACCESS_TOKEN, "token_type": "Bearer",
                           "expires_in": 300})
