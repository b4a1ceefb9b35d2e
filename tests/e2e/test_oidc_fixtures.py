"""Smoke tests of the OIDC test infrastructure: the real provider, the HTTP login helper, Chromium.

These do the relying party's job by hand (PKCE, code exchange, ID token checks, refresh, logout),
so that gatekeeper's own OIDC tests can trust the provider and the browser they run against.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.support.browser import chromium_page
from tests.support.oidc import (
    LoginError,
    OidcProvider,
    login_with_http_client,
    logout_with_http_client,
    run_oidc_provider,
)
from tests.support.servers import serve_asgi

SCOPE = "openid profile email offline_access"


@dataclass
class RelyingParty:
    """A stand-in for gatekeeper: pages for the browser, and a back-channel logout receiver."""

    url: str
    logout_tokens: list[str] = field(default_factory=list)

    @property
    def callback(self) -> str:
        return self.url + "/callback"

    @property
    def signed_out(self) -> str:
        return self.url + "/signed-out"


def create_relying_party_app(rp: RelyingParty) -> Starlette:
    async def hello(request: Request) -> Response:
        return HTMLResponse("<!DOCTYPE html><title>hello</title><h1 id='greeting'>Hello from loopback</h1>")

    async def echo(request: Request) -> Response:
        # The query the provider sent back, for the browser test to read off the page.
        query = html.escape(request.url.query)
        return HTMLResponse(f"<!DOCTYPE html><title>callback</title><pre id='query'>{query}</pre>")

    async def backchannel_logout(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())  # no python-multipart in the venv
        rp.logout_tokens.append(form["logout_token"][0])
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/hello", hello),
        Route("/callback", echo),
        Route("/signed-out", echo),
        Route("/backchannel-logout", backchannel_logout, methods=["POST"]),
    ])


@pytest.fixture(scope="module")
def relying_party() -> Iterator[RelyingParty]:
    rp = RelyingParty(url="")
    with serve_asgi(create_relying_party_app(rp)) as url:
        rp.url = url
        yield rp


@pytest.fixture(scope="module")
def provider(relying_party: RelyingParty) -> Iterator[OidcProvider]:
    with run_oidc_provider(
        redirect_uris=[relying_party.callback],
        post_logout_redirect_uris=[relying_party.signed_out],
        access_token_ttl=30,
        backchannel_logout_uri=relying_party.url + "/backchannel-logout",
    ) as op:
        yield op


@pytest.fixture(scope="module")
def discovery(provider: OidcProvider) -> dict[str, Any]:
    return provider.discovery()


@pytest.fixture(scope="module")
def jwks(provider: OidcProvider, discovery: dict[str, Any]) -> jwt.PyJWKSet:
    with provider.http_client() as client:
        return jwt.PyJWKSet.from_dict(client.get(discovery["jwks_uri"]).raise_for_status().json())


@dataclass
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(
    provider: OidcProvider, discovery: dict[str, Any], redirect_uri: str, **extra: str
) -> AuthorizationRequest:
    code_verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(code_verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()  # RFC 7636 §4.2
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    url = f"{discovery['authorization_endpoint']}?{urlencode(params)}"
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def exchange_code(
    provider: OidcProvider, discovery: dict[str, Any], code: str, redirect_uri: str, code_verifier: str
) -> httpx.Response:
    """The token request of a confidential client, authenticated with client_secret_basic."""
    with provider.http_client() as backend:
        return backend.post(
            discovery["token_endpoint"],
            auth=(provider.client_id, provider.client_secret),
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                  "code_verifier": code_verifier},
        )


def verify_id_token(token: str, provider: OidcProvider, jwks: jwt.PyJWKSet) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    claims: dict[str, Any] = jwt.decode(
        token, jwks[kid], algorithms=["RS256"], audience=provider.client_id, issuer=provider.issuer
    )
    return claims


def test_discovery_names_the_endpoints_and_s256(provider: OidcProvider, discovery: dict[str, Any]) -> None:
    assert discovery["issuer"] == provider.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint",
                     "end_session_endpoint", "jwks_uri"):
        assert discovery[endpoint].startswith(provider.issuer + "/"), endpoint
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert discovery["backchannel_logout_supported"] is True
    assert {"RS256", "ES256"} <= set(discovery["id_token_signing_alg_values_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(
        discovery["token_endpoint_auth_methods_supported"])


def test_jwks_holds_an_rs256_and_an_es256_key(jwks: jwt.PyJWKSet) -> None:
    assert sorted(key.algorithm_name for key in jwks.keys) == ["ES256", "RS256"]


@dataclass
class Login:
    request: AuthorizationRequest
    callback: str
    tokens: dict[str, Any]


def log_in(
    provider: OidcProvider, discovery: dict[str, Any], browser: httpx.Client, rp: RelyingParty, username: str
) -> Login:
    """Log in through the forms, then exchange the code."""
    request = authorization_request(provider, discovery, rp.callback)
    callback = login_with_http_client(browser, request.url, username, provider.users[username].password)
    code = query_of(callback)["code"]
    response = exchange_code(provider, discovery, code, rp.callback, request.code_verifier)
    assert response.status_code == 200, response.text
    return Login(request=request, callback=callback, tokens=response.json())


def refresh(provider: OidcProvider, discovery: dict[str, Any], refresh_token: str) -> httpx.Response:
    # client_secret_post this time: the client may use either method.
    with provider.http_client() as backend:
        return backend.post(discovery["token_endpoint"], data={
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": provider.client_id, "client_secret": provider.client_secret,
        })


def test_code_flow_with_pkce_gives_verified_tokens_and_userinfo(
    provider: OidcProvider, discovery: dict[str, Any], jwks: jwt.PyJWKSet, relying_party: RelyingParty
) -> None:
    alice = provider.users["alice"]
    with provider.http_client() as browser:
        login = log_in(provider, discovery, browser, relying_party, "alice")
    assert login.callback.startswith(relying_party.callback + "?")
    answer = query_of(login.callback)
    assert answer["state"] == login.request.state
    assert answer["iss"] == provider.issuer  # RFC 9207
    tokens = login.tokens
    assert tokens["token_type"] == "Bearer"
    assert 0 < tokens["expires_in"] <= 30
    assert tokens["refresh_token"]

    claims = verify_id_token(tokens["id_token"], provider, jwks)
    assert claims["nonce"] == login.request.nonce
    assert claims["sub"] == alice.sub
    assert claims["roles"] == list(alice.roles)
    assert claims["email"] == alice.email

    with provider.http_client() as backend:
        userinfo = backend.get(discovery["userinfo_endpoint"],
                               headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert userinfo["sub"] == alice.sub
    assert userinfo["roles"] == list(alice.roles)
    assert userinfo["email"] == alice.email


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(
    provider: OidcProvider, discovery: dict[str, Any], jwks: jwt.PyJWKSet, relying_party: RelyingParty
) -> None:
    with provider.http_client() as browser:
        tokens = log_in(provider, discovery, browser, relying_party, "alice").tokens
    first = refresh(provider, discovery, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert rotated["access_token"] != tokens["access_token"]
    assert verify_id_token(rotated["id_token"], provider, jwks)["sub"] == provider.users["alice"].sub

    reused = refresh(provider, discovery, tokens["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # Reuse detection: the new token dies with the old one, so a relying party must never send
    # one refresh token twice (e.g. from two requests refreshing at once).
    assert refresh(provider, discovery, rotated["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_replayed_code_is_refused_and_revokes_its_tokens(
    provider: OidcProvider, discovery: dict[str, Any], relying_party: RelyingParty
) -> None:
    with provider.http_client() as browser:
        login = log_in(provider, discovery, browser, relying_party, "bob")
    replay = exchange_code(provider, discovery, query_of(login.callback)["code"], relying_party.callback,
                           login.request.code_verifier)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: tokens issued for a replayed code are revoked.
    assert refresh(provider, discovery, login.tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_the_provider_session_skips_the_forms_until_rp_initiated_logout(
    provider: OidcProvider, discovery: dict[str, Any], jwks: jwt.PyJWKSet, relying_party: RelyingParty
) -> None:
    alice = provider.users["alice"]
    with provider.http_client() as browser:
        login = log_in(provider, discovery, browser, relying_party, "alice")

        again = authorization_request(provider, discovery, relying_party.callback)
        assert query_of(login_with_http_client(browser, again.url, "", ""))["state"] == again.state

        relying_party.logout_tokens.clear()
        end_session = discovery["end_session_endpoint"] + "?" + urlencode({
            "id_token_hint": login.tokens["id_token"],
            "post_logout_redirect_uri": relying_party.signed_out,
            "state": "bye",
        })
        assert logout_with_http_client(browser, end_session) == relying_party.signed_out + "?state=bye"

        # Back-channel logout reached the relying party before the browser was sent back.
        assert len(relying_party.logout_tokens) == 1
        token = relying_party.logout_tokens[0]
        claims = jwt.decode(token, jwks[jwt.get_unverified_header(token)["kid"]], algorithms=["RS256"],
                            audience=provider.client_id, issuer=provider.issuer)
        assert claims["sub"] == alice.sub
        assert claims["sid"]
        assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]

        after = authorization_request(provider, discovery, relying_party.callback)
        with pytest.raises(LoginError, match="Invalid username or password"):
            login_with_http_client(browser, after.url, alice.username, "wrong")


def test_pkce_is_required(
    provider: OidcProvider, discovery: dict[str, Any], relying_party: RelyingParty
) -> None:
    request = authorization_request(provider, discovery, relying_party.callback)
    url = httpx.URL(request.url).copy_remove_param("code_challenge")
    url = url.copy_remove_param("code_challenge_method")
    with provider.http_client() as browser:
        answer = query_of(login_with_http_client(browser, str(url), "bob", "bob-password"))
    assert answer["error"] == "invalid_request"
    assert "PKCE" in answer["error_description"]


def test_a_wrong_password_is_refused(
    provider: OidcProvider, discovery: dict[str, Any], relying_party: RelyingParty
) -> None:
    request = authorization_request(provider, discovery, relying_party.callback)
    with provider.http_client() as browser, pytest.raises(LoginError, match="Invalid username or password"):
        login_with_http_client(browser, request.url, "bob", "alice-password")


def test_options_jwt_access_tokens_and_es256_id_tokens(relying_party: RelyingParty) -> None:
    env = {"OIDC_JWT_ACCESS_TOKEN_AUDIENCE": "api", "OIDC_ID_TOKEN_ALG": "ES256"}
    with run_oidc_provider(redirect_uris=[relying_party.callback], env=env) as op:
        discovery = op.discovery()
        bob = op.users["bob"]
        request = authorization_request(op, discovery, relying_party.callback)
        with op.http_client() as client:
            code = query_of(login_with_http_client(client, request.url, bob.username, bob.password))["code"]
            jwks = jwt.PyJWKSet.from_dict(client.get(discovery["jwks_uri"]).json())
        exchanged = exchange_code(op, discovery, code, relying_party.callback, request.code_verifier)
        tokens = exchanged.raise_for_status().json()

    access_token = tokens["access_token"]
    header = jwt.get_unverified_header(access_token)
    assert header["typ"] == "at+jwt"  # RFC 9068
    claims = jwt.decode(access_token, jwks[header["kid"]], algorithms=["RS256"], audience="api",
                        issuer=op.issuer)
    assert claims["sub"] == bob.sub
    assert claims["roles"] == list(bob.roles)
    assert claims["client_id"] == op.client_id

    id_token = tokens["id_token"]
    header = jwt.get_unverified_header(id_token)
    id_claims = jwt.decode(id_token, jwks[header["kid"]], algorithms=["ES256"], audience=op.client_id,
                           issuer=op.issuer)
    assert header["alg"] == "ES256"
    assert id_claims["nonce"] == request.nonce
    assert id_claims["roles"] == list(bob.roles)


def test_chromium_serves_a_loopback_page_and_logs_in_at_the_provider(
    provider: OidcProvider, discovery: dict[str, Any], relying_party: RelyingParty
) -> None:
    alice = provider.users["alice"]
    request = authorization_request(provider, discovery, relying_party.callback)
    with chromium_page() as page:
        page.goto(relying_party.url + "/hello")
        assert page.text_content("#greeting") == "Hello from loopback"

        page.goto(request.url)
        page.fill("input[name=username]", alice.username)
        page.fill("input[name=password]", alice.password)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Allow access")  # the consent form, first login only
        page.click("button[type=submit]")
        page.wait_for_url(relying_party.callback + "?*")

        answer = query_of(page.url)
        assert answer["state"] == request.state
        assert answer["code"]
        assert "code=" in (page.text_content("#query") or "")
