"""µs per request for DPoP (RFC 9449), in process: what ``Authorization: DPoP`` + a proof costs
over a cached ``Bearer`` token, and how much of it is the proof's one signature check.

    bearer, cached        BearerAuthenticator.authenticate of a cached RS256 token (the baseline)
    dpop, cached token    the same token as DPoP with a fresh ES256 proof (memory replay cache):
                          the token from the cache, the proof checked in full
    ES256 verify alone    PyJWS.decode of one proof with its prepared key: the signature check
    dpop, EdDSA proof     as "dpop, cached token" with an Ed25519 proof

Proofs (each with its own jti) are signed before timing, so only the server's side is measured;
a refused proof would raise, so every timed request was accepted.
Each figure is the best of ``--repeat`` runs of ``--number`` requests in process CPU time.

    .venv/bin/python bench/micro_dpop.py [--number 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.authn.dpop import DpopProofs, thumbprint
from gatekeeper.authn.dpop_replay import MemoryReplay
from gatekeeper.metrics import Metrics
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.settings.dpop import DpopSettings
from gatekeeper.tokens.jwks import IssuerKeys
from tests.support.dpop import DpopClient

ISSUER = "https://issuer.test"
URL = "https://api.example/orders/7"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def view(headers: list[tuple[bytes, bytes]]) -> RequestView:
    return RequestView({"type": "http", "method": "GET", "path": "/orders/7", "scheme": "https",
                        "headers": [(b"host", b"api.example"), *headers],
                        "client": ("192.0.2.9", 1)}, "/orders/7")


async def measure(number: int, repeat: int) -> dict[str, float]:
    issuer = IssuerSettings(issuer=ISSUER, audience=["api"], jwks_uri=ISSUER + "/jwks",
                            algorithms=["RS256"])
    dpop = DpopSettings(enabled=True, replay_cache_size=10_000_000)
    auth = AuthSettings(issuers=[issuer], dpop=dpop)
    jwk = jwt.get_algorithm_by_name("RS256").to_jwk(KEY.public_key(), as_dict=True)
    jwks = json.dumps({"keys": [{**jwk, "kid": "k1"}]}).encode()
    transport = httpx.MockTransport(lambda _: httpx.Response(200, stream=httpx.ByteStream(jwks)))
    client, ed = DpopClient(), DpopClient()
    ed.key = ed25519.Ed25519PrivateKey.generate()  # type: ignore[assignment]
    ed.jwk = jwt.get_algorithm_by_name("EdDSA").to_jwk(ed.key.public_key(), as_dict=True)
    results: dict[str, float] = {}
    async with httpx.AsyncClient(transport=transport) as http:
        keys = IssuerKeys(issuer, auth, http, Metrics())
        await keys.refresh()
        bearer = BearerAuthenticator(auth, {ISSUER: keys}, Metrics(),
                                     dpop=DpopProofs(dpop, MemoryReplay(10_000_000), lambda _: False))
        now = int(time.time())
        plain = jwt.encode({"iss": ISSUER, "sub": "a", "aud": "api", "exp": now + 3600},
                           KEY, algorithm="RS256", headers={"kid": "k1"})

        def bound(c: DpopClient) -> str:
            return jwt.encode({"iss": ISSUER, "sub": "a", "aud": "api", "exp": now + 3600,
                               "cnf": {"jkt": thumbprint(c.jwk)}}, KEY, algorithm="RS256",
                              headers={"kid": "k1"})

        async def run(requests: list[RequestView]) -> float:
            best = float("inf")
            for round_ in range(repeat):
                batch = requests[round_ * number:(round_ + 1) * number]
                start = time.process_time()
                for request in batch:
                    await bearer.authenticate(request)
                best = min(best, (time.process_time() - start) / len(batch) * 1e6)
            return best

        total = number * repeat
        await bearer.authenticate(view([(b"authorization", f"Bearer {plain}".encode())]))
        results["bearer, cached"] = await run(
            [view([(b"authorization", f"Bearer {plain}".encode())])] * total)
        for name, who, alg in (("dpop, cached token (ES256 proof)", client, "ES256"),
                               ("dpop, cached token (EdDSA proof)", ed, "EdDSA")):
            token = bound(who)
            requests = [view([(b"authorization", f"DPoP {token}".encode()),
                              (b"dpop", who.proof("GET", URL, token, alg=alg).encode())])
                        for _ in range(total + 1)]
            await bearer.authenticate(requests.pop())  # the token into the cache
            results[name] = await run(requests)
        proof = client.proof("GET", URL, None)
        prepared = jwt.PyJWK(client.jwk, algorithm="ES256").key
        jws = jwt.PyJWS()
        results["ES256 verify alone"] = best_of(lambda: jws.decode(proof, prepared, algorithms=["ES256"]),
                                                number, repeat)
    return results


def best_of(call: Callable[[], Any], number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            call()
        best = min(best, (time.process_time() - start) / number * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, value in asyncio.run(measure(args.number, args.repeat)).items():
        print(f"| {name} | {value:.1f} |")


if __name__ == "__main__":
    main()
