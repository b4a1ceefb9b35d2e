"""A DPoP client (RFC 9449 §4): its key pair, its thumbprint, and proofs it signs.

    client = DpopClient()                    # a fresh P-256 key
    token = issuer.mint("alice", audience=..., claims={"cnf": {"jkt": client.jkt}})
    headers = client.headers("GET", "http://127.0.0.1:8080/x", token)   # Authorization + DPoP

``proof(..., header=..., claims=...)`` changes or (with ``forge.DELETE``) drops members, to build
the hostile ones. Thumbprint and ath are computed here from the RFCs, not by gatekeeper's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import forge


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class DpopClient:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = jwt.get_algorithm_by_name("ES256").to_jwk(
            self.key.public_key(), as_dict=True)
        self.private_jwk: dict[str, Any] = jwt.get_algorithm_by_name("ES256").to_jwk(
            self.key, as_dict=True)
        # RFC 7638 §3.2: the required members in lexicographic order, no white space.
        members = {m: self.jwk[m] for m in ("crv", "kty", "x", "y")}
        self.jkt = _b64(hashlib.sha256(
            json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())

    def proof(self, method: str, url: str, token: str | None, *,
              header: Mapping[str, Any] | None = None, claims: Mapping[str, Any] | None = None,
              key: Any = None, alg: str = "ES256") -> str:
        head: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk}
        body: dict[str, Any] = {"jti": str(uuid.uuid4()), "htm": method, "htu": url,
                                "iat": int(time.time())}
        if token is not None:
            body["ath"] = _b64(hashlib.sha256(token.encode("ascii")).digest())
        head = {k: v for k, v in {**head, **(header or {})}.items() if v is not forge.DELETE}
        body = {k: v for k, v in {**body, **(claims or {})}.items() if v is not forge.DELETE}
        return forge.signed(head, body, self.key if key is None else key, alg)

    def headers(self, method: str, url: str, token: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": self.proof(method, url, token, **kwargs)}
