"""cors.py: which preflights are granted (by origin, method and requested headers), what a real
request's answer carries, and that the app's own CORS headers never survive on a configured
route. The rules are real ``CorsRule`` settings; the requests are ``RequestView``s."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.cors import CorsPolicy, CorsRoute, is_preflight, owned_headers
from gatekeeper.request import RequestView
from gatekeeper.settings import CorsRule

APP = "https://app.example.com"
RULE = CorsRule(paths=["/api/*"], allowed_origins=[APP, "https://*.partner.example:8443"],
                allowed_methods=["GET", "POST", "PUT"], allowed_headers=["Authorization", "Content-Type"],
                exposed_headers=["X-Request-Id"], allow_credentials=True, max_age_seconds=300)


def request(method: str, path: str = "/api/items", headers: list[tuple[str, str]] | None = None,
            ) -> RequestView:
    scope: dict[str, Any] = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"", "client": ("127.0.0.1", 1), "scheme": "http",
        "headers": [(k.lower().encode(), v.encode("utf-8")) for k, v in headers or []]}
    return RequestView(scope, path)


def preflight(origin: str | None, method: str | None, asked: str | None = None,
              extra: list[tuple[str, str]] | None = None) -> RequestView:
    headers = [] if origin is None else [("origin", origin)]
    if method is not None:
        headers.append(("access-control-request-method", method))
    if asked is not None:
        headers.append(("access-control-request-headers", asked))
    return request("OPTIONS", headers=[*headers, *(extra or [])])


def names(headers: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {n.decode().lower(): v.decode() for n, v in headers}


# (name, origin, requested method, requested headers, granted?, reason when refused)
PREFLIGHTS: list[tuple[str, str, str, str | None, str | None]] = [
    ("an allowed origin, method and headers", APP, "PUT", "authorization,content-type", None),
    ("no requested headers", APP, "POST", None, None),
    ("headers in any case and spacing", APP, "POST", "Content-Type , AUTHORIZATION", None),
    ("a lower-case method (matched as gatekeeper forwards it: upper case)", APP, "put", None, None),
    ("a wildcard origin on its port", "https://eu.partner.example:8443", "GET", None, None),
    ("another origin", "https://evil.example", "GET", None, "cors_origin_not_allowed"),
    ("the allowed host on another port", "https://app.example.com:8443", "GET", None,
     "cors_origin_not_allowed"),
    ("the allowed host over http", "http://app.example.com", "GET", None, "cors_origin_not_allowed"),
    ("a suffix of the allowed origin", "https://evilapp.example.com", "GET", None,
     "cors_origin_not_allowed"),
    ("the wildcard's base itself", "https://partner.example:8443", "GET", None,
     "cors_origin_not_allowed"),
    ("the wildcard on the default port", "https://eu.partner.example", "GET", None,
     "cors_origin_not_allowed"),
    ("origin null", "null", "GET", None, "cors_origin_not_allowed"),
    ("an origin with a path", APP + "/", "GET", None, "cors_origin_not_allowed"),
    ("an origin with user info", "https://x@app.example.com", "GET", None, "cors_origin_not_allowed"),
    ("a method not listed", APP, "DELETE", None, "cors_method_not_allowed"),
    ("an empty method", APP, "", None, "cors_method_not_allowed"),
    ("a header not listed", APP, "POST", "content-type,x-admin", "cors_headers_not_allowed"),
    ("a malformed header list", APP, "POST", "content type", "cors_headers_not_allowed"),
]


@pytest.mark.parametrize(("origin", "method", "asked", "refusal"), [p[1:] for p in PREFLIGHTS],
                         ids=[p[0] for p in PREFLIGHTS])
def test_a_preflight_is_granted_only_for_an_allowed_origin_method_and_headers(
    origin: str, method: str, asked: str | None, refusal: str | None,
) -> None:
    route = CorsRoute(RULE, "cors[0]")
    decision = route.preflight(preflight(origin, method, asked))
    headers = names(decision.response_headers)
    if refusal is None:
        assert decision.allowed and decision.reason == "cors_preflight"
        assert headers["access-control-allow-origin"] == origin.lower().removesuffix(":443")
        assert headers["access-control-allow-credentials"] == "true"
        assert headers["access-control-allow-methods"] == "GET, POST, PUT"
        assert headers["access-control-allow-headers"] == "authorization, content-type"
        assert headers["access-control-max-age"] == "300"
    else:
        assert not decision.allowed and decision.reason == refusal
        assert decision.error is not None and decision.error.status == 403
        assert not [n for n in headers if n.startswith("access-control-")]
    assert "Origin" in headers["vary"] and "Access-Control-Request-Method" in headers["vary"]


def test_two_origin_headers_are_refused_even_when_both_are_allowed() -> None:
    decision = CorsRoute(RULE, "cors[0]").preflight(preflight(APP, "GET", extra=[("origin", APP)]))
    assert decision.reason == "cors_origin_not_allowed"


def test_two_requested_methods_are_refused() -> None:
    decision = CorsRoute(RULE, "cors[0]").preflight(
        preflight(APP, "GET", extra=[("access-control-request-method", "GET")]))
    assert decision.reason == "cors_method_not_allowed"


@pytest.mark.parametrize(("origin", "method", "preflight_shape"), [
    (APP, "PUT", True),
    (None, "PUT", False),   # no Origin: not a browser's preflight, the pipeline decides
    (APP, None, False),     # no Access-Control-Request-Method: a plain OPTIONS request
], ids=["origin and method", "no origin", "no requested method"])
def test_a_preflight_is_an_options_request_with_origin_and_a_requested_method(
    origin: str | None, method: str | None, preflight_shape: bool,
) -> None:
    assert is_preflight(preflight(origin, method)) is preflight_shape
    assert not is_preflight(request("GET", headers=[("origin", APP),
                                                     ("access-control-request-method", "GET")]))


# (name, method, Origin headers, expected Access-Control-Allow-Origin or None)
REAL: list[tuple[str, str, list[str], str | None]] = [
    ("an allowed origin", "GET", [APP], APP),
    ("an allowed origin in upper case (serialized back)", "GET", [APP.upper()], APP),
    ("a wildcard origin", "POST", ["https://eu.partner.example:8443"], "https://eu.partner.example:8443"),
    ("another origin", "GET", ["https://evil.example"], None),
    ("no origin", "GET", [], None),
    ("two origins", "GET", [APP, APP], None),
    ("null", "GET", ["null"], None),
    ("a method the rule does not list", "DELETE", [APP], None),
]


@pytest.mark.parametrize(("method", "origins", "expected"), [r[1:] for r in REAL], ids=[r[0] for r in REAL])
def test_a_real_request_gets_the_grant_only_for_an_allowed_origin_and_method_and_always_vary(
    method: str, origins: list[str], expected: str | None,
) -> None:
    route = CorsRoute(RULE, "cors[0]")
    for _ in range(2):  # the second answer comes from the route's cache of grants
        headers = route.grant(request(method, headers=[("origin", o) for o in origins]))
        found = names(headers)
        assert found.get("access-control-allow-origin") == expected
        assert found["vary"] == "Origin"
        if expected is None:
            assert [n for n in found if n.startswith("access-control-")] == []
        else:
            assert found["access-control-allow-credentials"] == "true"
            assert found["access-control-expose-headers"] == "x-request-id"


def test_any_origin_is_answered_with_a_star_and_never_null_unless_named() -> None:
    public = CorsRoute(CorsRule(paths=["/pub/*"], allowed_origins=["*"]), "cors[0]")
    assert names(public.grant(request("GET", headers=[("origin", "https://x.example")])))[
        "access-control-allow-origin"] == "*"
    null = request("GET", headers=[("origin", "null")])
    assert "access-control-allow-origin" not in names(public.grant(null))
    named = CorsRoute(CorsRule(paths=["/pub/*"], allowed_origins=["null"]), "cors[0]")
    assert names(named.grant(request("GET", headers=[("origin", "null")])))[
        "access-control-allow-origin"] == "null"


def test_the_apps_cors_headers_are_replaced_in_every_spelling() -> None:
    app = [(b"Content-Type", b"application/json"), (b"Access-Control-Allow-Origin", b"https://evil.example"),
           (b"access-control-allow-credentials", b"true"), (b"ACCESS_CONTROL_ALLOW_METHODS", b"*"),
           (b"Vary", b"Accept-Encoding")]
    grant = ((b"access-control-allow-origin", APP.encode()), (b"vary", b"Origin"))
    assert owned_headers(app, grant) == [(b"Content-Type", b"application/json"),
                                         (b"Vary", b"Accept-Encoding"), *grant]


def test_the_first_rule_whose_paths_match_applies() -> None:
    policy = CorsPolicy([CorsRule(paths=["/api/public/*"], allowed_origins=["*"]),
                         CorsRule(paths=["/api/*", "/graphql"], allowed_origins=[APP])])
    first, second = (policy.route("/api/public/x"), policy.route("/graphql"))
    assert first is not None and first.name == "cors[0]"
    assert second is not None and second.name == "cors[1]"
    assert policy.route("/api") is None and policy.route("/graphql/x") is None


# (name, rule's credentials, method, extra headers, allowed?)
CREDENTIALED: list[tuple[str, bool, str, list[tuple[str, str]], bool]] = [
    ("a credentialed rule's origin and method", True, "POST", [], True),
    ("a method the rule does not list", True, "DELETE", [], False),
    ("a rule without credentials", False, "POST", [], False),
    ("a WebSocket handshake", True, "GET", [("upgrade", "websocket"), ("sec-websocket-key", "x")], False),
]


@pytest.mark.parametrize(("credentials", "method", "extra", "allowed"), [c[1:] for c in CREDENTIALED],
                         ids=[c[0] for c in CREDENTIALED])
def test_only_a_credentialed_rule_lets_its_origin_send_cookie_requests(
    credentials: bool, method: str, extra: list[tuple[str, str]], allowed: bool,
) -> None:
    policy = CorsPolicy([CorsRule(paths=["/api/*"], allowed_origins=[APP], allow_credentials=credentials,
                                  allowed_methods=["GET", "POST"])])
    assert policy.allows_credentials(request(method, headers=extra), APP) is allowed
    assert policy.allows_credentials(request(method, path="/other", headers=extra), APP) is False
    assert policy.allows_credentials(request(method, headers=extra), "https://evil.example") is False
