"""Claim values the app would read as another identity than gatekeeper vouched for.

Roles reach the app comma-joined in one header (X-Auth-Request-Groups), and so does any list
claim a ``headers`` entry names. An app reads that value as an HTTP list (RFC 9110 §5.6.1):
split at commas, optional white space around each member dropped, a quoted member unquoted. A
role that the list reading turns into another name — `` admin``, ``admin ``, ``"admin"`` — was
never fed to the policy under that name, so the app must not see it at all.

An address the provider says it has not verified (``email_verified`` false) identifies nobody:
anyone can type one in at many providers (the "nOAuth" account takeover of apps keyed on
e-mail), so it never reaches the app as X-Auth-Request-Email.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, callback_of, login_oidc, served_login_issuer
from tests.e2e.test_proxy import raw_request, request_bytes
from tests.support.oidc import login_with_http_client
from tests.support.upstream import RecordedRequest

GROUPS = "x-auth-request-groups"
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def assert_refused(gatekeeper: Gatekeeper, upstream: Upstream, token: str, path: str,
                   error: str) -> None:
    """The bearer ``token`` at ``path`` gets 401 with ``error``, and the app sees nothing."""
    before = len(upstream.recorder)
    response = httpx.get(f"{gatekeeper.url}{path}",
                         headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    assert len(upstream.recorder) == before


def http_list(values: list[str]) -> set[str]:
    """Members of a comma-list header as an app's framework reads them (RFC 9110 §5.6.1)."""
    members: set[str] = set()
    for value in values:
        for member in value.split(","):
            member = member.strip()
            if len(member) >= 2 and member[0] == member[-1] == '"':
                member = member[1:-1]
            if member:
                members.add(member)
    return members


def _seen(gk: Gatekeeper, upstream: Upstream, token: str, path: str) -> RecordedRequest:
    before = len(upstream.recorder)
    response = httpx.get(f"{gk.url}{path}", headers={"authorization": f"Bearer {token}"},
                         timeout=10)
    assert response.status_code == 200, response.text
    assert len(upstream.recorder) == before + 1
    return upstream.recorder.last


@pytest.mark.parametrize("role", [
    " admin", "admin ", "\tadmin", "admin\u00a0", '"admin"', '" admin"', "dev,admin",
], ids=["leading space", "trailing space", "leading tab", "trailing no-break space",
        "quoted", "quoted with a space", "holding a comma"])
def test_a_role_the_app_would_read_as_another_is_not_granted(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, role: str
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, claims={"roles": ["dev", role]})
    seen = _seen(gatekeeper, upstream, token, "/echo/role-spelling")
    assert http_list(seen.header_values(GROUPS)) == {"dev"}


@pytest.fixture(scope="module")
def groups_gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    return gatekeeper_factory(headers={"X-Auth-Request-User": "sub", "X-Groups": "groups"})


@pytest.mark.parametrize("member", [" admin", "admin ", '"admin"', "dev,admin"],
                         ids=["leading space", "trailing space", "quoted", "holding a comma"])
def test_a_list_claim_member_the_app_would_read_as_another_is_left_out(
    groups_gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, member: str
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, claims={"groups": ["dev", member]})
    seen = _seen(groups_gatekeeper, upstream, token, "/echo/list-claim")
    assert http_list(seen.header_values("x-groups")) == {"dev"}


@pytest.mark.parametrize("verified", [False, "false", "False", 0, None, "no"],
                         ids=["false", "string false", "string False", "zero", "null", "string no"])
def test_an_unverified_email_never_reaches_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, verified: Any
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE,
                        claims={"email": "ceo@example.com", "email_verified": verified})
    seen = _seen(gatekeeper, upstream, token, "/echo/unverified-email")
    assert seen.header_values("x-auth-request-user") == ["alice"]
    assert seen.header_values("x-auth-request-email") == []


@pytest.mark.parametrize("claims", [
    {"email": "alice@example.com", "email_verified": True},
    {"email": "alice@example.com", "email_verified": "true"},
    {"email": "alice@example.com"},
], ids=["verified", "string true (Cognito userinfo)", "no email_verified claim"])
def test_an_email_not_said_to_be_unverified_reaches_the_app(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, claims: dict[str, Any]
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, claims=claims)
    seen = _seen(gatekeeper, upstream, token, "/echo/verified-email")
    assert seen.header_values("x-auth-request-email") == ["alice@example.com"]


@pytest.mark.parametrize(("subject", "claims"), [
    (" alice", {}), ("alice ", {}), ("\u00a0alice", {}), ("alice\u3000", {}),
    ("bob", {"email": " alice@example.com"}), ("bob", {"email": "alice@example.com "}),
], ids=["a subject with a leading space", "a subject with a trailing space",
        "a subject with a leading no-break space", "a subject with a trailing ideographic space",
        "an email with a leading space", "an email with a trailing space"])
def test_a_claim_an_http_parser_would_trim_into_another_identity_is_refused(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, subject: str,
    claims: dict[str, Any],
) -> None:
    """RFC 9110 §5.5: a field value has no white space at either end, so every parser drops it:
    the app would see ``alice`` (whom a revocation or the app's own rules name) for a token
    whose subject is not ``alice``. Refused like a claim holding control characters."""
    token = issuer.mint(subject, audience=AUDIENCE, claims=claims)
    assert_refused(gatekeeper, upstream, token, "/echo/edge-space", "unsafe_claim")


@pytest.mark.parametrize("cnf", [
    {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
    {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0", "jkt": "x"},
    {"jwk": {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
], ids=["DPoP key thumbprint (RFC 9449)", "a certificate thumbprint with a DPoP key",
        "proof-of-possession key (RFC 7800)"])
def test_a_token_bound_to_a_key_is_not_accepted_as_a_bearer_token(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, cnf: dict[str, Any]
) -> None:
    """A ``cnf`` claim says the token is good only with proof of a key (a DPoP proof, a raw
    key), which gatekeeper cannot check: a stolen copy must not pass as a plain bearer token.
    (A ``cnf`` naming only a client certificate is checked against it: tests/e2e/test_certbound.py.)"""
    token = issuer.mint("alice", audience=AUDIENCE, claims={"cnf": cnf})
    assert_refused(gatekeeper, upstream, token, "/echo/bound", "bound_token")


@pytest.mark.parametrize("typ", [
    "logout+jwt", "application/logout+jwt", "dpop+jwt", "secevent+jwt", "LOGOUT+JWT",
    "token-introspection+jwt",
], ids=lambda t: f"typ {t}")
def test_a_token_typed_as_another_kind_is_not_an_access_token(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, typ: str
) -> None:
    """RFC 8725 §3.11: a JWT typed for another use (a logout token, a DPoP proof, a security
    event) is not an access token, even signed by the issuer with the right claims."""
    token = issuer.mint("alice", audience=AUDIENCE, headers={"typ": typ})
    assert_refused(gatekeeper, upstream, token, "/echo/typed", "wrong_token_type")


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "application/at+jwt", "AT+JWT"],
                         ids=lambda t: f"typ {t}")
def test_an_access_token_typed_as_one_passes(
    gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, typ: str
) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, headers={"typ": typ})
    seen = _seen(gatekeeper, upstream, token, "/echo/typed-ok")
    assert seen.header_values("x-auth-request-user") == ["alice"]


@pytest.fixture(scope="module")
def cookie_gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    return gatekeeper_factory(auth={"token_sources": ["cookie:tok"]})


def _forged(subject: str) -> str:
    """A token for ``subject`` no issuer signed: what an app that decodes the cookie trusting
    gatekeeper to have checked it would read as the caller."""
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256'})}.{part({'sub': subject, 'aud': AUDIENCE})}.c2ln"


@pytest.mark.parametrize("layout", [
    ["tok={good}; tok={forged}"],
    ["tok={forged}; tok={good}"],
    ["tok={good}", "tok={forged}"],
    ['theme="x; tok={forged}"; tok={good}'],
    ["tok={good}; tok ={forged}"],
    ["tok={good}; \xa0tok={forged}"],
    ["tok={good}; theme=dark tok={forged}"],
    ["theme=dark tok = {forged}", "tok={good}"],
], ids=["twice in one header", "the forged one first", "in two Cookie headers",
        "one hidden in another's quoted value", "a space before '='",
        "a no-break space before the name (str.strip drops it: Starlette, Django)",
        "one after white space in another cookie (SimpleCookie and aiohttp split there)",
        "one after white space, spaced around '=', in the first line"])
def test_a_token_cookie_sent_twice_is_a_bad_request(
    cookie_gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer, layout: list[str]
) -> None:
    """Which of two same-named cookies counts differs by framework (first: Werkzeug, PHP,
    Express; last: Starlette, Python's SimpleCookie), and so does how it splits quoted values,
    trims names and treats white space: the app could read a token gatekeeper never verified.
    Refused, like two Authorization headers."""
    good = issuer.mint("mallory", audience=AUDIENCE)
    headers = [(b"cookie", v.format(good=good, forged=_forged("alice")).encode("latin-1"))
               for v in layout]
    before = len(upstream.recorder)
    response = httpx.get(f"{cookie_gatekeeper.url}/echo/cookie-twice", headers=headers, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "duplicate_token_cookie"
    assert len(upstream.recorder) == before


def test_one_token_cookie_among_others_passes(
    cookie_gatekeeper: Gatekeeper, upstream: Upstream, issuer: DevIssuer
) -> None:
    good = issuer.mint("mallory", audience=AUDIENCE)
    before = len(upstream.recorder)
    response = httpx.get(f"{cookie_gatekeeper.url}/echo/cookie-once",
                         headers={"cookie": f"theme=dark; tok={good}; tokx=1"}, timeout=10)
    assert response.status_code == 200, response.text
    assert len(upstream.recorder) == before + 1
    assert upstream.recorder.last.header_values("x-auth-request-user") == ["mallory"]


@pytest.fixture(scope="module")
def login_gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]
                     ) -> Iterator[tuple[Gatekeeper, DevLogin]]:
    import secrets

    from tests.support.servers import free_port

    port = free_port()
    with served_login_issuer([callback_of(port)]) as (dev, provider):
        yield gatekeeper_factory(
            listen=f"127.0.0.1:{port}",
            oidc=login_oidc(dev, port),
            session={"secret": secrets.token_urlsafe(32), "cookie_secure": False},
        ), provider


def test_a_login_whose_identity_cannot_reach_the_app_fails_at_the_callback(
    login_gatekeeper: tuple[Gatekeeper, DevLogin], upstream: Upstream
) -> None:
    """Not a session that every request then refuses, sending the browser to log in again and
    again (the provider remembers the user, so that would be an endless loop)."""
    gk, provider = login_gatekeeper

    def hook(header: dict[str, Any], claims: dict[str, Any], phase: str) -> str | None:
        claims["email"] = " alice@example.com"
        return None
    provider.id_token_hook = hook
    provider.userinfo_overrides = {"email": None}
    try:
        before = len(upstream.recorder)
        with gk.client(headers=BROWSER) as browser:
            started = browser.get("/page")
            assert started.status_code == 302, started.text
            callback = login_with_http_client(browser, started.headers["location"], "alice",
                                              "alice-password")
            answer = browser.get(callback)
            assert answer.status_code != 302, answer.headers.get("location")
            assert "unsafe_claim" in answer.text
            again = browser.get("/page")
        assert again.status_code == 302  # no session: a new login, not the page
        assert len(upstream.recorder) == before
    finally:
        provider.id_token_hook = None
        provider.userinfo_overrides = {}


@pytest.mark.parametrize("separator", ["\t", " \t", "\t "], ids=["tab", "space tab", "tab space"])
def test_a_bearer_credential_an_app_would_read_is_checked_not_passed_on(
    gatekeeper: Gatekeeper, upstream: Upstream, separator: str
) -> None:
    """RFC 6750 §2.1 separates ``Bearer`` from its token by spaces; Django REST framework and
    Flask-HTTPAuth split the header at any white space, so ``Bearer<TAB>token`` is a bearer
    token to them. Gatekeeper must not take it for another scheme, pass it to the app unchecked
    (here on a public path, or beside a session), and let the app read a forged identity."""
    forged = _forged("alice")
    before = len(upstream.recorder)
    response = raw_request(gatekeeper.url, request_bytes(
        "GET", "/public/bearer-tab",
        [("Host", "gk.test"), ("Authorization", f"Bearer{separator}{forged}")]))
    assert response.status == 401, response.body
    assert json.loads(response.body)["error"] in ("malformed_token", "bad_issuer")
    assert len(upstream.recorder) == before
