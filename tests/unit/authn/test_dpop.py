"""DPoP (RFC 9449) through the real ``BearerAuthenticator.authenticate`` with ``auth.dpop`` on:
the acceptance-style attack table (each hostile request refused with its own code), the replay
cache, nonces, the bound-token-as-Bearer rule and the request URL a proof must name.

The access tokens are real RS256 JWTs of one issuer whose JWKS is served in memory; the proofs
are signed by tests/support/dpop.py's client. End to end: tests/e2e/test_dpop.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.authn.dpop import DpopProofs
from gatekeeper.authn.dpop_replay import MemoryReplay, Nonces
from gatekeeper.authn.htu import normalise, request_url
from gatekeeper.authn.wiring import dpop_proofs
from gatekeeper.errors import DpopRefused, GatekeeperError
from gatekeeper.metrics import Metrics
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings, Settings
from gatekeeper.settings.dpop import DpopSettings
from gatekeeper.tokens.jwks import IssuerKeys
from tests.support import forge
from tests.support.dpop import DpopClient

ISSUER = "https://issuer.test"
AUDIENCE = "api"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
URL = "https://api.example/orders/7"
CLIENT = DpopClient()
OTHER = DpopClient()
TRUSTED = "10.0.0.1"
T = TypeVar("T")


def mint(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 300,
               "cnf": {"jkt": CLIENT.jkt}, **claims}
    payload = {k: v for k, v in payload.items() if v is not forge.DELETE}
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "k1"})


def request(headers: list[tuple[str, str]], method: str = "GET", path: str = "/orders/7",
            *, host: str = "api.example", scheme: str = "https", client: str = "192.0.2.9",
            query: bytes = b"") -> RequestView:
    raw = [(b"host", host.encode())] if host else []
    raw += [(k.lower().encode(), v.encode()) for k, v in headers]
    return RequestView({"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                        "query_string": query, "scheme": scheme, "headers": raw,
                        "client": (client, 5000)}, path)


@dataclass
class World:
    bearer: BearerAuthenticator
    replay: MemoryReplay


async def _with_world(body: Callable[[World], Awaitable[T]], nonces: Nonces | None = None) -> T:
    issuer = IssuerSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_uri=ISSUER + "/jwks",
                            algorithms=["RS256"])
    dpop = DpopSettings(enabled=True, iat_window_seconds=60, require_nonce=nonces is not None)
    auth = AuthSettings(issuers=[issuer], dpop=dpop)
    jwk = jwt.get_algorithm_by_name("RS256").to_jwk(KEY.public_key(), as_dict=True)
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}).encode()
    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(jwks)))
    async with httpx.AsyncClient(transport=transport) as http:
        keys = IssuerKeys(issuer, auth, http, Metrics())
        assert await keys.refresh(), keys.last_error
        replay = MemoryReplay(1000)
        proofs = DpopProofs(dpop, replay, lambda peer: peer == TRUSTED, nonces)
        return await body(World(BearerAuthenticator(auth, {ISSUER: keys}, Metrics(), dpop=proofs),
                                replay))


def run(body: Callable[[World], Awaitable[T]], nonces: Nonces | None = None) -> T:
    """``body`` against a fresh authenticator (no pytest asyncio plugin here: asyncio.run)."""
    return asyncio.run(_with_world(body, nonces))


async def verdict(world: World, view: RequestView) -> str:
    try:
        principal = await world.bearer.authenticate(view)
    except GatekeeperError as exc:
        return exc.code
    return "accepted" if principal is not None else "anonymous"


def dpop(token: str | None = None, **proof: Any) -> list[tuple[str, str]]:
    token = token or mint()
    method, url = proof.pop("method", "GET"), proof.pop("url", URL)
    return [("Authorization", f"DPoP {token}"), ("DPoP", CLIENT.proof(method, url, token, **proof))]


def hs256_proof() -> list[tuple[str, str]]:
    token = mint()
    return [("Authorization", f"DPoP {token}"),
            ("DPoP", CLIENT.proof("GET", URL, token, alg="HS256", key="secret"))]


def other_key() -> list[tuple[str, str]]:
    token = mint()
    return [("Authorization", f"DPoP {token}"), ("DPoP", OTHER.proof("GET", URL, token))]


def signed_by_other() -> list[tuple[str, str]]:
    # CLIENT's jwk in the header, OTHER's key signing: the signature check must fail.
    token = mint()
    return [("Authorization", f"DPoP {token}"), ("DPoP", CLIENT.proof("GET", URL, token, key=OTHER.key))]


def other_key_badly_signed() -> list[tuple[str, str]]:
    # OTHER's jwk, CLIENT's key signing: neither the token's key nor a good signature. A stolen
    # token with any key must be refused before its signature costs anything.
    token = mint()
    return [("Authorization", f"DPoP {token}"), ("DPoP", OTHER.proof("GET", URL, token, key=CLIENT.key))]


def _b64int(value: int) -> str:
    return forge.b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def huge_exponent() -> list[tuple[str, str]]:
    # An RSA jwk whose e is as long as n: verifying with it costs what a private-key operation
    # without CRT does (~80x a normal proof), and OpenSSL takes such an e for n up to 3072 bits.
    n = KEY.public_key().public_numbers().n
    jwk = {"kty": "RSA", "n": _b64int(n), "e": _b64int((n >> 2) | 1)}
    canonical = json.dumps({m: jwk[m] for m in ("e", "kty", "n")}, separators=(",", ":"),
                           sort_keys=True)
    jkt = forge.b64url_encode(hashlib.sha256(canonical.encode()).digest())
    token = mint(cnf={"jkt": jkt})
    proof = CLIENT.proof("GET", URL, token, header={"jwk": jwk}, key=KEY, alg="RS256")
    return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]


def two_proofs() -> list[tuple[str, str]]:
    token = mint()
    return [*dpop(token), ("DPoP", CLIENT.proof("GET", URL, token))]


ATTACKS: list[tuple[str, Callable[[], list[tuple[str, str]]], str]] = [
    ("a good proof is accepted", lambda: dpop(), "accepted"),
    ("a proof for POST used on GET", lambda: dpop(method="POST"), "dpop_wrong_htm"),
    ("a lower-case htm", lambda: dpop(method="get"), "dpop_wrong_htm"),
    ("a proof for another host", lambda: dpop(url="https://evil.example/orders/7"), "dpop_wrong_htu"),
    ("a proof for another path", lambda: dpop(url="https://api.example/orders/8"), "dpop_wrong_htu"),
    ("a proof for http when the request is https", lambda: dpop(url="http://api.example/orders/7"),
     "dpop_wrong_htu"),
    ("a proof for another port", lambda: dpop(url="https://api.example:8443/orders/7"), "dpop_wrong_htu"),
    ("an htu with userinfo", lambda: dpop(url="https://u@api.example/orders/7"), "dpop_wrong_htu"),
    ("an ath of another token", lambda: dpop(claims={"ath": "x" * 43}), "dpop_wrong_ath"),
    ("no ath", lambda: dpop(claims={"ath": forge.DELETE}), "dpop_wrong_ath"),
    ("an iat too old", lambda: dpop(claims={"iat": int(time.time()) - 120}), "dpop_iat_window"),
    ("an iat in the future", lambda: dpop(claims={"iat": int(time.time()) + 120}), "dpop_iat_window"),
    ("an iat that is a string", lambda: dpop(claims={"iat": str(int(time.time()))}), "dpop_bad_iat"),
    ("no iat", lambda: dpop(claims={"iat": forge.DELETE}), "dpop_bad_iat"),
    # JSON numbers no float holds: OverflowError in math.isfinite was a 500 (CWE-248).
    ("an iat of 400 digits", lambda: dpop(claims={"iat": 10**400}), "dpop_bad_iat"),
    ("an iat of minus 400 digits", lambda: dpop(claims={"iat": -(10**400)}), "dpop_bad_iat"),
    ("no jti", lambda: dpop(claims={"jti": forge.DELETE}), "dpop_bad_jti"),
    ("alg none", lambda: dpop(alg="none"), "dpop_bad_algorithm"),
    ("alg HS256 with a shared secret", hs256_proof, "dpop_bad_algorithm"),
    ("typ JWT", lambda: dpop(header={"typ": "JWT"}), "dpop_wrong_type"),
    ("typ at+jwt", lambda: dpop(header={"typ": "at+jwt"}), "dpop_wrong_type"),
    ("no typ", lambda: dpop(header={"typ": forge.DELETE}), "dpop_wrong_type"),
    ("a jwk holding the private key", lambda: dpop(header={"jwk": CLIENT.private_jwk}), "dpop_private_jwk"),
    ("no jwk", lambda: dpop(header={"jwk": forge.DELETE}), "dpop_bad_jwk"),
    ("a symmetric jwk", lambda: dpop(header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}), "dpop_private_jwk"),
    ("a P-256 jwk with ES384", lambda: dpop(header={"jwk": {**CLIENT.jwk, "crv": "P-384"}}), "dpop_bad_jwk"),
    ("a signature by another key than the jwk", signed_by_other, "dpop_bad_signature"),
    ("a critical header", lambda: dpop(header={"crit": ["exp"]}), "dpop_unsupported_crit"),
    ("two DPoP headers", two_proofs, "dpop_proof_count"),
    ("no DPoP header", lambda: dpop()[:1], "dpop_proof_count"),
    ("a proof by another key than cnf.jkt", other_key, "dpop_key_mismatch"),
    ("a proof by another key than cnf.jkt with a bad signature", other_key_badly_signed,
     "dpop_key_mismatch"),
    ("an RSA jwk whose exponent is as long as its modulus", huge_exponent, "dpop_bad_jwk"),
    ("an unbound token as DPoP", lambda: dpop(mint(cnf=forge.DELETE)), "dpop_unbound_token"),
    ("a token bound by certificate as DPoP", lambda: dpop(mint(cnf={"x5t#S256": "abc"})),
     "dpop_unbound_token"),
    ("a bound token as Bearer", lambda: [("Authorization", f"Bearer {mint()}")], "bound_token"),
    ("a bound token as Bearer with a good proof",
     lambda: [("Authorization", f"Bearer {mint()}"), dpop()[1]], "bound_token"),
    ("an unbound token as Bearer still works",
     lambda: [("Authorization", f"Bearer {mint(cnf=forge.DELETE)}")], "accepted"),
]


@pytest.mark.parametrize(("build", "expected"), [(b, e) for _, b, e in ATTACKS],
                         ids=[name for name, _, _ in ATTACKS])
def test_attack_table(build: Callable[[], list[tuple[str, str]]], expected: str) -> None:
    async def body(world: World) -> str:
        return await verdict(world, request(build()))
    assert run(body) == expected


def test_a_replayed_proof_is_refused_even_with_the_token_cached() -> None:
    headers = dpop()

    async def body(world: World) -> list[str]:
        return [await verdict(world, request(headers)), await verdict(world, request(headers)),
                await verdict(world, request(dpop(headers[0][1].split()[1])))]
    assert run(body) == ["accepted", "dpop_replayed", "accepted"]


def test_a_bound_token_accepted_as_dpop_is_still_refused_as_bearer() -> None:
    token = mint()

    async def body(world: World) -> list[str]:
        return [await verdict(world, request(dpop(token))),  # now in the token cache
                await verdict(world, request([("Authorization", f"Bearer {token}")]))]
    assert run(body) == ["accepted", "bound_token"]


def test_the_refusal_names_the_accepted_algs() -> None:
    async def body(world: World) -> None:
        await world.bearer.authenticate(request(dpop(method="POST")))
    with pytest.raises(DpopRefused) as caught:
        run(body)
    assert caught.value.error == "invalid_dpop_proof"
    assert caught.value.algs == ("ES256", "ES384", "PS256", "RS256", "EdDSA")


def test_the_dpop_scheme_is_not_ours_when_dpop_is_off() -> None:
    auth = AuthSettings(issuers=[IssuerSettings(issuer=ISSUER, audience=[AUDIENCE])])
    bearer = BearerAuthenticator(auth, {}, Metrics())
    assert asyncio.run(bearer.authenticate(request(dpop()))) is None


@pytest.mark.parametrize(("url", "headers", "peer", "expected"), [
    ("https://api.example/orders/7", [], "192.0.2.9", "accepted"),
    ("https://API.example:443/orders/%37", [], "192.0.2.9", "accepted"),
    ("https://api.example/orders/7?x=1#f", [], "192.0.2.9", "accepted"),
    ("https://front.example/orders/7",
     [("X-Forwarded-Host", "front.example"), ("X-Forwarded-Proto", "https")], TRUSTED, "accepted"),
    ("https://front.example/orders/7",
     [("X-Forwarded-Host", "front.example")], "192.0.2.9", "dpop_wrong_htu"),
    ("http://api.example/orders/7", [("X-Forwarded-Proto", "http")], "192.0.2.9", "dpop_wrong_htu"),
    ("http://api.example/orders/7", [("X-Forwarded-Proto", "http")], TRUSTED, "accepted"),
    ("https://api.example/orders/7",
     [("X-Forwarded-Host", "api.example"), ("X-Forwarded-Host", "evil.example")], TRUSTED,
     "dpop_wrong_htu"),
    ("https://api.example/orders/7",
     [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")], TRUSTED, "dpop_wrong_htu"),
    ("https://api.example/orders/7", [("X-Forwarded-Host", "api.example, evil.example")], TRUSTED,
     "dpop_wrong_htu"),
    ("https://api.example/orders/7", [("X-Forwarded-Proto", "https, http")], TRUSTED,
     "dpop_wrong_htu"),
    ("https://api.example/orders/7", [("X-Forwarded-Proto", "wss")], TRUSTED, "dpop_wrong_htu"),
    ("https://api.example/orders/7", [("X-Forwarded-Host", "")], TRUSTED, "dpop_wrong_htu"),
], ids=["as sent", "normalised: case, default port, escaped unreserved", "query and fragment ignored",
        "a trusted proxy's forwarded host and proto", "an untrusted peer's forwarded host is ignored",
        "an untrusted peer's forwarded proto is ignored", "a trusted proxy's forwarded proto",
        "two forwarded hosts, the first the request's", "two forwarded protos, the first the request's",
        "a list of forwarded hosts", "a list of forwarded protos", "a forwarded proto not http(s)",
        "an empty forwarded host"])
def test_the_url_a_proof_names(url: str, headers: list[tuple[str, str]], peer: str,
                               expected: str) -> None:
    view = request([*dpop(url=url), *headers], client=peer, query=b"a=b")

    async def body(world: World) -> str:
        return await verdict(world, view)
    assert run(body) == expected


def test_normalise_refuses_what_is_not_an_http_url() -> None:
    assert normalise("ftp://api.example/") is None
    assert normalise("/orders") is None
    assert normalise("https://api.example") == "https://api.example/"
    assert request_url(request([], host=""), lambda _: False) is None


def test_memory_replay_refuses_when_full_and_forgets_after_the_ttl() -> None:
    replay = MemoryReplay(2)

    async def body() -> list[bool]:
        return [await replay.first_use("a", 10, 0.0), await replay.first_use("b", 10, 0.0),
                await replay.first_use("c", 10, 1.0),  # full, nothing expired: fail closed
                await replay.first_use("c", 10, 11.0),  # a and b expired
                await replay.first_use("c", 10, 12.0)]
    assert asyncio.run(body()) == [True, True, False, True, False]


def test_memory_replay_frees_a_holders_share_as_its_keys_expire() -> None:
    replay = MemoryReplay(10, holder_size=2)

    async def body() -> list[bool]:
        return [await replay.first_use("a1", 10, 0.0, holder="A"),
                await replay.first_use("a2", 10, 0.0, holder="A"),
                await replay.first_use("a3", 10, 1.0, holder="A"),  # A's share is full
                await replay.first_use("b1", 10, 1.0, holder="B"),  # B keeps its own
                await replay.first_use("a3", 10, 11.0, holder="A"),  # a1 and a2 expired
                await replay.first_use("a3", 10, 12.0, holder="A")]  # a replay all the same
    assert asyncio.run(body()) == [True, True, False, True, True, False]


def test_one_holder_flooding_the_memory_replay_cache_leaves_another_holder_served() -> None:
    """CWE-400: a full memory store refuses every proof, so one holder of a bound token sending
    fresh proofs could lock every other holder out; it fills its own share only."""
    settings = Settings.model_validate({"auth": {
        "issuers": [{"issuer": ISSUER, "audience": [AUDIENCE], "jwks_uri": ISSUER + "/jwks"}],
        "dpop": {"enabled": True, "replay_cache_size": 1000, "replay_cache_key_share": 0.1}}})
    proofs = dpop_proofs(settings, None, lambda _: False)
    assert proofs is not None
    flooding, other = mint(), mint(cnf={"jkt": OTHER.jkt})

    async def verdict(client: DpopClient, token: str) -> str:
        try:
            await proofs.check(request([("DPoP", client.proof("GET", URL, token))]), token,
                               client.jkt)
        except DpopRefused as exc:
            return exc.code
        return "accepted"

    async def body() -> tuple[list[str], list[str]]:
        flood = [await verdict(CLIENT, flooding) for _ in range(1000)]  # the whole store's size
        return flood, [await verdict(OTHER, other) for _ in range(20)]
    flood, served = asyncio.run(body())
    assert served == ["accepted"] * 20
    assert flood == ["accepted"] * 100 + ["dpop_replayed"] * 900  # its share: 10% of 1000


def test_nonces_are_required_when_configured() -> None:
    asyncio.run(_nonces())


async def _nonces() -> None:
    dpop_settings = DpopSettings(enabled=True, require_nonce=True)
    nonces = Nonces(b"s" * 32, 300)
    proofs = DpopProofs(dpop_settings, MemoryReplay(100), lambda _: False, nonces)
    token = mint()
    with pytest.raises(DpopRefused) as caught:
        await proofs.check(request(dpop(token)), token, CLIENT.jkt)
    assert caught.value.error == "use_dpop_nonce" and caught.value.nonce is not None
    nonce = caught.value.nonce
    await proofs.check(request(dpop(token, claims={"nonce": nonce})), token, CLIENT.jkt)
    with pytest.raises(DpopRefused):
        await proofs.check(request(dpop(token, claims={"nonce": nonce[:-2] + "AA"})), token, CLIENT.jkt)
    assert not nonces.valid(nonce, time.time() + 301)


@pytest.mark.parametrize(("age", "fresh"), [
    (0, False), (149, False), (150, True), (299, True),
], ids=["a new nonce: no next one", "just under half its life: none yet",
        "half its life: the next one", "about to expire: the next one"])
def test_a_nonce_past_half_its_life_brings_the_next_one(age: int, fresh: bool) -> None:
    """RFC 9449 §8.2: the answer carries a new DPoP-Nonce before the client's expires, so the
    client switches without a refused request and a retry."""
    async def body() -> str | None:
        nonces = Nonces(b"s" * 32, 300)
        proofs = DpopProofs(DpopSettings(enabled=True, require_nonce=True), MemoryReplay(100),
                            lambda _: False, nonces)
        token, now = mint(), time.time()
        nonce = nonces.issue(now - age)
        view = request(dpop(token, claims={"nonce": nonce, "iat": int(now)}))
        return await proofs.check(view, token, CLIENT.jkt, now=now)

    nonces = Nonces(b"s" * 32, 300)
    issued = asyncio.run(body())
    assert (issued is not None) is fresh
    if issued is not None:
        assert nonces.valid(issued, time.time()) and not nonces.expiring(issued, time.time())


def test_the_next_nonce_rides_on_this_request_s_principal_only() -> None:
    nonces = Nonces(b"s" * 32, 300)

    async def body(world: World) -> list[tuple[tuple[bytes, bytes], ...]]:
        token, now = mint(), time.time()
        seen = []
        for age in (200, 0):  # the same token (cached): an old nonce, then the new one
            view = request(dpop(token, claims={"nonce": nonces.issue(now - age)}))
            principal = await world.bearer.authenticate(view)
            assert principal is not None
            seen.append(principal.response_headers)
        return seen

    old, new = run(body, nonces)
    assert [name for name, _ in old] == [b"dpop-nonce"] and new == ()
