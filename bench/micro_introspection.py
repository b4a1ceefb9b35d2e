"""µs per request for an opaque bearer token whose introspection answer is cached (RFC 7662,
gatekeeper/tokens/introspect.py), in process (timeit, bounded):

    introspection, cached     BearerAuthenticator.authenticate of an opaque token answered
                              before: find the token, SHA-256 it, the issuer's answer cache
    introspection, 2 issuers  the same with two introspecting issuers, the token the second's
                              (routed by its ``token_prefixes``: the first is never asked)

Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls of one coroutine run
to completion without an event loop turn (nothing awaits I/O on a cache hit), in the process's
CPU time. Bounded by count, a few seconds in all.

    .venv/bin/python bench/micro_introspection.py [--number 20000] [--repeat 7] [--json FILE]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import timeit
from urllib.parse import parse_qs

import httpx
from micro import drive, run

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.metrics import Metrics
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.introspect import Introspector
from gatekeeper.tokens.jwks import IssuerKeys

A, B = "https://a.example", "https://b.example"
OPAQUE = "x" * 43  # an opaque token of a common length, after its issuer's prefix


def _issuer(name: str, *prefixes: str) -> IssuerSettings:
    return IssuerSettings(issuer=name, audience=["api"], jwks_uri=name + "/jwks",
                          introspection={"endpoint": name + "/introspect", "client_id": "gk",
                                         "client_secret": "s", "max_ttl_seconds": 3600,
                                         "token_prefixes": list(prefixes)})


def _answer(request: httpx.Request) -> httpx.Response:
    issuer = f"{request.url.scheme}://{request.url.host}"
    token = parse_qs(request.content.decode())["token"][0]
    active = issuer == B or token.endswith("a")  # A knows the "…a" token only; B knows both
    body = {"active": True, "sub": "alice", "aud": "api", "iss": issuer, "exp": time.time() + 3600,
            "roles": ["reader"]} if active else {"active": False}
    return httpx.Response(200, stream=httpx.ByteStream(json.dumps(body).encode()))


def _request(token: str) -> RequestView:
    return RequestView({"type": "http", "method": "GET", "path": "/",
                        "headers": [(b"authorization", f"Bearer {token}".encode())]}, "/")



async def _prepare() -> dict[str, BearerAuthenticator]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    out = {}
    for name, issuers in (("one", [_issuer(A)]),
                          ("two", [_issuer(A, "ory_at_"), _issuer(B, "gho_")])):
        auth = AuthSettings(issuers=issuers)
        keys = {i.issuer: IssuerKeys(i, auth, http, Metrics()) for i in issuers}
        out[name] = BearerAuthenticator(auth, keys, Metrics(),
                                        introspectors=[Introspector(i, auth, http) for i in issuers])
    assert (await out["one"].authenticate(_request("ory_at_" + OPAQUE + "a"))) is not None
    assert (await out["two"].authenticate(_request("gho_" + OPAQUE + "b"))) is not None
    return out


def measure(number: int, repeat: int) -> dict[str, float]:
    bearers = asyncio.run(_prepare())
    one_request, two_request = _request("ory_at_" + OPAQUE + "a"), _request("gho_" + OPAQUE + "b")
    cases = {
        "introspection, cached": lambda: drive(bearers["one"].authenticate(one_request)),
        "introspection, 2 issuers": lambda: drive(bearers["two"].authenticate(two_request)),
    }
    figures = {}
    for name, call in cases.items():
        assert call() is not None
        figures[name] = min(timeit.repeat(call, number=number, repeat=repeat,
                                          timer=time.process_time)) / number * 1e6
    return figures

if __name__ == "__main__":
    sys.exit(run(__doc__ or "", measure))
