"""µs per back-channel call for the client authentication (gatekeeper/clients/client_auth.py),
in process (timeit, bounded):

    client_secret_basic   the Basic header (form-encode, Base64)
    private_key_jwt ALG   a fresh client assertion: claims, a new jti, the signature with ALG

Paid once per call gatekeeper makes as a client (an introspection miss, a code exchange, a
refresh), never per cached request. Each figure is the best of ``--repeat`` timeit runs of
``--number`` calls, in the process's CPU time. Bounded by count, a few seconds in all.

    .venv/bin/python bench/micro_client_auth.py [--number 500] [--repeat 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import timeit
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr

from gatekeeper.clients.client_auth import ClientAuth
from gatekeeper.settings import PrivateKeyJwtSettings

ENDPOINT = "https://idp.example/oauth2/introspect"


def _key(algorithm: str) -> bytes:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
    elif algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    clients = {"client_secret_basic": ClientAuth(client_id="gatekeeper", method="client_secret_basic",
                                                 issuer="https://idp.example", key_name="bench",
                                                 secret=SecretStr("s" * 32))}
    with tempfile.TemporaryDirectory() as directory:
        for algorithm in ("RS256", "PS256", "ES256", "EdDSA"):
            path = Path(directory) / f"{algorithm}.pem"
            path.write_bytes(_key(algorithm))
            clients[f"private_key_jwt {algorithm}"] = ClientAuth(
                client_id="gatekeeper", method="private_key_jwt", issuer="https://idp.example",
                key_name="bench", private_key_jwt=PrivateKeyJwtSettings(key_file=path,
                                                                        algorithm=algorithm))
        results = {}
        for name, client in clients.items():
            timer = timeit.Timer(lambda c=client: c.parts_now(ENDPOINT), timer=time.process_time)
            best = min(timer.repeat(repeat=args.repeat, number=args.number))
            results[name] = round(best / args.number * 1e6, 2)
    print("| case | µs per call |\n| --- | ---: |")
    for name, micros in results.items():
        print(f"| {name} | {micros} |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
