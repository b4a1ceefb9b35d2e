"""The login handlers in process: each takes the narrow collaborators it uses (login/ports.py),
never the pipeline, and returns an Answer value; only the facade (routes.py) writes to ``send``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gatekeeper.edge.responses import Answer
from gatekeeper.errors import InvalidToken, KeysUnavailable
from gatekeeper.exchange import Exchange
from gatekeeper.login.answer import redirect
from gatekeeper.login.userinfo import UserInfo
from gatekeeper.principal import ANONYMOUS, Outcome, Principal

ALICE = Principal(subject="alice", roles=("admin",), claims={"sub": "alice", "email": "a@x.test"},
                  via="session", issuer="https://idp.example", expires_at=2_000_000_000)


class Authenticates:
    """An ``Authenticate`` in two lines: answers with a principal, or raises."""

    def __init__(self, outcome: Principal | Exception) -> None:
        self._outcome = outcome

    async def authenticate(self, request: Exchange) -> Principal:
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome


def request(path: str = "/oauth2/userinfo", headers: list[tuple[bytes, bytes]] | None = None) -> Exchange:
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": headers or []}
    return Exchange(scope, path, "req-12345678", 0.0)


@pytest.mark.parametrize(("outcome", "status", "error"), [
    (ALICE, 200, None),
    (ANONYMOUS, 401, "unauthenticated"),
    (InvalidToken("token expired", code="token_expired"), 401, "token_expired"),
    (KeysUnavailable("no keys yet", code="keys_unavailable"), 503, "keys_unavailable"),
], ids=["a signed-in caller gets its identity", "no credentials: 401",
        "bad credentials: 401 naming the check", "a dependency down: its own status"])
def test_userinfo_answers_a_value_from_an_authenticate_alone(outcome: Principal | Exception,
                                                             status: int, error: str | None) -> None:
    answer = asyncio.run(UserInfo(Authenticates(outcome)).answer(request(), "req-12345678"))
    assert isinstance(answer, Answer) and answer.status == status
    assert answer.content_type == b"application/json"
    assert (b"x-request-id", b"req-12345678") in answer.headers
    assert (b"cache-control", b"no-store") in answer.headers
    body = json.loads(answer.body)
    assert body["request_id"] == "req-12345678"
    if error is None:
        assert body["sub"] == "alice" and body["roles"] == ["admin"] and body["via"] == "session"
        assert answer.decision.outcome is Outcome.ALLOW
    else:
        assert body["error"] == error and answer.decision.reason == error


def test_a_redirect_answer_carries_its_location_and_no_body() -> None:
    answer = redirect("req-12345678", "/hello?x=1", "login_started")
    assert answer.status == 302 and answer.body == b""
    assert (b"location", b"/hello?x=1") in answer.headers
    assert answer.decision.outcome is Outcome.UNAUTHENTICATED and answer.decision.reason == "login_started"
