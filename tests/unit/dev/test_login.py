"""The dev issuer's login side (gatekeeper/dev/login.py) over real HTTP, as a relying party sees it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.issuer_http import create_issuer_app
from gatekeeper.dev.login import SESSION_COOKIE, DevClient, DevLogin
from tests.support import forge
from tests.support.oidc import LoginError, login_with_http_client
from tests.support.servers import serve_asgi

CALLBACK = "http://127.0.0.1:9/callback"  # never requested: the tests read redirects, not follow them
SIGNED_OUT = "http://127.0.0.1:9/signed-out"
WEB = DevClient("web", "web-secret", [CALLBACK], [SIGNED_OUT])
SPA = DevClient("spa", None, ["http://127.0.0.1:9/spa?tab=home"])  # public, and a query to keep


@dataclass
class Provider:
    issuer: DevIssuer
    login: DevLogin
    url: str

    def browser(self) -> httpx.Client:
        """Keeps the provider's cookies, as a browser would."""
        return httpx.Client(base_url=self.url, trust_env=False, timeout=10)

    def jwks(self) -> jwt.PyJWKSet:
        with self.browser() as client:
            return jwt.PyJWKSet.from_dict(client.get("/jwks").json())


@dataclass
class Flow:
    """One authorization request, with what the relying party keeps for the callback."""

    client: DevClient
    verifier: str
    params: dict[str, str]


@pytest.fixture(scope="module")
def served() -> Iterator[Provider]:
    issuer = DevIssuer(algorithms=["RS256"])
    login = DevLogin(issuer, clients=[WEB, SPA])
    with serve_asgi(create_issuer_app(issuer, login=login)) as url:
        issuer.issuer = url
        yield Provider(issuer, login, url)


@pytest.fixture
def op(served: Provider) -> Iterator[Provider]:
    served.login.grant_counts.clear()
    yield served
    served.login.id_token_hook = None
    served.login.userinfo_overrides = {}
    served.login.clock = time.time
    served.issuer.discovery_overrides = {}


def start(client: DevClient = WEB, /, **overrides: str | None) -> Flow:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params: dict[str, str | None] = {
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "response_type": "code",
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return Flow(client, verifier, {name: value for name, value in params.items() if value is not None})


def authorize_url(op: Provider, flow: Flow) -> str:
    return str(httpx.URL(f"{op.url}/authorize", params=flow.params))


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def log_in(op: Provider, flow: Flow, user: str = "alice", browser: httpx.Client | None = None) -> str:
    """The code the callback receives, after checking what came with it."""
    with op.browser() as own:
        callback = login_with_http_client(browser or own, authorize_url(op, flow), user, f"{user}-password")
    assert callback.startswith(flow.params["redirect_uri"])
    received = query(callback)
    assert received["state"] == flow.params["state"]
    assert received["iss"] == op.issuer.issuer  # RFC 9207
    return received["code"]


def token_request(
    op: Provider, client: DevClient, form: dict[str, str], auth: str = "basic"
) -> httpx.Response:
    with op.browser() as http:
        if auth == "basic" and client.client_secret is not None:
            return http.post("/token", data=form, auth=(client.client_id, client.client_secret))
        secret = {} if client.client_secret is None else {"client_secret": client.client_secret}
        return http.post("/token", data={**form, "client_id": client.client_id, **secret})


def redeem(
    op: Provider, flow: Flow, code: str, *, verifier: str | None = None, auth: str = "basic"
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow.params["redirect_uri"],
            "code_verifier": verifier or flow.verifier}
    return token_request(op, flow.client, form, auth)


def refresh(op: Provider, client: DevClient, refresh_token: str) -> httpx.Response:
    return token_request(op, client, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def tokens(op: Provider, flow: Flow | None = None) -> dict[str, Any]:
    flow = flow or start()
    response = redeem(op, flow, log_in(op, flow))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(op: Provider, token: str, audience: str) -> dict[str, Any]:
    """As a strict relying party would: the served JWKS, the key's alg, our issuer and audience."""
    key = op.jwks()[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[key.algorithm_name], audience=audience, issuer=op.issuer.issuer
    )
    return claims


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["cache-control"] == "no-store"


# -- discovery and the code flow --------------------------------------------------------------


def test_discovery_advertises_the_login_endpoints_and_overrides_still_win(op: Provider) -> None:
    op.issuer.discovery_overrides = {"scopes_supported": ["openid"]}
    with op.browser() as client:
        document = client.get("/.well-known/openid-configuration").json()
    assert document["authorization_endpoint"] == f"{op.url}/authorize"
    assert document["token_endpoint"] == f"{op.url}/token"
    assert document["userinfo_endpoint"] == f"{op.url}/userinfo"
    assert document["end_session_endpoint"] == f"{op.url}/logout"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "none"}  # fmt: skip
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"sub", "email", "roles", "nonce"} <= set(document["claims_supported"])
    assert document["scopes_supported"] == ["openid"]


def test_the_code_flow_with_pkce_returns_tokens_that_verify_against_the_served_jwks(op: Provider) -> None:
    flow = start()
    body = tokens(op, flow)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["refresh_token"] and "." not in body["refresh_token"]  # opaque
    id_claims = verify(op, body["id_token"], audience="web")
    assert id_claims["sub"] == "alice"
    assert id_claims["nonce"] == flow.params["nonce"]
    assert id_claims["email"] == "alice@example.test"
    assert id_claims["roles"] == ["admin", "user"]
    assert id_claims["auth_time"] <= id_claims["iat"] < id_claims["exp"]
    assert id_claims["sid"] and id_claims["name"]
    access = verify(op, body["access_token"], audience="web")
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    assert (access["sub"], access["client_id"], access["roles"]) == ("alice", "web", ["admin", "user"])
    assert op.login.grant_counts == {"authorization_code": 1}


def test_the_access_token_audience_and_lifetime_are_configurable(op: Provider) -> None:
    op.login.access_token_audience, op.login.access_token_ttl_seconds = "api", 60
    try:
        body = tokens(op)
    finally:
        op.login.access_token_audience, op.login.access_token_ttl_seconds = None, 300
    claims = verify(op, body["access_token"], audience="api")
    assert body["expires_in"] == claims["exp"] - claims["iat"] == 60


@pytest.mark.parametrize(
    ("client", "auth"),
    [(WEB, "basic"), (WEB, "post"), (SPA, "none")],
    ids=["client_secret_basic is accepted", "client_secret_post is accepted", "a public client sends none"],
)
def test_each_client_authentication_method_redeems_a_code(op: Provider, client: DevClient, auth: str) -> None:
    flow = start(client)
    response = redeem(op, flow, log_in(op, flow, "bob"), auth=auth)
    assert response.status_code == 200, response.text
    assert verify(op, response.json()["id_token"], audience=client.client_id)["sub"] == "bob"


@pytest.mark.parametrize(
    ("client", "auth", "error"),
    [
        (DevClient("web", "wrong", []), "basic", "invalid_client"),
        (DevClient("web", "wrong", []), "post", "invalid_client"),
        (DevClient("web", None, []), "none", "invalid_client"),
        (DevClient("spa", "made-up", []), "post", "invalid_client"),
        (DevClient("nobody", None, []), "none", "invalid_client"),
    ],
    ids=[
        "a wrong Basic secret", "a wrong posted secret", "a confidential client without its secret",
        "a public client with a secret", "an unknown client",
    ],
)
def test_failed_client_authentication_is_invalid_client(
    op: Provider, client: DevClient, auth: str, error: str
) -> None:
    flow = start(SPA if client.client_id == "spa" else WEB)
    response = redeem(op, Flow(client, flow.verifier, flow.params), log_in(op, flow), auth=auth)
    assert response.status_code == 401
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"].startswith("Basic")


def test_two_client_authentication_methods_at_once_are_refused(op: Provider) -> None:
    flow = start()
    form = {"grant_type": "authorization_code", "code": log_in(op, flow), "client_secret": "web-secret",
            "redirect_uri": CALLBACK, "code_verifier": flow.verifier}
    with op.browser() as http:
        response = http.post("/token", data=form, auth=("web", "web-secret"))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_wrong_code_verifier_is_invalid_grant_and_leaves_the_code_to_its_owner(op: Provider) -> None:
    flow = start()
    code = log_in(op, flow)
    assert_invalid_grant(redeem(op, flow, code, verifier=secrets.token_urlsafe(48)))
    assert redeem(op, flow, code).status_code == 200


def test_the_redirect_uri_at_the_token_endpoint_must_be_the_authorize_one(op: Provider) -> None:
    flow = start()
    code = log_in(op, flow)
    assert_invalid_grant(redeem(op, Flow(WEB, flow.verifier, {"redirect_uri": CALLBACK + "/"}), code))


def test_a_code_expires_after_60_seconds(op: Provider) -> None:
    flow = start()
    code = log_in(op, flow)
    op.login.clock = lambda: time.time() + 61
    assert_invalid_grant(redeem(op, flow, code))


def test_a_reused_code_is_invalid_grant_and_revokes_the_refresh_token_it_gave(op: Provider) -> None:
    flow = start()
    code = log_in(op, flow)
    first = redeem(op, flow, code)
    assert first.status_code == 200
    assert_invalid_grant(redeem(op, flow, code))
    assert_invalid_grant(refresh(op, WEB, first.json()["refresh_token"]))


# -- refresh ------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_new_id_token_keeps_sub_iss_aud_without_the_nonce(op: Provider) -> None:
    first = tokens(op)
    response = refresh(op, WEB, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    before, after = verify(op, first["id_token"], "web"), verify(op, second["id_token"], "web")
    assert (after["sub"], after["iss"], after["aud"]) == (before["sub"], before["iss"], before["aud"])
    assert (after["auth_time"], after["sid"]) == (before["auth_time"], before["sid"])
    assert "nonce" not in after
    assert op.login.grant_counts == {"authorization_code": 1, "refresh_token": 1}
    assert_invalid_grant(refresh(op, WEB, first["refresh_token"]))  # the old one is dead


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(op: Provider) -> None:
    first = tokens(op)
    second = refresh(op, WEB, first["refresh_token"]).json()
    assert_invalid_grant(refresh(op, WEB, first["refresh_token"]))
    assert_invalid_grant(refresh(op, WEB, second["refresh_token"]))


def test_a_refresh_token_works_only_for_its_own_client(op: Provider) -> None:
    body = tokens(op)
    assert_invalid_grant(refresh(op, SPA, body["refresh_token"]))
    assert refresh(op, WEB, body["refresh_token"]).status_code == 200


# -- userinfo -----------------------------------------------------------------------------------


def test_userinfo_answers_a_valid_access_token_with_the_overrides_merged(op: Provider) -> None:
    access_token = tokens(op)["access_token"]
    op.login.userinfo_overrides = {"sub": "someone-else", "name": None}
    with op.browser() as client:
        response = client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code == 200
    assert response.json() == {
        "sub": "someone-else", "email": "alice@example.test", "roles": ["admin", "user"]}  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["no token", "garbage", "expired", "alg none", "not from a login"],
    ids=lambda case: f"{case} gets 401",
)
def test_userinfo_refuses_what_this_provider_did_not_issue(op: Provider, case: str) -> None:
    access_token = tokens(op)["access_token"]
    header, payload, _ = forge.parts(access_token)
    bearer = {
        "no token": None,
        "garbage": "not-a-jwt",
        "expired": access_token,
        "alg none": forge.unsigned(header, payload),
        "not from a login": op.issuer.mint("alice", audience="web"),  # no client_id: not an access token
    }[case]
    if case == "expired":
        op.login.clock = lambda: time.time() + 301
    with op.browser() as client:
        response = client.get("/userinfo", headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert ('error="invalid_token"' in challenge) == (bearer is not None)


# -- the authorization endpoint's pages -------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "nobody"},
        {"redirect_uri": "http://evil.test/callback"},
        {"redirect_uri": CALLBACK + "/more"},
        {"redirect_uri": SPA.redirect_uris[0]},
        {"redirect_uri": None},
    ],
    ids=["an unknown client", "a foreign redirect_uri", "a longer redirect_uri",
         "another client's redirect_uri", "no redirect_uri"],
)
def test_a_bad_client_or_redirect_uri_gets_an_error_page_never_a_redirect(
    op: Provider, overrides: dict[str, str | None]
) -> None:
    with op.browser() as client:
        response = client.get(authorize_url(op, start(**overrides)))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"scope": "profile email"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
    ],
    ids=["no openid scope", "an implicit response_type", "no PKCE", "PKCE plain"],
)
def test_other_bad_requests_go_back_to_the_client_with_an_error(
    op: Provider, overrides: dict[str, str | None], error: str
) -> None:
    flow = start(**overrides)
    with op.browser() as client:
        response = client.get(authorize_url(op, flow))
    assert response.status_code == 302
    assert response.headers["location"].startswith(CALLBACK + "?")
    received = query(response.headers["location"])
    assert (received["error"], received["state"], received["iss"]) == (error, flow.params["state"], op.url)


def test_the_login_form_lists_the_demo_users_and_refuses_a_wrong_password(op: Provider) -> None:
    with op.browser() as client:
        page = client.get(authorize_url(op, start()))
        assert "alice-password" in page.text and "bob-password" in page.text
        assert "<script" not in page.text and 'value="cancel"' in page.text
        with pytest.raises(LoginError, match="Invalid username or password"):
            login_with_http_client(client, authorize_url(op, start()), "alice", "bob-password")


def test_cancel_goes_back_to_the_client_with_access_denied(op: Provider) -> None:
    flow = start()
    with op.browser() as client:
        response = client.post("/authorize", data={**flow.params, "action": "cancel"})
    assert response.status_code == 302
    received = query(response.headers["location"])
    assert (received["error"], received["state"]) == ("access_denied", flow.params["state"])


def test_a_second_login_is_silent_unless_prompt_login(op: Provider) -> None:
    with op.browser() as browser:
        before = browser.get(authorize_url(op, start(prompt="none")))
        assert query(before.headers["location"])["error"] == "login_required"
        log_in(op, start(), browser=browser)
        assert SESSION_COOKIE in browser.cookies
        silent = browser.get(authorize_url(op, start(prompt="none")))
        assert silent.status_code == 302 and "code" in query(silent.headers["location"])
        forced = browser.get(authorize_url(op, start(prompt="login")))
        assert forced.status_code == 200 and "<form" in forced.text


# -- logout -------------------------------------------------------------------------------------


def test_logout_redirects_to_a_registered_uri_and_ends_the_session(op: Provider) -> None:
    with op.browser() as browser:
        flow = start()
        id_token = redeem(op, flow, log_in(op, flow, browser=browser)).json()["id_token"]
        params = {"id_token_hint": id_token, "post_logout_redirect_uri": SIGNED_OUT, "state": "s1"}
        response = browser.get("/logout", params=params)
        assert response.status_code == 302
        assert response.headers["location"] == f"{SIGNED_OUT}?state=s1"
        assert browser.get(authorize_url(op, start())).text.count("<form") == 1  # the login form again


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"client_id": "web", "post_logout_redirect_uri": SIGNED_OUT}, 302),
        ({"client_id": "web", "post_logout_redirect_uri": CALLBACK}, 400),
        ({"client_id": "spa", "post_logout_redirect_uri": SIGNED_OUT}, 400),
        ({"post_logout_redirect_uri": SIGNED_OUT}, 400),
        ({"id_token_hint": "not-a-jwt", "post_logout_redirect_uri": SIGNED_OUT}, 400),
        ({}, 200),
    ],
    ids=[
        "a registered uri with client_id redirects", "a login redirect_uri is not a logout one",
        "another client's uri is refused", "a uri without a client is refused",
        "a bad id_token_hint is refused", "no uri shows the signed-out page",
    ],
)
def test_logout_redirects_only_to_registered_uris(op: Provider, params: dict[str, str], status: int) -> None:
    with op.browser() as client:
        response = client.get("/logout", params=params)
    assert response.status_code == status
    if status == 302:
        assert response.headers["location"] == SIGNED_OUT
    else:
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")


# -- the misbehaving-provider hooks -----------------------------------------------------------


def test_the_id_token_hook_can_change_claims_and_drop_kid(op: Provider) -> None:
    phases: list[str] = []

    def hook(header: dict[str, Any], claims: dict[str, Any], phase: str) -> None:
        phases.append(phase)
        del header["kid"]
        claims["aud"] = "someone-else"

    op.login.id_token_hook = hook
    body = tokens(op)
    refresh(op, WEB, body["refresh_token"])
    assert phases == ["code", "refresh"]
    header = jwt.get_unverified_header(body["id_token"])
    assert header == {"alg": "RS256", "typ": "JWT"}
    (key,) = op.jwks().keys
    claims = jwt.decode(body["id_token"], key, algorithms=["RS256"], audience="someone-else")
    assert claims["sub"] == "alice"


def test_the_id_token_hook_can_return_a_forged_token_verbatim(op: Provider) -> None:
    def hook(header: dict[str, Any], claims: dict[str, Any], phase: str) -> str:
        return forge.unsigned(header, claims)

    op.login.id_token_hook = hook
    id_token = tokens(op)["id_token"]
    header, claims, signature = forge.parts(id_token)
    assert header["alg"] == "none" and signature == b""
    assert claims["sub"] == "alice"
