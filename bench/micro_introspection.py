"""µs per request for an opaque bearer token whose introspection answer is cached (RFC 7662,
gatekeeper/tokens/introspect.py), in process (timeit, bounded):

    introspection, cached     BearerAuthenticator.authenticate of an opaque token answered
                              before: find the token, SHA-256 it, the issuer's answer cache
    introspection, 2 issuers  the same with two introspecting issuers, the token the second's
                              (the first's cached "inactive" is read, and refused, first)

Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls of one coroutine run
to completion without an event loop turn (nothing awaits I/O on a cache hit), in the process's
CPU time. Bounded by count, a few seconds in all.

    .venv/bin/python bench/micro_introspection.py [--number 20000] [--repeat 7] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import timeit
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from gatekeeper.authn.bearer import BearerAuthenticator
from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.tokens.introspect import Introspector
from gatekeeper.tokens.jwks import IssuerKeys

A, B = "https://a.example", "https://b.example"
OPAQUE = "ory_at_" + "x" * 43  # an opaque token of a common length


def _issuer(name: str) -> IssuerSettings:
    return IssuerSettings(issuer=name, audience=["api"], jwks_uri=name + "/jwks",
                          introspection={"endpoint": name + "/introspect", "client_id": "gk",
                                         "client_secret": "s", "max_ttl_seconds": 3600})


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


def _drive(coroutine: Coroutine[Any, Any, Principal | None]) -> Principal | None:
    """Run a coroutine that never suspends (a cache hit) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the coroutine suspended: not a cache hit")


async def _prepare() -> dict[str, BearerAuthenticator]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    out = {}
    for name, issuers in (("one", [_issuer(A)]), ("two", [_issuer(A), _issuer(B)])):
        auth = AuthSettings(issuers=issuers)
        keys = {i.issuer: IssuerKeys(i, auth, http, Metrics()) for i in issuers}
        out[name] = BearerAuthenticator(auth, keys, Metrics(),
                                        introspectors=[Introspector(i, auth, http) for i in issuers])
    assert (await out["one"].authenticate(_request(OPAQUE + "a"))) is not None
    assert (await out["two"].authenticate(_request(OPAQUE + "b"))) is not None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bearers = asyncio.run(_prepare())
    one_request, two_request = _request(OPAQUE + "a"), _request(OPAQUE + "b")
    cases = {
        "introspection, cached": lambda: _drive(bearers["one"].authenticate(one_request)),
        "introspection, 2 issuers": lambda: _drive(bearers["two"].authenticate(two_request)),
    }
    results = {}
    for name, call in cases.items():
        assert call() is not None
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat,
                                 timer=time.process_time))
        results[name] = best / args.number * 1e6
        print(f"{name:28} {results[name]:7.2f} µs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
