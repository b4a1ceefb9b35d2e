"""µs per request for token exchange for the app (RFC 8693, gatekeeper/token_exchange/) once the
exchanged token is cached, in process (timeit, bounded):

    exchange, cached         TokenExchanges.exchanged on a covered route: the rule for the
                             method and path, SHA-256 of the caller's token (a JWT of ~900
                             bytes), the issuer's cache, the identity list with the header
    exchange, 2 rules        the same on the second of two rules (one more path test)
    route not covered        what every other request pays: one ``covers`` (a set lookup and a
                             startswith over the rules' prefixes)

Each figure is the best of ``--repeat`` timeit runs of ``--number`` calls, the coroutine driven
without an event loop (nothing awaits I/O on a cache hit), in the process's CPU time. Bounded by
count, a few seconds in all.

    .venv/bin/python bench/micro_token_exchange.py [--number 20000] [--repeat 7] [--json FILE]
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

from gatekeeper.principal import Principal
from gatekeeper.request import RequestView
from gatekeeper.settings import AuthSettings, IssuerSettings, TokenExchangeRoute
from gatekeeper.token_exchange import IssuerExchange, TokenExchanges

ISSUER = "https://idp.example"
TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6InJzMjU2LTEifQ." + "x" * 600 + "." + "s" * 342  # ~RS256 JWT size
Headers = list[tuple[bytes, bytes]]
IDENTITY: Headers = [(b"x-auth-request-user", b"alice"), (b"x-auth-request-email", b"alice@example.com"),
                     (b"x-auth-request-groups", b"admin,user"), (b"x-auth-request-issuer", ISSUER.encode())]


def _answer(request: httpx.Request) -> httpx.Response:
    audience = parse_qs(request.content.decode())["audience"][0]
    body = {"access_token": f"exchanged-for-{audience}-" + "y" * 800, "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "expires_in": 3600}
    return httpx.Response(200, headers={"content-type": "application/json"},
                          stream=httpx.ByteStream(json.dumps(body).encode()))


def _view(path: str) -> RequestView:
    return RequestView({"type": "http", "method": "GET", "path": path, "headers": []}, path)



async def _prepare() -> TokenExchanges:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_answer))
    issuer = IssuerSettings(issuer=ISSUER, audience=["api"], token_exchange={
        "token_endpoint": ISSUER + "/token", "client_id": "gk", "client_secret": "s",
        "max_ttl_seconds": 3600})
    stage = TokenExchanges(
        [TokenExchangeRoute(paths=["/orders/*"], audience="orders-api"),
         TokenExchangeRoute(paths=["/billing/*", "/invoices"], audience="billing-api",
                            header="X-Billing-Token")],
        {ISSUER: IssuerExchange(issuer, AuthSettings(issuers=[issuer]), http)})
    for path in ("/orders/7", "/billing/7"):  # fill the cache
        await stage.exchanged(_principal(), _view(path), IDENTITY)
    return stage


def _principal() -> Principal:
    return Principal(subject="alice", roles=("admin", "user"), claims={}, via="bearer", issuer=ISSUER,
                     expires_at=time.time() + 3600, token=TOKEN)


def measure(number: int, repeat: int) -> dict[str, float]:
    stage = asyncio.run(_prepare())
    principal = _principal()
    orders, billing, other = _view("/orders/7"), _view("/billing/7"), _view("/catalog/7")
    cases = {
        "exchange, cached": lambda: drive(stage.exchanged(principal, orders, IDENTITY)),
        "exchange, 2 rules": lambda: drive(stage.exchanged(principal, billing, IDENTITY)),
        "route not covered": lambda: stage.covers(other.path),
    }
    assert len(drive(stage.exchanged(principal, orders, IDENTITY))) == len(IDENTITY) + 1
    assert not stage.covers(other.path)
    return {name: min(timeit.repeat(call, number=number, repeat=repeat,
                                    timer=time.process_time)) / number * 1e6
            for name, call in cases.items()}

if __name__ == "__main__":
    sys.exit(run(__doc__ or "", measure))
