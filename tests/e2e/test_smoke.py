"""The whole path once, with real servers: issuer → gatekeeper process → recording upstream."""

from __future__ import annotations

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream
from tests.support.fakes import run
from tests.support.poll import eventually


def test_valid_token_reaches_the_app_with_identity(gatekeeper: Gatekeeper, issuer: DevIssuer,
                                                   upstream: Upstream) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, claims={"email": "a@example.com",
                                                             "roles": ["admin"]})
    with gatekeeper.client() as client:
        response = client.get("/echo/x?q=1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    seen = upstream.recorder.last
    assert seen.raw_path == b"/echo/x" and seen.query_string == b"q=1"
    assert seen.header_values("x-auth-request-user") == ["alice"]
    assert seen.header_values("x-auth-request-email") == ["a@example.com"]
    assert seen.header_values("x-auth-request-groups") == ["admin"]


def test_no_token_is_401_and_nothing_reaches_the_app(gatekeeper: Gatekeeper, upstream: Upstream) -> None:
    before = len(upstream.recorder)
    with gatekeeper.client() as client:
        response = client.get("/private")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthenticated"
    assert len(upstream.recorder) == before


def test_admin_endpoints(gatekeeper: Gatekeeper) -> None:
    with gatekeeper.admin() as admin:
        assert admin.get("/healthz").status_code == 200
        # Start-up never waits for the issuer: its first key fetch may still be under way.
        assert eventually(lambda: admin.get("/readyz").status_code == 200, 15)
        ready = admin.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "gatekeeper_requests_total" in admin.get("/metrics").text


def test_an_unexpected_error_fails_closed_with_a_json_500() -> None:
    """A bug in a pipeline stage must answer 500 and proxy nothing — not crash the connection."""

    from gatekeeper.edge.forward_auth import ForwardAuth
    from gatekeeper.edge.gate import Gate, GateSettings
    from gatekeeper.logs import AccessLog
    from gatekeeper.metrics import Metrics
    from gatekeeper.settings import Settings

    class Broken:
        async def decide(self, request: object) -> object:
            raise KeyError("a bug")

    class NoProxy:
        async def forward(self, *args: object) -> int:
            raise AssertionError("must not proxy")

    settings = Settings()
    gate = Gate(Broken(), NoProxy(), None, ForwardAuth(settings.forward_auth, lambda _: False),  # type: ignore[arg-type]
                Metrics(), AccessLog(enabled=False), GateSettings(settings.max_header_bytes))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/x", "raw_path": b"/x", "query_string": b"",
             "headers": [], "client": ("127.0.0.1", 1), "scheme": "http"}
    run(gate(scope, receive, send))
    assert sent[0]["status"] == 500
    assert b"internal_error" in sent[1]["body"]  # type: ignore[operator]
    assert b"a bug" not in sent[1]["body"]  # type: ignore[operator]
