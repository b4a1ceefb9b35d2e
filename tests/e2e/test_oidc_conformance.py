"""The OpenID Foundation's relying-party conformance cases for the code flow, as one table.

A real gatekeeper process logs a browser in at the dev OpenID Provider (gatekeeper/dev/login.py),
which misbehaves on purpose for one row at a time: its ``id_token_hook`` forges or edits the ID
token, ``userinfo_overrides`` lies about the user, its issuer rotates or breaks signing keys. Row
ids are the OIDF module names without their ``oidcc-client-test-`` prefix; rows the suite does
not have (missing nonce, azp, expiry, iat, key confusion, a malformed JWKS entry) are named in
the same style. Each row ends one of five ways:

    Refused            the callback answers an error page naming the failed check; no session
    Accepted           back at the page the login started from; the app sees the user
    RefreshEnds        after a login, the refreshed ID token breaks OIDC Core §12.2: the session
                       ends (a browser is sent to log in again, an API caller gets a 401)
    RefreshContinues   the refreshed ID token names the same user: the session goes on
    NeverLogsIn        a provider whose discovery names another issuer is never used

Gatekeeper refetches the JWKS on every unknown kid here (``jwks_min_refresh_seconds: 0``), so a
row that needs its key cache to match the provider logs in once with a brand-new kid first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.login import DevLogin
from tests.conftest import Gatekeeper, Upstream, callback_of, served_login_issuer
from tests.support import forge
from tests.support.oidc import login_with_http_client
from tests.support.servers import free_port

CLIENT_ID = "gatekeeper"
CLIENT_SECRET = "dev-client-secret"
SESSION_SECRET = "conformance-session-secret-0123456789abcdef"
LEEWAY = 30  # auth.leeway_seconds: clock skew allowed for exp and iat
ACCESS_TOKEN_TTL = 300  # the provider's default here; refresh rows shorten it to 1 s
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"accept": "application/json"}
PAGE = "/hello"


def _config(issuer: DevIssuer, port: int) -> dict[str, Any]:
    return {
        "listen": f"127.0.0.1:{port}",
        "oidc": {"issuer": issuer.issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                 "redirect_url": callback_of(port), "algorithms": ["RS256", "ES256"],
                 "refresh_margin_seconds": 0},
        "session": {"secret": SESSION_SECRET, "cookie_secure": False},
        "auth": {"leeway_seconds": LEEWAY, "jwks_min_refresh_seconds": 0},
    }


def _session_cookies(response: httpx.Response) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith("_gatekeeper=")]


@dataclass
class World:
    gk: Gatekeeper
    issuer: DevIssuer  # the provider's keys, discovery and JWKS
    provider: DevLogin  # its login side: the hooks that make it misbehave
    upstream: Upstream

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer.issuer}/authorize?"

    def browser(self, gk: Gatekeeper | None = None) -> httpx.Client:
        """A fresh cookie jar each time, so every login shows the provider's form."""
        return httpx.Client(base_url=(gk or self.gk).url, trust_env=False, timeout=10, headers=BROWSER)

    def log_in(self, client: httpx.Client) -> httpx.Response:
        """The protected page → the provider's form as alice → gatekeeper's callback answer."""
        started = client.get(PAGE)
        assert started.status_code == 302, started.text
        assert started.headers["location"].startswith(self.authorize_url)
        callback = login_with_http_client(client, started.headers["location"], "alice", "alice-password")
        assert callback.startswith(f"{self.gk.url}/oauth2/callback?"), callback
        return client.get(callback)

    def log_in_once(self) -> None:
        """An honest login, so gatekeeper fetches the JWKS if the current kid is new to it."""
        with self.browser() as client:
            answer = self.log_in(client)
        assert answer.status_code == 302, answer.text

    def reason(self, response: httpx.Response) -> str:
        """The access log's reason for ``response`` (its X-Request-Id)."""
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in self.gk.access_log():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("request_id") == request_id and "decision" in entry:
                    return str(entry["reason"])
            time.sleep(0.02)
        raise AssertionError(f"no access log line for request {request_id}")

    def reset(self) -> None:
        """Back to an honest provider with one signing key per algorithm."""
        self.provider.id_token_hook = None
        self.provider.userinfo_overrides = {}
        self.provider.access_token_ttl_seconds = ACCESS_TOKEN_TTL
        self.provider.clock = time.time
        self.issuer.jwks_override = None
        current = {self.issuer.key(alg=self.issuer.key(kid).alg).kid for kid in self.issuer.kids}
        for kid in self.issuer.kids:
            if kid not in current:
                self.issuer.remove_key(kid)


@pytest.fixture(scope="module")
def listen_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(listen_port: int) -> Iterator[tuple[DevIssuer, DevLogin]]:
    with served_login_issuer([callback_of(listen_port)], client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET) as pair:
        yield pair


@pytest.fixture(scope="module")
def world(gatekeeper_factory: Callable[..., Gatekeeper], op: tuple[DevIssuer, DevLogin],
          listen_port: int, upstream: Upstream) -> World:
    issuer, provider = op
    return World(gk=gatekeeper_factory(**_config(issuer, listen_port)), issuer=issuer,
                 provider=provider, upstream=upstream)


@pytest.fixture(scope="module")
def misdiscovered(gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[Gatekeeper]:
    """A gatekeeper whose provider's discovery names another issuer from the start."""
    port = free_port()
    with served_login_issuer([callback_of(port)], client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET) as (issuer, _):
        issuer.discovery_overrides = {"issuer": "http://evil.example"}
        yield gatekeeper_factory(**_config(issuer, port))


@pytest.fixture
def armed(world: World) -> Iterator[World]:
    try:
        yield world
    finally:
        world.reset()


# -- how the provider misbehaves ----------------------------------------------------------------

Arm = Callable[[World], None]
# (world, JOSE header, claims) → a whole token to send verbatim, or None to sign the edited ones.
Edit = Callable[[World, dict[str, Any], dict[str, Any]], str | None]


def _honest(world: World) -> None:
    """The provider as it is."""


def _on(phase: str, edit: Edit) -> Arm:
    """Apply ``edit`` to the ID token of one phase only: "code" (the login) or "refresh"."""
    def arm(world: World) -> None:
        def hook(header: dict[str, Any], claims: dict[str, Any], current: str) -> str | None:
            return edit(world, header, claims) if current == phase else None
        world.provider.id_token_hook = hook
    return arm


def _claims(**changes: Any) -> Edit:
    """Set claims; a callable value gets the claims as they were, ``forge.DELETE`` removes one."""
    def edit(world: World, header: dict[str, Any], claims: dict[str, Any]) -> None:
        original = dict(claims)
        for name, value in changes.items():
            if value is forge.DELETE:
                claims.pop(name, None)
            else:
                claims[name] = value(original) if callable(value) else value
    return edit


def _unsigned(world: World, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return forge.unsigned(header, claims)


def _hmac_with_public_key(world: World, header: dict[str, Any], claims: dict[str, Any]) -> str:
    return forge.hs256_with_public_key(world.issuer.key(alg="RS256").public_pem(), header, claims)


def _signed_with(alg: str, *, garbled: bool = False) -> Edit:
    """Signed with the provider's ``alg`` key (named by kid), then one signature byte garbled."""
    def edit(world: World, header: dict[str, Any], claims: dict[str, Any]) -> str | None:
        key = world.issuer.key(alg=alg)
        header.update(alg=alg, kid=key.kid)
        if not garbled:
            return None
        return forge.garble(forge.signed(header, claims, key.private_key, alg), part=2)
    return edit


def _padded_signature(world: World, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """Signed by the provider's own key; the signature segment then padded with "=" (RFC 7515
    §2 forbids it; PyJWT alone accepts it): one token, two spellings."""
    key = world.issuer.key(alg="RS256")
    header.update(alg="RS256", kid=key.kid)
    token = forge.signed(header, claims, key.private_key, "RS256")
    return token + "=" * (-len(token.rsplit(".", 1)[1]) % 4)


def _without_kid(world: World, header: dict[str, Any], claims: dict[str, Any]) -> None:
    header["kid"] = None  # the provider signs with its current key for the alg, and names none


def _rotated_just_before_signing(world: World, header: dict[str, Any], claims: dict[str, Any]) -> None:
    header["kid"] = world.issuer.rotate("RS256")


def _kid_absent_single_key(world: World) -> None:
    world.issuer.rotate("RS256", drop_old=True)
    world.log_in_once()  # gatekeeper now holds exactly the one RS256 key
    _on("code", _without_kid)(world)


def _kid_absent_several_keys(world: World) -> None:
    world.issuer.add_key("RS256")
    world.log_in_once()  # signed under the new kid: gatekeeper refetches and holds both keys
    _on("code", _without_kid)(world)


_ZERO = forge.b64url_encode(bytes(32))
_MALFORMED_KEYS: list[Any] = [
    "not a key",
    {"kty": "RSA", "kid": "bad-modulus", "use": "sig", "alg": "RS256", "n": "***", "e": "AQAB"},
    {"kty": "RSA", "kid": "numeric-modulus", "alg": "RS256", "n": 12, "e": "AQAB"},
    {"kty": "EC", "kid": "off-curve", "alg": "ES256", "crv": "P-256", "x": _ZERO, "y": _ZERO},
    {"kty": "OKP", "kid": "no-x", "crv": "Ed25519"},
]


def _malformed_key_in_jwks(world: World) -> None:
    world.issuer.rotate("RS256", drop_old=True)  # a new kid: the login makes gatekeeper refetch
    world.issuer.jwks_override = {"keys": [*_MALFORMED_KEYS, *world.issuer.jwks()["keys"]]}


def _userinfo_about_mallory(world: World) -> None:
    world.provider.userinfo_overrides = {"sub": "mallory"}


def _rotated_between_logins(world: World) -> None:
    world.log_in_once()
    world.issuer.rotate("RS256", drop_old=True)


# -- how a row ends -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The callback refuses the login with ``code``; no session, the app sees nothing."""

    arm: Arm
    code: str
    status: int = 400

    def check(self, world: World, request: pytest.FixtureRequest) -> None:
        seen = len(world.upstream.recorder)
        with world.browser() as client:
            answer = world.log_in(client)
            assert answer.status_code == self.status, answer.text
            assert f"Reason: {self.code}" in answer.text
            assert not _session_cookies(answer)
            again = client.get(PAGE)
        assert again.status_code == 302 and again.headers["location"].startswith(world.authorize_url)
        assert len(world.upstream.recorder) == seen


@dataclass(frozen=True)
class Accepted:
    """Back at the page the login started from, signed in: the app sees alice."""

    arm: Arm
    refetches_keys: bool = False  # the ID token's kid was new to gatekeeper

    def check(self, world: World, request: pytest.FixtureRequest) -> None:
        fetched = world.issuer.fetch_counts["/jwks"]
        with world.browser() as client:
            answer = world.log_in(client)
            assert answer.status_code == 302, answer.text
            assert answer.headers["location"] == PAGE
            assert _session_cookies(answer)
            page = client.get(PAGE)
        assert page.status_code == 200
        # Beside the suite's bearer issuer: the subject names its issuer (issue 11 §1.9).
        assert world.upstream.recorder.last.header("x-auth-request-user") == \
            f"{world.issuer.issuer}#alice"
        if self.refetches_keys:
            assert world.issuer.fetch_counts["/jwks"] > fetched


def _log_in_until_refresh(world: World, client: httpx.Client) -> None:
    """An honest login whose access token lasts 1 s; return once gatekeeper must refresh it."""
    world.provider.access_token_ttl_seconds = 1
    frozen = time.time()  # the provider's own checks (userinfo) never see its token expire
    world.provider.clock = lambda: frozen
    answer = world.log_in(client)
    assert answer.status_code == 302 and _session_cookies(answer), answer.text
    # Gatekeeper's expiry: int(time of the token answer) + expires_in, at most this.
    due = int(time.time()) + 1
    time.sleep(max(0.0, due - time.time()) + 0.01)


@dataclass(frozen=True)
class RefreshEnds:
    """One refresh, whose ID token breaks §12.2: the session ends with ``code``."""

    arm: Arm
    code: str
    client: Literal["browser", "api"]  # a browser is sent to log in again; an API caller gets 401

    def check(self, world: World, request: pytest.FixtureRequest) -> None:
        refreshes = world.provider.grant_counts["refresh_token"]
        with world.browser() as client:
            _log_in_until_refresh(world, client)
            if self.client == "browser":
                answer = client.get(PAGE)
                assert answer.status_code == 302
                assert answer.headers["location"].startswith(world.authorize_url)
            else:
                answer = client.get(PAGE, headers=API)
                assert answer.status_code == 401
                assert answer.json()["error"] == self.code
            cleared = _session_cookies(answer)
            assert cleared and "Max-Age=0" in cleared[0]
            assert world.reason(answer) == self.code
            assert client.get(PAGE).status_code == 302  # signed out: no second refresh either
        assert world.provider.grant_counts["refresh_token"] - refreshes == 1


@dataclass(frozen=True)
class RefreshContinues:
    """One refresh with an ID token naming the same user: the session goes on."""

    arm: Arm

    def check(self, world: World, request: pytest.FixtureRequest) -> None:
        refreshes = world.provider.grant_counts["refresh_token"]
        with world.browser() as client:
            _log_in_until_refresh(world, client)
            page = client.get(PAGE)
        assert page.status_code == 200
        assert _session_cookies(page)  # the refreshed session replaces the old one
        # Beside the suite's bearer issuer: the subject names its issuer (issue 11 §1.9).
        assert world.upstream.recorder.last.header("x-auth-request-user") == \
            f"{world.issuer.issuer}#alice"
        assert world.provider.grant_counts["refresh_token"] - refreshes == 1


@dataclass(frozen=True)
class NeverLogsIn:
    """Gatekeeper of its own whose provider's discovery names another issuer: no login starts,
    and the admin listener says the browser login is not ready."""

    arm: Arm

    def check(self, world: World, request: pytest.FixtureRequest) -> None:
        gk: Gatekeeper = request.getfixturevalue("misdiscovered")
        with world.browser(gk) as client:
            for path in (PAGE, "/oauth2/start"):
                answer = client.get(path)
                assert answer.status_code == 502, path
                assert "Reason: provider_unavailable" in answer.text
                assert not _session_cookies(answer)
        with gk.admin() as admin:
            ready = admin.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert "oidc" in body["failing"]
        assert "another issuer" in body["checks"]["oidc"]["detail"]


Case = Refused | Accepted | RefreshEnds | RefreshContinues | NeverLogsIn


def _refresh_rows(name: str, edit: Edit, code: str, changed: str) -> list[Any]:
    return [
        pytest.param(RefreshEnds(_on("refresh", edit), code, "browser"),
                     id=f"{name}: a refreshed ID token with {changed} sends the browser to log in again"),
        pytest.param(RefreshEnds(_on("refresh", edit), code, "api"),
                     id=f"{name}: a refreshed ID token with {changed} ends an API caller's session with 401"),
    ]


CASES = [
    pytest.param(Accepted(_honest),
                 id="idtoken-sig-rs256: an honest RS256 ID token is accepted"),
    pytest.param(Accepted(_on("code", _signed_with("ES256"))),
                 id="idtoken-sig-es256: an honest ES256 ID token is accepted"),
    pytest.param(Refused(_on("code", _unsigned), "id_token_alg"),
                 id="idtoken-sig-none: an unsigned ID token (alg none) is refused"),
    pytest.param(Refused(_on("code", _signed_with("RS256", garbled=True)), "id_token_signature"),
                 id="invalid-sig-rs256: an RS256 ID token with a garbled signature is refused"),
    pytest.param(Refused(_on("code", _signed_with("ES256", garbled=True)), "id_token_signature"),
                 id="invalid-sig-es256: an ES256 ID token with a garbled signature is refused"),
    pytest.param(Refused(_on("code", _padded_signature), "id_token_malformed"),
                 id="idtoken-padded-base64url: an ID token whose signature is padded with = is "
                    "refused, not normalised"),
    pytest.param(Refused(_on("code", _hmac_with_public_key), "id_token_alg"),
                 id="invalid-sig-hs256-key-confusion: HS256 keyed with the provider's RSA public key "
                    "is refused"),
    pytest.param(Refused(_on("code", _claims(nonce="another-login")), "id_token_nonce"),
                 id="nonce-invalid: an ID token with another nonce is refused"),
    pytest.param(Refused(_on("code", _claims(nonce=forge.DELETE)), "id_token_nonce"),
                 id="nonce-missing: an ID token without the login's nonce is refused"),
    pytest.param(Refused(_on("code", _claims(aud="another-client")), "id_token_audience"),
                 id="invalid-aud: an ID token for another client is refused"),
    pytest.param(Refused(_on("code", _claims(aud=forge.DELETE)), "id_token_missing_aud"),
                 id="missing-aud: an ID token without aud is refused"),
    pytest.param(Refused(_on("code", _claims(aud=[CLIENT_ID, "another-client"])), "id_token_azp"),
                 id="aud-multiple-without-azp: an ID token for several audiences and no azp is refused"),
    pytest.param(Refused(_on("code", _claims(azp="another-client")), "id_token_azp"),
                 id="azp-invalid: an ID token authorized for another client is refused"),
    pytest.param(Accepted(_on("code", _claims(aud=[CLIENT_ID, "another-client"], azp=CLIENT_ID))),
                 id="aud-multiple-with-azp: an ID token for several audiences, azp this client, "
                    "is accepted"),
    pytest.param(Refused(_on("code", _claims(iss="http://evil.example")), "id_token_issuer"),
                 id="invalid-iss: an ID token from another issuer is refused"),
    pytest.param(Refused(_on("code", _claims(iat=forge.DELETE)), "id_token_missing_iat"),
                 id="missing-iat: an ID token without iat is refused"),
    pytest.param(Refused(_on("code", _claims(sub=forge.DELETE)), "id_token_missing_sub"),
                 id="missing-sub: an ID token without sub is refused"),
    pytest.param(Refused(_on("code", _claims(iat=lambda c: c["iat"] - 600,
                                             exp=lambda c: c["iat"] - LEEWAY - 30)),
                         "id_token_expired"),
                 id="idtoken-expired: an ID token expired longer ago than the leeway is refused"),
    pytest.param(Refused(_on("code", _claims(iat=lambda c: c["iat"] + LEEWAY + 90,
                                             exp=lambda c: c["iat"] + 600)),
                         "id_token_not_yet_valid"),
                 id="iat-in-future: an ID token issued further ahead than the leeway is refused"),
    pytest.param(Accepted(_kid_absent_single_key),
                 id="kid-absent-single-jwks: an ID token without kid is accepted when exactly one "
                    "key fits its alg"),
    pytest.param(Refused(_kid_absent_several_keys, "id_token_key"),
                 id="kid-absent-multiple-jwks: an ID token without kid is refused when several "
                    "keys fit its alg"),
    pytest.param(Accepted(_malformed_key_in_jwks, refetches_keys=True),
                 id="jwks-malformed-key: malformed keys in the JWKS are skipped and the login "
                    "is accepted"),
    pytest.param(Accepted(_rotated_between_logins, refetches_keys=True),
                 id="signing-key-rotation: the login after the provider rotated its key is accepted"),
    pytest.param(Accepted(_on("code", _rotated_just_before_signing), refetches_keys=True),
                 id="signing-key-rotation-just-before-signing: an ID token under a key published "
                    "a moment ago is accepted"),
    pytest.param(NeverLogsIn(_honest),
                 id="discovery-issuer-mismatch: a provider whose discovery names another issuer "
                    "is never used"),
    pytest.param(Refused(_userinfo_about_mallory, "userinfo_sub_mismatch"),
                 id="userinfo-invalid-sub: userinfo about another subject refuses the login"),
    # The refreshed ID token passes the same checks as the first one before OIDC Core §12.2
    # compares it with the session's: another iss already fails the issuer check there.
    *_refresh_rows("refresh-token-invalid-issuer", _claims(iss="http://evil.example"),
                   "id_token_issuer", "another iss"),
    *_refresh_rows("refresh-token-invalid-sub", _claims(sub="mallory"),
                   "refresh_changed_sub", "another sub"),
    *_refresh_rows("refresh-token-invalid-aud", _claims(aud=[CLIENT_ID, "another-client"],
                                                         azp=CLIENT_ID),
                   "refresh_changed_aud", "another aud"),
    *_refresh_rows("refresh-token-invalid-azp", _claims(azp=CLIENT_ID),
                   "refresh_changed_azp", "an azp the first had not"),
    pytest.param(RefreshContinues(_honest),
                 id="refresh-token: a refreshed ID token naming the same user keeps the session"),
]


@pytest.mark.parametrize("case", CASES)
def test_relying_party_conformance(case: Case, armed: World, request: pytest.FixtureRequest) -> None:
    case.arm(armed)
    case.check(armed, request)
