"""µs per request for the signed identity assertion (gatekeeper/assertion/), in process.

    cached header           AssertionSigner.header for the same caller and target as before:
                            the (caller, method, target) LRU hit that most requests are
    decide, no assertion    Pipeline.decide of a cached principal on an open path (the baseline)
    decide, with assertion  the same with the signer as the pipeline's last stage: the
                            difference is what a request pays for its assertion when cached
    sign, <alg>             a miss: a new target each call (cache kept at size 0), so each
                            call builds the claims and signs — ES256 (the default), EdDSA, RS256

Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls, in the process's CPU
time (the least disturbed run on a shared machine); bounded by count, a few seconds in all.

    .venv/bin/python bench/micro_assertion.py [--number 20000] [--repeat 7] [--json FILE]
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from micro import IDENTITY_HEADERS, Known, drive, run

from gatekeeper.assertion.keys import load_keyring
from gatekeeper.assertion.signer import AssertionSigner
from gatekeeper.authz import AuthenticatedOnly, PublicPaths
from gatekeeper.exchange import Exchange
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.pipeline import Pipeline
from gatekeeper.principal import Principal
from gatekeeper.settings.assertion import AssertionSettings
from gatekeeper.settings.headers import HeaderSettings

PRINCIPAL = Principal(subject="alice", roles=("admin", "user"),
                      claims={"sub": "alice", "email": "alice@example.com",
                              "roles": ["admin", "user"], "org": {"id": "acme"}},
                      via="bearer", issuer="http://127.0.0.1:9000", expires_at=time.time() + 3600)
HEADERS = HeaderPolicy(HeaderSettings(
    headers=IDENTITY_HEADERS, pass_access_token=False, pass_authorization_header=False, trusted_proxies=(),
    session_cookie=None, assertion_header="X-Auth-Request-Jwt"))


def _exchange(target: str = "/items/1?page=2") -> Exchange:
    path, _, query = target.partition("?")
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "client": ("127.0.0.1", 50000), "scheme": "http",
             "headers": [(b"host", b"127.0.0.1:4180")]}
    return Exchange(scope, path, "0123456789abcdef01234567", 0.0)


def _key_file(folder: Path, alg: str) -> Path:
    key: Any = (ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else
                rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS256"
                else ec.generate_private_key(ec.SECP256R1()))
    path = folder / f"{alg}.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def _signer(folder: Path, alg: str, cache_size: int) -> AssertionSigner:
    settings = AssertionSettings(key_file=_key_file(folder, alg), algorithm=alg, audience="orders",
                                 issuer="https://orders.example.com", cache_size=cache_size,
                                 claims={"tenant": "org.id"})
    return AssertionSigner(settings, load_keyring(settings))


def cases(folder: Path) -> dict[str, Callable[[], object]]:
    exchange = _exchange()
    signer = _signer(folder, "ES256", 10000)
    signer.header(PRINCIPAL, exchange)  # the first request signs; the measured ones reuse it
    authorizer = AuthenticatedOnly(PublicPaths(["/public/*"]))
    plain = Pipeline([Known(PRINCIPAL)], authorizer, HEADERS)
    asserting = Pipeline([Known(PRINCIPAL)], authorizer, HEADERS, assertions=signer)
    found: dict[str, Callable[[], object]] = {
        "cached header (same caller, method, target)": lambda: signer.header(PRINCIPAL, exchange),
        "decide, no assertion": lambda: drive(plain.decide(exchange)),
        "decide, with assertion (cached)": lambda: drive(asserting.decide(exchange)),
    }
    for alg in ("ES256", "EdDSA", "RS256"):
        uncached = _signer(folder, alg, 0)
        found[f"sign, {alg} (a miss: claims + signature)"] = (
            lambda s=uncached: s.header(PRINCIPAL, exchange))
    return found


def measure(number: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        figures: dict[str, float] = {}
        for name, call in cases(Path(folder)).items():
            # Signing is ~1,000x a cached lookup: fewer calls keep the run to seconds.
            calls = number if not name.startswith("sign") else max(number // 50, 50)
            figures[name] = min(timeit.repeat(call, number=calls, repeat=repeat,
                                              timer=time.process_time)) / calls * 1e6
        return figures


if __name__ == "__main__":
    sys.exit(run(__doc__, measure, lambda number: f" (signing: {max(number // 50, 50)})"))
