"""``GET {prefix}/userinfo``: the caller's identity as JSON, from a session or a bearer token."""

from __future__ import annotations

from typing import Any

from gatekeeper.edge.responses import Answer
from gatekeeper.errors import GatekeeperError, Unauthenticated
from gatekeeper.exchange import Exchange
from gatekeeper.login.answer import json_answer
from gatekeeper.login.ports import Authenticate
from gatekeeper.principal import Decision, Outcome, Principal


class UserInfo:
    def __init__(self, authenticate: Authenticate) -> None:
        self._authenticate = authenticate

    async def answer(self, request: Exchange, request_id: str) -> Answer:
        try:
            principal = await self._authenticate.authenticate(request)
        except Unauthenticated as exc:
            return json_answer(request_id, 401, {
                "error": exc.code, "error_description": exc.description},
                Decision(Outcome.UNAUTHENTICATED, exc.code, error=exc))
        except GatekeeperError as exc:  # keys, session store or revocation list unavailable
            return json_answer(request_id, exc.status, {
                "error": exc.code, "error_description": exc.description},
                Decision(Outcome.ERROR, exc.code, error=exc))
        if principal.via == "anonymous":
            return json_answer(request_id, 401, {
                "error": "unauthenticated", "error_description": "not signed in"},
                Decision(Outcome.UNAUTHENTICATED, "unauthenticated"))
        return json_answer(request_id, 200, identity(principal),
                           Decision(Outcome.ALLOW, "userinfo", principal))


def identity(principal: Principal) -> dict[str, Any]:
    claims = principal.claims
    return {
        "sub": claims.get("sub", principal.subject),  # as its issuer says it
        "subject": principal.subject,  # as gatekeeper names it: issuer-namespaced if several
        "email": claims.get("email"),
        "name": claims.get("name"),
        "preferred_username": claims.get("preferred_username"),
        "roles": list(principal.roles),
        "via": principal.via,
        "issuer": principal.issuer,
        "expires_at": int(principal.expires_at) or None,
    }
