"""Bearer JWTs end to end: a real gatekeeper process, the real dev issuer over HTTP, the real app.

Every refused token must be refused *before* the app: the recording upstream must not see it.
Three gatekeepers share one module issuer (which publishes two RS256 keys, so a token without
``kid`` is ambiguous there):

    default  RS256, PS256, ES256, EdDSA allowed
    narrow   the module issuer with RS256 only, plus a second issuer holding a single RS256 key
    cookie   token sources: the Authorization header, then the ``access_token`` cookie
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.utils import raw_to_der_signature

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, Gatekeeper, Upstream, served_issuer
from tests.support import forge

# RFC 6750 §3: the whole challenge, so a stray parameter or a broken quote fails the match.
CHALLENGE = re.compile(
    r'Bearer realm="gatekeeper", error="invalid_token", error_description="(?P<description>[^"\\]*)"'
)


@dataclass
class World:
    issuer: DevIssuer  # the module issuer, trusted by every gatekeeper here
    attacker: DevIssuer  # a second issuer on loopback that no gatekeeper trusts
    single: DevIssuer  # trusted by "narrow" only; one RS256 key
    upstream: Upstream
    gks: dict[str, Gatekeeper]
    sent: list[str] = field(default_factory=list)  # every token this module sent

    def mint(self, subject: str = "alice", **kwargs: Any) -> str:
        kwargs.setdefault("audience", AUDIENCE)
        return self.issuer.mint(subject, **kwargs)

    def claims(self, **changes: Any) -> dict[str, Any]:
        """A well-formed claim set from the module issuer, for forged tokens."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer.issuer, "sub": "alice", "aud": AUDIENCE,
                                  "iat": now, "nbf": now, "exp": now + 300}
        claims.update(changes)
        return claims

    def kid(self, alg: str) -> str:
        return self.issuer.key(alg=alg).kid

    def get(self, via: str = "default", *, token: str | None = None,
            authorization: str | None = None, headers: list[tuple[str, str]] | None = None,
            path: str = "/private") -> httpx.Response:
        """GET through gatekeeper ``via``; ``token`` goes in as ``Bearer`` unless
        ``authorization`` says otherwise. Every token is remembered for the log check."""
        all_headers = list(headers or [])
        if token is not None:
            self.sent.append(token)
            all_headers.append(("Authorization", authorization or f"Bearer {token}"))
        elif authorization is not None:
            all_headers.append(("Authorization", authorization))
        with self.gks[via].client() as client:
            return client.get(path, headers=all_headers)


@pytest.fixture(scope="module")
def world(issuer: DevIssuer, upstream: Upstream,
          gatekeeper_factory: Callable[..., Gatekeeper]) -> Iterator[World]:
    # A second RS256 key before any gatekeeper fetches the JWKS: a kid-less RS256 token is ambiguous.
    issuer.add_key("RS256", make_current=False)
    with ExitStack() as stack:
        attacker = stack.enter_context(served_issuer())
        single = stack.enter_context(served_issuer(algorithms=("RS256",)))
        gks = {
            "default": gatekeeper_factory(),
            "narrow": gatekeeper_factory(auth={"issuers": [
                {"issuer": issuer.issuer, "audience": [AUDIENCE], "algorithms": ["RS256"]},
                {"issuer": single.issuer, "audience": [AUDIENCE], "algorithms": ["RS256"]},
            ]}),
            "cookie": gatekeeper_factory(auth={"token_sources": ["header", "cookie:access_token"]}),
        }
        yield World(issuer=issuer, attacker=attacker, single=single, upstream=upstream, gks=gks)


# -- the table of bad tokens --------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    make: Callable[[World], str]  # the token
    code: str  # the JSON body's "error"
    says: str  # a fragment of error_description naming the failed check
    via: str = "default"
    scheme: str = "Bearer "  # prefix of the Authorization value


def _none(variant: str, *, with_signature: bool) -> Bad:
    def make(w: World) -> str:
        token = forge.unsigned({"typ": "JWT", "kid": w.kid("RS256")}, w.claims(), alg=variant)
        if with_signature:  # a real signature of another token rides along
            token += w.mint().rsplit(".", 1)[1]
        return token
    return Bad(make, "alg_none", "unsigned")


def _hmac_with_public_key(encoding: str, alg: str = "HS256") -> Bad:
    def make(w: World) -> str:
        secret = forge.public_key_encodings(w.issuer.key(alg="RS256").public_key)[encoding]
        return forge.hs256_with_public_key(secret, {"kid": w.kid("RS256")}, w.claims(), alg=alg)
    return Bad(make, "bad_algorithm", "algorithm not allowed")


def _es256_der_signature(w: World) -> str:
    header, payload, signature = forge.parts(w.mint(alg="ES256"))
    der = raw_to_der_signature(signature, ec.SECP256R1())  # valid ASN.1, wrong JWS form
    return forge.join(header, payload, der)


def _es256_wrong_length(w: World) -> str:
    header, payload, signature = forge.parts(w.mint(alg="ES256"))
    return forge.join(header, payload, signature + b"\x01")


def _garbled_header_base64(w: World) -> str:
    header, payload, signature = w.mint().split(".")
    # 4k+1 base64 characters cannot encode anything (RFC 4648 §4).
    header = header[: len(header) - (len(header) % 4) + 1] if len(header) % 4 != 1 else header
    return f"{header}.{payload}.{signature}"


def _in(seconds: int) -> int:
    """A NumericDate ``seconds`` from now."""
    return int(time.time()) + seconds


def _attacker_signed(w: World, kid: str) -> str:
    """Good claims under ``kid``, RS256-signed by a key the issuer never published."""
    return forge.signed({"kid": kid}, w.claims(), forge.attacker_key("RS256"), "RS256")


def _foreign_url_header(member: str, url: Callable[[DevIssuer], str]) -> Bad:
    """Signed by the attacker's own key, pointing at the attacker's server for keys."""
    def make(w: World) -> str:
        return w.attacker.mint("alice", audience=AUDIENCE, claims={"iss": w.issuer.issuer},
                               headers={member: url(w.attacker)})
    return Bad(make, "unknown_kid", "unknown signing key")


BAD_TOKENS = [
    *[pytest.param(_none(v, with_signature=False), id=f"alg {v} without a signature is refused")
      for v in forge.NONE_VARIANTS],
    *[pytest.param(_none(v, with_signature=True), id=f"alg {v} with a stray signature is refused")
      for v in forge.NONE_VARIANTS],
    pytest.param(Bad(lambda w: forge.tamper_header(w.mint(), alg=forge.DELETE), "alg_none", "unsigned"),
                 id="a header without alg is refused as unsigned"),
    *[pytest.param(_hmac_with_public_key(enc), id=f"HS256 keyed with the RSA public key as {enc} is refused")
      for enc in ("spki_pem", "spki_pem_no_newline", "spki_der", "pkcs1_pem", "jwk_json")],
    *[pytest.param(_hmac_with_public_key("spki_pem", alg),
                   id=f"{alg} keyed with the RSA public key is refused") for alg in ("HS384", "HS512")],
    pytest.param(Bad(lambda w: forge.tamper_header(w.mint(), alg="rs256"), "bad_algorithm", "algorithm"),
                 id="alg spelled rs256 in lower case is refused"),
    pytest.param(Bad(lambda w: _attacker_signed(w, w.kid("RS256")), "bad_signature", "signature"),
                 id="an attacker key signing under the real kid is refused"),
    pytest.param(Bad(lambda w: forge.tamper_payload(w.mint(), sub="admin"), "bad_signature", "signature"),
                 id="a payload changed after signing is refused"),
    pytest.param(Bad(lambda w: forge.strip_signature(w.mint()), "bad_signature", "signature"),
                 id="an RS256 token with its signature stripped is refused"),
    pytest.param(Bad(lambda w: forge.truncate(w.mint(), 10), "bad_signature", "signature"),
                 id="a truncated token is refused"),
    pytest.param(Bad(lambda w: forge.garble(w.mint(), part=2), "bad_signature", "signature"),
                 id="a garbled signature is refused"),
    pytest.param(Bad(lambda w: w.mint(now=time.time() - 3600, ttl_seconds=60), "expired", "expired"),
                 id="an expired token is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"nbf": _in(3600)}), "not_yet_valid", "not yet valid"),
                 id="a token whose nbf is an hour ahead is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"iat": _in(3600)}), "not_yet_valid", "not yet valid"),
                 id="a token issued an hour in the future is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"iss": w.issuer.issuer + "/"}), "bad_issuer", "issuer"),
                 id="a token whose iss differs by a trailing slash is refused"),
    pytest.param(Bad(lambda w: w.attacker.mint("alice", audience=AUDIENCE), "bad_issuer", "issuer"),
                 id="a token from an issuer nobody configured is refused"),
    pytest.param(Bad(lambda w: w.mint(audience="other-api"), "bad_audience", "audience"),
                 id="a token for another audience is refused"),
    pytest.param(Bad(lambda w: w.mint(omit=["aud"]), "missing_claim", "aud"),
                 id="a token without aud is refused"),
    pytest.param(Bad(lambda w: w.mint(omit=["exp"]), "missing_claim", "exp"),
                 id="a token without exp is refused"),
    pytest.param(Bad(lambda w: w.mint(omit=["sub"]), "missing_claim", "sub"),
                 id="a token without sub is refused"),
    pytest.param(Bad(lambda w: w.mint(""), "missing_claim", "sub"),
                 id="a token with an empty sub is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"exp": str(_in(300))}), "invalid_claim", "exp"),
                 id="a token whose exp is a numeric string is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"exp": "tomorrow"}), "invalid_claim", "exp"),
                 id="a token whose exp is a word is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"nbf": True}), "invalid_claim", "nbf"),
                 id="a token whose nbf is a boolean is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"exp": float("inf")}), "invalid_claim", "exp"),
                 id="a token whose exp is Infinity is refused"),
    pytest.param(Bad(lambda w: w.mint(claims={"sub": 42}), "invalid_claim", "sub"),
                 id="a token whose sub is a number is refused"),
    pytest.param(_foreign_url_header("jku", lambda a: a.jwks_uri),
                 id="a jku header pointing at an attacker JWKS is never fetched"),
    pytest.param(_foreign_url_header("x5u", lambda a: a.issuer + "/cert.pem"),
                 id="an x5u header pointing at an attacker certificate is never fetched"),
    pytest.param(Bad(lambda w: forge.embedded_jwk(w.claims(), header={"kid": w.kid("RS256")}),
                     "bad_signature", "signature"),
                 id="an embedded jwk header signing its own token is ignored"),
    pytest.param(Bad(lambda w: w.mint(headers={"crit": ["urn:example:ext"], "urn:example:ext": True}),
                     "unsupported_crit", "critical"),
                 id="a crit header naming an unknown extension is refused"),
    pytest.param(Bad(lambda w: forge.es256_zero_signature({"kid": w.kid("ES256")}, w.claims()),
                     "bad_signature", "signature"),
                 id="ES256 with r and s zero is refused"),
    pytest.param(Bad(_es256_wrong_length, "bad_signature", "signature"),
                 id="ES256 with a 65 byte signature is refused"),
    pytest.param(Bad(_es256_der_signature, "bad_signature", "signature"),
                 id="ES256 with a DER signature instead of r and s is refused"),
    pytest.param(Bad(lambda w: _attacker_signed(w, w.kid("ES256")), "key_mismatch", "key type"),
                 id="an RS256 token naming the EC key is refused"),
    pytest.param(Bad(lambda w: forge.signed({"kid": w.kid("PS256")}, w.claims(),
                                            w.issuer.key(alg="PS256").private_key, "RS256"),
                     "key_mismatch", "key type"),
                 id="an RS256 token signed by the PS256 key is refused by the JWK alg"),
    pytest.param(Bad(lambda w: w.mint(alg="PS256"), "bad_algorithm", "algorithm", via="narrow"),
                 id="PS256 is refused where the issuer allows RS256 only"),
    pytest.param(Bad(lambda w: w.mint(alg="EdDSA"), "bad_algorithm", "algorithm", via="narrow"),
                 id="EdDSA is refused where the issuer allows RS256 only"),
    pytest.param(Bad(_garbled_header_base64, "malformed_token", "malformed"),
                 id="a header that is not base64 is refused"),
    pytest.param(Bad(lambda w: "..", "malformed_token", "malformed"),
                 id="two dots and nothing else are refused"),
    pytest.param(Bad(lambda w: w.mint() + "." + forge.segment({"x": 1}), "malformed_token", "malformed"),
                 id="a token of four segments is refused"),
    pytest.param(Bad(lambda w: forge.join(b"not json", w.claims(), b"sig"), "malformed_token", "malformed"),
                 id="a header that is not JSON is refused"),
    pytest.param(Bad(lambda w: forge.join(["RS256"], w.claims(), b"sig"), "malformed_token", "malformed"),
                 id="a header that is a JSON array is refused"),
    pytest.param(Bad(lambda w: forge.with_header(w.mint(), kid=7), "malformed_token", "kid"),
                 id="a numeric kid is refused"),
    pytest.param(Bad(lambda w: w.mint(claims=forge.oversized_claims(20_000)), "token_too_large", "too large"),
                 id="a 20 KB token is refused as too large"),
    pytest.param(Bad(lambda w: _attacker_signed(w, "no-such-kid"), "unknown_kid", "unknown signing key"),
                 id="an unknown kid is refused after a refresh"),
    pytest.param(Bad(lambda w: w.mint(include_kid=False), "no_kid", "kid"),
                 id="a token without kid is refused when several keys fit"),
    pytest.param(Bad(lambda w: "abc def", "malformed_token", "malformed bearer"),
                 id="a bearer value with a space inside is refused"),
    pytest.param(Bad(lambda w: w.mint() + "!", "malformed_token", "malformed bearer"),
                 id="a bearer value with an exclamation mark is refused"),
    pytest.param(Bad(lambda w: "", "malformed_token", "malformed bearer", scheme="Bearer"),
                 id="an empty bearer value is refused"),
]


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_a_bad_token_is_refused_before_the_app(world: World, case: Bad) -> None:
    token = case.make(world)
    before = len(world.upstream.recorder)
    attacker_before = sum(world.attacker.fetch_counts.values())
    response = world.get(case.via, token=token, authorization=case.scheme + token)

    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    match = CHALLENGE.fullmatch(challenge)
    assert match is not None, challenge
    assert case.says in match["description"], match["description"]
    body = response.json()
    assert body["error"] == case.code, body
    for secret in _secret_parts(token):
        assert secret not in challenge and secret not in response.text
    assert len(world.upstream.recorder) == before, "the app saw a refused request"
    assert sum(world.attacker.fetch_counts.values()) == attacker_before == 0


def _secret_parts(token: str) -> list[str]:
    """The token and each of its segments long enough to be recognisable."""
    return [token, *(s for s in token.split(".") if len(s) >= 16)] if token else []


@pytest.mark.parametrize("size", [pytest.param(100_000, id="100 KB"), pytest.param(1_000_000, id="1 MB")])
def test_a_huge_authorization_header_is_refused_but_never_a_server_error(world: World, size: int) -> None:
    token = world.mint(claims=forge.oversized_claims(size))
    before = len(world.upstream.recorder)
    response = world.get(token=token)
    # The HTTP server may refuse the header itself (431 and the like); gatekeeper says 401.
    assert 400 <= response.status_code < 500, response.status_code
    if response.status_code == 401:
        assert response.json()["error"] == "token_too_large"
    assert len(world.upstream.recorder) == before


# -- one token, one spelling (RFC 7515 §2) ------------------------------------------------------

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SPELLINGS = {
    "padded with =": lambda s: s + "=" * (-len(s) % 4),
    "+ and / instead of - and _": lambda s: s.replace("-", "+").replace("_", "/"),
    "non-zero trailing bits": lambda s: s[:-1] + _B64URL[_B64URL.index(s[-1]) | 1],
}


def _spelled(w: World, part: int, spelling: str) -> tuple[str, str]:
    """A token signed by the issuer's real key over exactly the text sent, with segment ``part``
    respelled: (the canonical token, the respelled one). Both carry the same bytes everywhere."""
    key = w.issuer.key(alg="RS256")
    for filler in range(64):  # until the segment has "-" or "_" and unused bits to set
        header = forge.segment({"alg": "RS256", "kid": key.kid, "typ": "JWT", "n": "?" * filler})
        payload = forge.segment(w.claims(sub="respelled", note="?" * filler))
        segments = [header, payload, ""]
        segments[2] = forge.b64url_encode(
            forge.sign(f"{header}.{payload}".encode(), key.private_key, "RS256"))
        if len(segments[part]) % 4 in (2, 3) and ("-" in segments[part] or "_" in segments[part]):
            break
    canonical = ".".join(segments)
    segments[part] = SPELLINGS[spelling](segments[part])
    if part < 2:  # the issuer signs the text it sends: the signature holds for the respelling
        signing_input = f"{segments[0]}.{segments[1]}"
        segments[2] = forge.b64url_encode(
            forge.sign(signing_input.encode(), key.private_key, "RS256"))
    return canonical, ".".join(segments)


def _send(w: World, token: str, source: str) -> httpx.Response:
    if source == "header":
        return w.get(token=token)
    w.sent.append(token)
    return w.get("cookie", headers=[("Cookie", f"access_token={token}")])


@pytest.mark.parametrize("source", ["header", "cookie"], ids=["in the header", "in a cookie"])
@pytest.mark.parametrize("spelling", list(SPELLINGS))
@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_segment_in_non_canonical_base64url_is_refused_not_normalised(
    world: World, part: int, spelling: str, source: str
) -> None:
    canonical, respelled = _spelled(world, part, spelling)
    assert canonical != respelled
    assert _send(world, canonical, source).status_code == 200, "the token itself is good"
    before = len(world.upstream.recorder)

    response = _send(world, respelled, source)

    assert response.status_code == 401, response.text
    assert CHALLENGE.fullmatch(response.headers["www-authenticate"]), response.headers
    assert response.json()["error"] == "malformed_token"
    assert len(world.upstream.recorder) == before, "the app saw a respelled token"


# -- good tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_a_token_signed_with_an_allowed_algorithm_reaches_the_app(world: World, alg: str) -> None:
    token = world.mint(f"user-{alg}", alg=alg, claims={"email": f"{alg}@example.com"})
    response = world.get(token=token)
    assert response.status_code == 200, response.text
    seen = world.upstream.recorder.last
    assert seen.header("x-auth-request-user") == f"user-{alg}"
    assert seen.header("x-auth-request-email") == f"{alg}@example.com"


def test_aud_as_a_list_containing_the_audience_is_accepted(world: World) -> None:
    token = world.mint("list-aud", audience=["billing", AUDIENCE, "other"])
    assert world.get(token=token).status_code == 200
    assert world.upstream.recorder.last.header("x-auth-request-user") == "list-aud"


def test_iat_slightly_ahead_within_the_leeway_is_accepted(world: World) -> None:
    token = world.mint("skewed", claims={"iat": int(time.time()) + 10})  # leeway is 30 s
    assert world.get(token=token).status_code == 200


def test_a_token_without_kid_is_accepted_when_exactly_one_key_fits(world: World) -> None:
    token = world.single.mint("solo", audience=AUDIENCE, include_kid=False)
    assert "kid" not in forge.decode_header(token)
    response = world.get("narrow", token=token)
    assert response.status_code == 200, response.text
    # Two issuers configured there: the subject carries its issuer (issue 11 §1.9).
    assert world.upstream.recorder.last.header("x-auth-request-user") == f"{world.single.issuer}#solo"
    assert world.upstream.recorder.last.header("x-auth-request-issuer") == world.single.issuer


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_the_scheme_name_is_case_insensitive(world: World, scheme: str) -> None:
    token = world.mint(f"scheme-{scheme}")
    response = world.get(token=token, authorization=f"{scheme} {token}")
    assert response.status_code == 200, response.text
    assert world.upstream.recorder.last.header("x-auth-request-user") == f"scheme-{scheme}"


def test_a_token_in_the_configured_cookie_is_accepted(world: World) -> None:
    token = world.mint("cookie-user")
    world.sent.append(token)
    response = world.get("cookie", headers=[("Cookie", f"theme=dark; access_token={token}")])
    assert response.status_code == 200, response.text
    assert world.upstream.recorder.last.header("x-auth-request-user") == "cookie-user"


def test_a_token_in_a_cookie_is_ignored_where_cookies_are_not_a_source(world: World) -> None:
    token = world.mint("cookie-user")
    world.sent.append(token)
    before = len(world.upstream.recorder)
    response = world.get(headers=[("Cookie", f"access_token={token}")])
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert len(world.upstream.recorder) == before


def test_roles_are_the_union_of_the_role_claims(world: World) -> None:
    token = world.mint("roles-user", claims={"realm_access": {"roles": ["admin", "user"]},
                                             "groups": ["user", "ops"]})
    assert world.get(token=token).status_code == 200
    # roles_claims order is roles, groups, realm_access.roles; first seen first, no repeats.
    assert world.upstream.recorder.last.header("x-auth-request-groups") == "user,ops,admin"


# -- request shapes ------------------------------------------------------------------------------


def test_two_authorization_headers_are_a_bad_request(world: World) -> None:
    token = world.mint("twice")
    world.sent.append(token)
    before = len(world.upstream.recorder)
    response = world.get(headers=[("Authorization", f"Bearer {token}"),
                                  ("Authorization", f"Bearer {token}")])
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "duplicate_authorization"
    assert len(world.upstream.recorder) == before


def test_a_token_in_the_query_string_is_ignored(world: World) -> None:
    token = world.mint("query")
    world.sent.append(token)
    before = len(world.upstream.recorder)
    response = world.get(path=f"/private?access_token={token}")
    assert response.status_code == 401
    # No token was presented where tokens are read: a bare challenge (RFC 6750 §3.1).
    assert response.headers["www-authenticate"] == 'Bearer realm="gatekeeper"'
    assert response.json()["error"] == "unauthenticated"
    assert len(world.upstream.recorder) == before


def test_basic_credentials_get_a_challenge_without_an_error_code(world: World) -> None:
    before = len(world.upstream.recorder)
    response = world.get(authorization="Basic YWxpY2U6c2VjcmV0")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="gatekeeper"'
    assert response.json()["error"] == "unauthenticated"
    assert len(world.upstream.recorder) == before


@pytest.mark.parametrize(("claims", "subject"), [
    pytest.param({"email": "a@b\r\nX-Admin: 1"}, "crlf", id="an email carrying CR LF and a header"),
    pytest.param({"email": "a@b\nX-Admin: 1"}, "lf", id="an email carrying a bare LF"),
    pytest.param({"email": "a@b\x00"}, "nul", id="an email carrying NUL"),
    pytest.param({"roles": ["ok", "ops\x7f"]}, "del", id="a role carrying DEL"),
    pytest.param({}, "bob\r\nX-Admin: 1", id="a subject carrying CR LF"),
])
def test_a_claim_with_control_characters_never_becomes_a_header(
    world: World, claims: dict[str, Any], subject: str
) -> None:
    token = world.mint(subject, claims=claims)
    before = len(world.upstream.recorder)
    response = world.get(token=token)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unsafe_claim"
    match = CHALLENGE.fullmatch(response.headers["www-authenticate"])
    assert match is not None and "control characters" in match["description"]
    assert len(world.upstream.recorder) == before


# -- metrics and logs ----------------------------------------------------------------------------


def _counter(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_the_same_token_twice_is_a_cache_hit(world: World) -> None:
    hit, miss = ('gatekeeper_token_cache_total{result="hit"}',
                 'gatekeeper_token_cache_total{result="miss"}')
    with world.gks["default"].admin() as admin:
        before = admin.get("/metrics").text
        token = world.mint("cached")
        assert world.get(token=token).status_code == 200
        assert world.get(token=token).status_code == 200
        after = admin.get("/metrics").text
    assert _counter(after, hit) - _counter(before, hit) == 1
    assert _counter(after, miss) - _counter(before, miss) == 1


def test_no_token_ever_reaches_the_log(world: World) -> None:
    # Some traffic of its own, so this holds even when run alone.
    good, bad = world.mint("logged"), forge.garble(world.mint("logged"), part=2)
    assert world.get(token=good).status_code == 200
    assert world.get(token=bad).status_code == 401
    assert world.get(path=f"/private?access_token={good}").status_code == 401
    world.sent.append(good)
    for name, gk in world.gks.items():
        output = gk.process.output()
        assert gk.access_log(), f"{name}: no access log lines at all"
        assert "Bearer " not in output, name
        for token in world.sent:
            for secret in _secret_parts(token):
                assert secret not in output, f"{name} logged a token part"
