"""What the whole app answers, in process: the shipped example policy's decisions, 401 with its
RFC 6750 challenge, 403 as JSON or as a page by Accept, and the request id on every answer.
Only allowed requests reach the app behind gatekeeper; the recorder shows that they did.

Every test runs in both shapes of one config: the sidecar (the app behind a real socket) and
``gatekeeper.Gatekeeper``, the same chain as middleware in the app's process."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream
from tests.support import forge
from tests.support.asgi import Answer, request
from tests.support.fakes import bearer, mint
from tests.unit.app.conftest import EXAMPLE_POLICY, MakeSettings

pytestmark = pytest.mark.usefixtures("both_shapes")


ROLES: dict[str, list[str] | None] = {
    "anonymous": None, "alice without roles": [], "viewer": ["viewer"], "editor": ["editor"],
    "admin": ["admin"],
}


def headers_of(issuer: DevIssuer, who: str, **extra: str) -> list[tuple[bytes, bytes]]:
    roles = ROLES[who]
    headers = [(name.replace("_", "-").encode(), value.encode()) for name, value in extra.items()]
    if roles is not None:
        headers.append(bearer(mint(issuer, "alice", claims={"roles": roles})))
    return headers


# (caller, method, path, status): the example policy (policies/policy.csv) as the proxy applies it.
DECISIONS = [
    ("anonymous", "GET", "/public/readme", 200),
    ("anonymous", "HEAD", "/public/readme", 200),
    ("anonymous", "POST", "/public/readme", 401),
    ("anonymous", "GET", "/api/p1/items", 401),
    ("alice without roles", "GET", "/api/me", 200),
    ("alice without roles", "GET", "/api/p1/items", 403),
    ("viewer", "GET", "/api/p1/items", 200),
    ("viewer", "HEAD", "/api/p1/items/7", 200),
    ("viewer", "POST", "/api/p1/items", 403),
    ("viewer", "GET", "/admin/users", 403),
    ("editor", "POST", "/api/p1/items", 200),
    ("editor", "DELETE", "/api/p1/items/7", 200),
    ("editor", "GET", "/api/p1/items", 200),  # an editor is a viewer (g, role:editor, role:viewer)
    ("editor", "DELETE", "/api/p1/items/audit", 403),  # the deny rule wins over the allow
    ("admin", "DELETE", "/api/p1/items/audit", 403),  # admins included
    ("admin", "PUT", "/admin/settings", 200),
]


def _decision_id(row: tuple[str, str, str, int]) -> str:
    who, method, path, status = row
    return f"{who} {method} {path} is {status}"


@pytest.mark.parametrize(("who", "method", "path", "status"), DECISIONS,
                         ids=[_decision_id(r) for r in DECISIONS])
def test_the_example_policy_decides_and_only_what_it_allows_reaches_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    who: str, method: str, path: str, status: int,
) -> None:
    answer = request(make_settings(policy=EXAMPLE_POLICY), method, path,
                     headers=headers_of(issuer, who))
    assert answer.status == status, answer.body
    if status == 200:
        seen = upstream.recorder.last
        assert (len(upstream.recorder), seen.method, seen.path) == (1, method, path)
    else:
        assert len(upstream.recorder) == 0


def _json_error(answer: Answer) -> dict[str, Any]:
    assert answer.header("content-type") == "application/json"
    body: dict[str, Any] = answer.json()
    assert body["request_id"] == answer.header("x-request-id")
    assert answer.header("cache-control") == "no-store"
    assert int(answer.header("content-length") or -1) == len(answer.body)
    return body


def test_no_credentials_is_401_with_a_bare_bearer_challenge(make_settings: MakeSettings) -> None:
    answer = request(make_settings(), "GET", "/echo")
    assert answer.status == 401
    # RFC 6750 §3.1: no error code when the request carried no token at all.
    assert answer.header("www-authenticate") == 'Bearer realm="gatekeeper"'
    body = _json_error(answer)
    assert (body["error"], body["error_description"]) == ("unauthenticated",
                                                          "a bearer token is required")


def _expired(issuer: DevIssuer) -> str:
    return mint(issuer, claims={"exp": 1_000_000_000})  # 2001: long past any leeway


def _other_audience(issuer: DevIssuer) -> str:
    return mint(issuer, audience="another-api")


def _unknown_issuer(issuer: DevIssuer) -> str:
    stranger = DevIssuer()
    stranger.issuer = issuer.issuer + "/elsewhere"
    return mint(stranger)


def _garbage(issuer: DevIssuer) -> str:
    return "not-a-jwt"


BAD_TOKENS = [
    (_expired, "expired", "token expired"),
    (_other_audience, "bad_audience", "audience not accepted"),
    (_unknown_issuer, "bad_issuer", "issuer not accepted"),
    (_garbage, "malformed_token", "malformed token"),
]


@pytest.mark.parametrize(("make_token", "code", "description"), BAD_TOKENS,
                         ids=["an expired token", "a token for another audience",
                              "a token from an issuer not configured", "a value that is no JWT"])
def test_a_bad_token_is_401_with_invalid_token_in_the_challenge_and_never_reaches_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    make_token: Any, code: str, description: str,
) -> None:
    answer = request(make_settings(), "GET", "/echo", headers=[bearer(make_token(issuer))])
    assert answer.status == 401
    assert answer.header("www-authenticate") == (
        f'Bearer realm="gatekeeper", error="invalid_token", error_description="{description}"')
    body = _json_error(answer)
    assert (body["error"], body["error_description"]) == (code, description)
    assert len(upstream.recorder) == 0


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["huge", "minus-huge"])
def test_a_date_no_float_holds_is_a_401_not_a_500(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, claim: str, value: int,
) -> None:
    """Anyone may send a JWT whose exp is 400 digits (Python's JSON reader keeps it as an exact
    int): the unverified read's math.isfinite raised OverflowError, a 500 (CWE-248)."""
    signed = forge.parts(mint(issuer))
    token = forge.join(signed[0], {**signed[1], claim: value}, signed[2])
    answer = request(make_settings(), "GET", "/echo", headers=[bearer(token)])
    assert answer.status == 401
    assert _json_error(answer)["error"] == "invalid_claim"
    assert len(upstream.recorder) == 0


def test_without_browser_login_a_401_is_json_even_for_a_browser(make_settings: MakeSettings) -> None:
    answer = request(make_settings(), "GET", "/echo", headers=[(b"accept", b"text/html")])
    assert answer.status == 401
    assert _json_error(answer)["error"] == "unauthenticated"
    assert answer.header("location") is None  # no login to send the browser to


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"],
                         ids=["no Accept", "Accept JSON", "Accept anything"])
def test_a_403_is_json_unless_html_is_asked_for(
    make_settings: MakeSettings, issuer: DevIssuer, accept: str | None,
) -> None:
    extra = {"accept": accept} if accept is not None else {}
    answer = request(make_settings(policy=EXAMPLE_POLICY), "GET", "/admin/users",
                     headers=headers_of(issuer, "viewer", **extra))
    assert answer.status == 403
    assert answer.header("www-authenticate") is None  # credentials were fine: no challenge
    body = _json_error(answer)
    assert body == {"error": "forbidden", "error_description": "the policy does not allow this request",
                    "request_id": answer.header("x-request-id")}


def test_a_403_for_a_browser_is_a_page_naming_the_caller_with_the_claim_escaped(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    email = '<script>alert("x")</script>@example.com'
    token = mint(issuer, claims={"roles": ["viewer"], "email": email})
    answer = request(make_settings(policy=EXAMPLE_POLICY), "GET", "/admin/users",
                     headers=[bearer(token), (b"accept", b"text/html,application/xhtml+xml")])
    assert answer.status == 403
    assert answer.header("content-type") == "text/html; charset=utf-8"
    assert answer.header("cache-control") == "no-store"
    assert "Access denied" in answer.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;@example.com" in answer.text
    assert "<script>" not in answer.text
    assert f"<code>{answer.header('x-request-id')}</code>" in answer.text  # to quote to support


def test_a_well_formed_request_id_is_kept_on_the_answer_and_at_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    rid = "trace-0123456789abcdef"
    settings = make_settings()
    allowed = request(settings, "GET", "/echo",
                      headers=[bearer(mint(issuer)), (b"x-request-id", rid.encode())])
    refused = request(settings, "GET", "/echo", headers=[(b"x-request-id", rid.encode())])
    assert allowed.header("x-request-id") == rid
    assert upstream.recorder.last.header_values("x-request-id") == [rid]
    assert refused.header("x-request-id") == rid and refused.json()["request_id"] == rid


@pytest.mark.parametrize("sent", [b"short", b"has space in it", b"x" * 129, b"quote\"s-0123456"],
                         ids=["too short", "a space", "too long", "a quote"])
def test_a_malformed_request_id_is_replaced_by_one_of_gatekeepers(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, sent: bytes,
) -> None:
    answer = request(make_settings(), "GET", "/echo",
                     headers=[bearer(mint(issuer)), (b"x-request-id", sent)])
    made = answer.header("x-request-id")
    assert made is not None and made != sent.decode("latin-1")
    assert re.fullmatch(r"[0-9a-f]{24}", made)
    assert upstream.recorder.last.header_values("x-request-id") == [made]


def test_an_allowed_answer_is_the_apps_own_passed_on(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    answer = request(make_settings(), "GET", "/status/418", headers=[bearer(mint(issuer))])
    assert answer.status == 418
    answer = request(make_settings(), "GET", "/echo?x=1", headers=[bearer(mint(issuer))])
    echoed = json.loads(answer.body)
    assert (answer.status, echoed["path"], echoed["query"]) == (200, "/echo", "x=1")
