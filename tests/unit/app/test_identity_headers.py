"""Strip, then inject, in process: the app sees only identity headers gatekeeper vouches for, in
whatever spelling a client tried, and forwarding headers only from a trusted proxy."""

from __future__ import annotations

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream
from tests.support.asgi import HeaderInput, request
from tests.support.fakes import bearer, mint
from tests.support.spellings import FOREIGN_IDENTITY, IDENTITY, OVERRIDES, spellings
from tests.support.upstream import RecordedRequest
from tests.unit.app.conftest import MakeSettings

pytestmark = pytest.mark.usefixtures("both_shapes")  # the sidecar and the middleware

CLAIMS = {"email": "alice@example.com", "roles": ["admin", "dev"]}
SPOOF = "mallory.example"


def folded(record: RecordedRequest, name: str) -> list[str]:
    """Every value whose name folds to ``name`` the loosest way an app folds names (PHP, CGI)."""
    def fold(raw: bytes) -> str:
        return "".join(c if c.isalnum() else "-" for c in raw.decode("latin-1").lower())
    return [v.decode("latin-1") for n, v in record.headers if fold(n) == name]


def through(settings: Settings, upstream: Upstream, headers: HeaderInput, path: str = "/echo",
            ) -> RecordedRequest:
    """Send a GET that must be allowed; what the app received."""
    answer = request(settings, "GET", path, headers=headers)
    assert answer.status == 200, answer.body
    assert len(upstream.recorder) == 1
    return upstream.recorder.last


def test_the_identity_of_the_token_is_injected(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    seen = through(make_settings(), upstream, [bearer(mint(issuer, claims=CLAIMS))])
    assert seen.header_values("x-auth-request-user") == ["alice"]
    assert seen.header_values("x-auth-request-email") == ["alice@example.com"]
    assert seen.header_values("x-auth-request-groups") == ["admin,dev"]
    assert seen.header_values("x-auth-request-issuer") == [issuer.issuer]
    assert len(seen.header_values("x-request-id")) == 1


@pytest.mark.parametrize("name", IDENTITY)
def test_every_spelling_of_an_identity_header_is_replaced_by_gatekeepers_own(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, name: str,
) -> None:
    # A space in each value: a well-formed X-Request-Id is the client's to keep (tracing).
    spoofed = [(spelling, f"{SPOOF} {i}") for i, spelling in enumerate(spellings(name))]
    seen = through(make_settings(), upstream, [bearer(mint(issuer, claims=CLAIMS)), *spoofed])
    assert not [(n, v) for n, v in seen.headers if SPOOF.encode() in v]
    assert folded(seen, "x-auth-request-user") == ["alice"]


def test_on_a_public_path_every_client_copy_of_an_identity_header_is_removed(
    make_settings: MakeSettings, upstream: Upstream,
) -> None:
    spoofed = [(spelling, SPOOF) for name in IDENTITY[:3] for spelling in spellings(name)]
    seen = through(make_settings(), upstream, spoofed, path="/public/page")
    for name in ("x-auth-request-user", "x-auth-request-email", "x-auth-request-groups"):
        assert folded(seen, name) == [], name
    assert not [(n, v) for n, v in seen.headers if SPOOF.encode() in v]


@pytest.mark.parametrize("name", [*OVERRIDES[:4], *FOREIGN_IDENTITY[:6]])
def test_override_and_foreign_identity_headers_never_reach_the_app_in_any_spelling(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, name: str,
) -> None:
    sent = [(spelling, f"/{SPOOF}/{i}") for i, spelling in enumerate(spellings(name))]
    seen = through(make_settings(), upstream,
                   [bearer(mint(issuer)), ("x-benign_header", "kept"), *sent])
    assert not [(n, v) for n, v in seen.headers if SPOOF.encode() in v]
    assert seen.header_values("x-benign_header") == ["kept"]  # only strip-listed names go


# Where front proxies that end mTLS put the client's certificate, which apps behind them read as
# verified: RFC 9440 (nginx, Cloudflare transform rules), AWS ALB, Cloudflare's forwarding, Google
# Cloud's documented mTLS header names. RFC 9440 §6 and Cloudflare's guide: a proxy removes every
# client copy unconditionally — gatekeeper, ending mTLS itself, is that proxy.
CERTIFICATE_HEADERS = ["Client-Cert", "Client-Cert-Chain", "X-Amzn-Mtls-Clientcert",
                       "X-Amzn-Mtls-Clientcert-Leaf", "X-Amzn-Mtls-Clientcert-Subject",
                       "Cf-Client-Cert-Der-Base64", "Cf-Client-Cert-Sha256", "X-Client-Cert-Present",
                       "X-Client-Cert-Hash", "X-Client-Certificate"]


@pytest.mark.parametrize("name", CERTIFICATE_HEADERS)
def test_client_certificate_headers_of_front_proxies_never_reach_the_app_in_any_spelling(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, name: str,
) -> None:
    sent = [(spelling, f":{SPOOF}{i}:") for i, spelling in enumerate(spellings(name))]
    for path, credentials in (("/echo", [bearer(mint(issuer))]), ("/public/page", [])):
        upstream.recorder.clear()
        seen = through(make_settings(), upstream, [*credentials, *sent], path=path)
        assert not [(n, v) for n, v in seen.headers if SPOOF.encode() in v], path


@pytest.mark.parametrize("connection", ["close, X-Auth-Request-User", "x_auth_request_email",
                                        "X-Request-Id"], ids=lambda c: f"Connection: {c}")
def test_connection_cannot_delete_an_injected_header(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, connection: str,
) -> None:
    seen = through(make_settings(), upstream,
                   [bearer(mint(issuer, claims=CLAIMS)), ("connection", connection),
                    ("x-foo", "named-only-by-a-test")])
    assert folded(seen, "x-auth-request-user") == ["alice"]
    assert folded(seen, "x-auth-request-email") == ["alice@example.com"]
    assert len(folded(seen, "x-request-id")) == 1


def test_a_header_the_client_names_in_connection_goes_and_the_others_stay(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    seen = through(make_settings(), upstream, [bearer(mint(issuer)), ("connection", "X-Foo"),
                                               ("x-foo", "1"), ("x-bar", "2")])
    assert seen.header_values("x-foo") == []
    assert seen.header_values("x-bar") == ["2"]


CLIENT_FORWARDING = [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"),
                     ("x-forwarded-host", "evil.test"), ("forwarded", "for=6.6.6.6;proto=https"),
                     ("x-real-ip", "6.6.6.6")]


@pytest.mark.parametrize(("trusted", "expected"), [
    ([], {"x-forwarded-for": ["127.0.0.1"], "x-forwarded-proto": ["http"],
          "x-forwarded-host": ["gk.test"]}),
    (["127.0.0.1/32"], {"x-forwarded-for": ["6.6.6.6, 127.0.0.1"], "x-forwarded-proto": ["https"],
                        "x-forwarded-host": ["evil.test"]}),
], ids=["from an untrusted client they are replaced", "from a trusted proxy they are extended"])
def test_forwarding_headers(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    trusted: list[str], expected: dict[str, list[str]],
) -> None:
    seen = through(make_settings(trusted_proxies=trusted), upstream,
                   [bearer(mint(issuer)), *CLIENT_FORWARDING])
    assert {name: seen.header_values(name) for name in expected} == expected
    assert seen.header_values("forwarded") == [] and seen.header_values("x-real-ip") == []


@pytest.mark.parametrize(("name", "value"), [
    ("keep-alive", "timeout=5"), ("te", "trailers"), ("trailer", "X-Checksum"),
    ("proxy-authorization", "Basic c2VjcmV0OnNlY3JldA=="), ("proxy-connection", "keep-alive"),
])
def test_a_hop_by_hop_header_from_the_client_never_reaches_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, name: str, value: str,
) -> None:
    seen = through(make_settings(), upstream, [bearer(mint(issuer)), (name, value)])
    assert seen.header_values(name) == []


def test_hop_by_hop_headers_from_the_app_never_reach_the_client(
    make_settings: MakeSettings, issuer: DevIssuer,
) -> None:
    answer = request(make_settings(), "GET", "/hop", headers=[bearer(mint(issuer))])
    assert (answer.status, answer.json()) == (200, {"hop": True})
    assert answer.header_values("x-secret-hop") == []  # named by the app's Connection header
    assert answer.header_values("keep-alive") == []


def test_authorization_reaches_the_app_as_sent_by_default(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    token = mint(issuer)
    seen = through(make_settings(), upstream, [bearer(token)])
    assert seen.header_values("authorization") == [f"Bearer {token}"]
    assert folded(seen, "x-auth-request-access-token") == []


def test_the_token_can_go_in_its_own_header_instead_of_authorization(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    token = mint(issuer)
    settings = make_settings(pass_authorization_header=False, pass_access_token=True)
    seen = through(settings, upstream, [bearer(token), ("x-auth-request-access-token", SPOOF)])
    assert seen.header_values("authorization") == []
    assert folded(seen, "x-auth-request-access-token") == [token]


@pytest.mark.parametrize("email", ["alice@example.com\r\nX-Admin: 1", "alice\x00@example.com",
                                   " alice@example.com"],
                         ids=["CR LF", "NUL", "white space at an end"])
def test_a_claim_that_cannot_be_a_header_refuses_the_request(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream, email: str,
) -> None:
    answer = request(make_settings(), "GET", "/echo",
                     headers=[bearer(mint(issuer, claims={"email": email}))])
    assert answer.status == 401
    assert answer.json()["error"] == "unsafe_claim"
    assert len(upstream.recorder) == 0


# (the Cookie headers sent, with TOKEN for the caller's token; what the app must get)
TOKEN_COOKIES = [
    (["gk_token=TOKEN"], []),
    (["a=1; gk_token=TOKEN; b=2"], ["a=1; b=2"]),
    (["a=1", "gk_token=TOKEN"], ["a=1"]),
]


@pytest.mark.parametrize(("cookies", "kept"), TOKEN_COOKIES,
                         ids=["alone", "among-others", "in-its-own-cookie-header"])
def test_without_pass_authorization_the_token_cookie_never_reaches_the_app(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
    cookies: list[str], kept: list[str],
) -> None:
    """``pass_authorization_header: false`` says the app does not get the caller's token as sent;
    a token read from ``cookie:NAME`` is the same credential, and went to the app as sent."""
    token = mint(issuer)
    settings = make_settings(pass_authorization_header=False,
                             auth={"token_sources": ["header", "cookie:gk_token"]})
    sent = [("cookie", c.replace("TOKEN", token)) for c in cookies]
    seen = through(settings, upstream, sent)
    assert folded(seen, "x-auth-request-user") == ["alice"]
    assert not [(n, v) for n, v in seen.headers if token.encode() in v]
    assert seen.header_values("cookie") == kept


def test_with_pass_authorization_the_token_cookie_reaches_the_app_as_sent(
    make_settings: MakeSettings, issuer: DevIssuer, upstream: Upstream,
) -> None:
    token = mint(issuer)
    settings = make_settings(auth={"token_sources": ["header", "cookie:gk_token"]})
    seen = through(settings, upstream, [("cookie", f"a=1; gk_token={token}")])
    assert seen.header_values("cookie") == [f"a=1; gk_token={token}"]
