"""origin.py with the ``cors`` rules: a page of an origin a credentialed CORS rule allows may
send cookie requests to that rule's paths with its methods (a CORS grant the session origin check
would refuse would be no grant), and nothing more; a rule without credentials lets no cookie
request through."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.cors import CorsPolicy
from gatekeeper.origin import OriginCheck
from gatekeeper.request import RequestView
from gatekeeper.settings import CorsRule

SPA = "https://spa.example.com"
PUBLIC = "https://reader.example.com"
POLICY = CorsPolicy([
    CorsRule(paths=["/api/*"], allowed_origins=[SPA, "https://*.tenants.example.com"],
             allowed_methods=["GET", "POST", "PUT"], allow_credentials=True),
    CorsRule(paths=["/feed/*"], allowed_origins=[PUBLIC], allowed_methods=["GET", "POST"]),
])


def request(method: str, path: str, origin: str, extra: list[tuple[str, str]] | None = None) -> RequestView:
    headers = [(b"host", b"gk.example.com"), (b"origin", origin.encode()),
               *((k.encode(), v.encode()) for k, v in extra or [])]
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
                             "scheme": "https"}
    return RequestView(scope, path)


# (name, method, path, origin, extra headers, refusal or None)
CASES: list[tuple[str, str, str, str, list[tuple[str, str]], str | None]] = [
    ("the credentialed rule's origin, method and path", "POST", "/api/items", SPA, [], None),
    ("its wildcard origin", "PUT", "/api/items", "https://acme.tenants.example.com", [], None),
    ("cross-site by fetch metadata, as every CORS request is", "POST", "/api/items", SPA,
     [("sec-fetch-site", "cross-site")], None),
    ("a method the rule does not list", "DELETE", "/api/items", SPA, [], "origin_not_allowed"),
    ("a path no rule covers", "POST", "/admin", SPA, [], "origin_not_allowed"),
    ("a rule without credentials", "POST", "/feed/x", PUBLIC, [], "origin_not_allowed"),
    ("another origin", "POST", "/api/items", "https://evil.example", [], "origin_not_allowed"),
    ("a WebSocket handshake (no CORS there)", "GET", "/api/ws", SPA,
     [("upgrade", "websocket"), ("sec-websocket-key", "x")], "origin_not_allowed"),
    ("our own origin, as before", "POST", "/api/items", "https://gk.example.com", [], None),
]


@pytest.mark.parametrize(("method", "path", "origin", "extra", "refusal"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_a_credentialed_cors_origin_passes_the_session_origin_check_for_its_rule_only(
    method: str, path: str, origin: str, extra: list[tuple[str, str]], refusal: str | None,
) -> None:
    check = OriginCheck([], [], POLICY)
    assert check.refusal(request(method, path, origin, extra)) == refusal


def test_without_cors_rules_the_check_is_what_it_was() -> None:
    assert OriginCheck([], []).refusal(request("POST", "/api/items", SPA)) == "origin_not_allowed"
    assert OriginCheck([], [SPA]).refusal(request("POST", "/anything", SPA)) is None
