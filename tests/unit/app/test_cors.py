"""CORS per route, the whole app in process: preflights answered before authentication and never
forwarded; real requests decided as ever, their answers (the app's and gatekeeper's own) carrying
the rule's CORS headers and never the app's; routes without a rule exactly as before."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import Answer, InProcess, request, serve
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings

SPA = "https://spa.example.com"
EVIL = "https://evil.example"
RULES = [
    {"paths": ["/api/*"], "allowed_origins": [SPA], "allowed_methods": ["GET", "POST", "PUT", "DELETE"],
     "allowed_headers": ["Authorization", "Content-Type"], "exposed_headers": ["X-Request-Id"],
     "allow_credentials": True, "max_age_seconds": 120},
]
PREFLIGHT = [(b"origin", SPA.encode()), (b"access-control-request-method", b"PUT"),
             (b"access-control-request-headers", b"authorization,content-type")]


@pytest.fixture(scope="module")
def settings(make_settings: MakeSettings) -> Settings:
    return make_settings(cors=RULES, policy=EXAMPLE_POLICY)


def cors_headers(answer: Answer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in answer.headers:
        key = name.decode().lower()
        if key.startswith("access-control-"):
            found.setdefault(key, []).append(value.decode())
    return found


def test_a_preflight_is_answered_without_credentials_and_never_reaches_the_app(
    settings: Settings, upstream: Upstream,
) -> None:
    answer = request(settings, "OPTIONS", "/api/p1/items/7", headers=PREFLIGHT)
    assert answer.status == 204 and answer.body == b""
    assert answer.header("content-length") is None  # RFC 9110 §8.6: never on a 204
    assert cors_headers(answer) == {
        "access-control-allow-origin": [SPA], "access-control-allow-credentials": ["true"],
        "access-control-allow-methods": ["GET, POST, PUT, DELETE"],
        "access-control-allow-headers": ["authorization, content-type"],
        "access-control-max-age": ["120"]}
    assert "Origin" in (answer.header("vary") or "")
    assert len(upstream.recorder) == 0


@pytest.mark.parametrize(("headers", "code"), [
    ([(b"origin", EVIL.encode()), (b"access-control-request-method", b"PUT")], "cors_origin_not_allowed"),
    ([(b"origin", SPA.encode()), (b"access-control-request-method", b"PATCH")], "cors_method_not_allowed"),
    ([(b"origin", SPA.encode()), (b"access-control-request-method", b"PUT"),
      (b"access-control-request-headers", b"x-admin")], "cors_headers_not_allowed"),
], ids=["another origin", "a method not listed", "a header not listed"])
def test_a_refused_preflight_is_403_without_any_grant_and_never_reaches_the_app(
    settings: Settings, upstream: Upstream, headers: list[tuple[bytes, bytes]], code: str,
) -> None:
    answer = request(settings, "OPTIONS", "/api/p1/items/7", headers=headers)
    assert (answer.status, answer.json()["error"]) == (403, code)
    assert cors_headers(answer) == {}
    assert "Origin" in (answer.header("vary") or "")
    assert len(upstream.recorder) == 0


def test_a_preflight_grants_nothing_the_real_request_is_still_authenticated_and_authorized(
    settings: Settings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    viewer = bearer(mint(issuer, "alice", claims={"roles": ["viewer"]}))
    origin = (b"origin", SPA.encode())

    async def scenario(gk: InProcess) -> list[Answer]:
        return [await gk.http("OPTIONS", "/api/p1/items/7", headers=PREFLIGHT),
                await gk.http("PUT", "/api/p1/items/7", headers=[origin]),            # no token
                await gk.http("PUT", "/api/p1/items/7", headers=[origin, viewer])]    # policy: no

    preflight, anonymous, viewer_put = serve(settings, scenario)
    assert (preflight.status, anonymous.status, viewer_put.status) == (204, 401, 403)
    assert len(upstream.recorder) == 0
    # gatekeeper's own refusals are readable by the allowed page (to show "sign in", "forbidden"):
    for refused in (anonymous, viewer_put):
        assert cors_headers(refused)["access-control-allow-origin"] == [SPA]


def test_gatekeepers_own_refusals_carry_no_grant_for_another_origin(settings: Settings) -> None:
    answer = request(settings, "GET", "/api/p1/items", headers=[(b"origin", EVIL.encode())])
    assert answer.status == 401 and cors_headers(answer) == {}
    assert "Origin" in (answer.header("vary") or "")


@pytest.mark.parametrize(("origin", "expected"), [
    (SPA, {"access-control-allow-origin": [SPA], "access-control-allow-credentials": ["true"],
           "access-control-expose-headers": ["x-request-id"]}),
    (EVIL, {}),
], ids=["the allowed origin gets the rule's grant", "another origin gets nothing of the app's reflection"])
def test_the_apps_own_cors_headers_are_replaced_by_the_rules_on_a_configured_route(
    make_settings: MakeSettings, issuer: DevIssuer, origin: str, expected: dict[str, list[str]],
) -> None:
    # No policy: any authenticated caller; the app reflects every Origin with credentials.
    answer = request(make_settings(cors=RULES), "GET", "/api/cors-reflect",
                     headers=[(b"origin", origin.encode()), bearer(mint(issuer, "alice"))])
    assert answer.status == 200
    assert cors_headers(answer) == expected
    assert answer.header_values("vary") == ["Accept-Encoding", "Origin"]


def test_a_route_without_a_rule_is_as_before_the_apps_headers_pass(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings(cors=RULES)
    answer = request(settings, "GET", "/other/cors-reflect",
                     headers=[(b"origin", EVIL.encode()), bearer(mint(issuer, "alice"))])
    assert cors_headers(answer)["access-control-allow-origin"] == [EVIL]
    assert answer.header_values("vary") == ["Accept-Encoding"]
    # and a preflight there is an ordinary OPTIONS request: authenticated, then the app's.
    assert request(settings, "OPTIONS", "/other/x", headers=PREFLIGHT).status == 401
    assert len(upstream.recorder) == 1


def test_an_options_request_that_is_no_preflight_goes_through_the_pipeline(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    settings = make_settings(cors=RULES)
    origin_only = [(b"origin", SPA.encode())]
    assert request(settings, "OPTIONS", "/api/x", headers=origin_only).status == 401
    answer = request(settings, "OPTIONS", "/api/x", headers=[*origin_only, bearer(mint(issuer, "alice"))])
    assert answer.status == 200 and upstream.recorder.last.method == "OPTIONS"
