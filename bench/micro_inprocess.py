"""µs of CPU per request that ``gatekeeper.Gatekeeper`` adds in front of an app, in process.

    .venv/bin/python bench/micro_inprocess.py [--number 5000] [--repeat 5]

A Starlette app answering a small JSON body, called directly through ASGI (no server, no
socket: what is left is the app and the middleware), bare and behind the middleware with a
valid RS256 bearer token (verified once, then from gatekeeper's token cache, as in production)
and no policy, then with the shipped example policy. The dev issuer serves its JWKS on a
loopback port for the start-up fetch. Best of ``--repeat`` runs of ``--number`` requests, in
process CPU time; bounded by count.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_gatekeeper import serve_issuer

from gatekeeper import Gatekeeper
from gatekeeper.settings import Settings

POLICIES = Path(__file__).resolve().parents[1] / "policies"


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"], "user": request.user.identity
                         if "user" in request.scope else None})


def app() -> Starlette:
    return Starlette(routes=[Route("/api/p1/items/{id}", item)])


async def measure(target: Any, headers: list[tuple[bytes, bytes]], number: int, repeat: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": "/api/p1/items/7", "raw_path": b"/api/p1/items/7",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"app.test"), *headers],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await target(dict(scope), receive, send)  # warm: start-up, JWKS, token cache
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            await target(dict(scope), receive, send)
        best = min(best, (time.process_time() - start) / number)
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {sorted(set(statuses))}")
    return best * 1e6


async def main(number: int, repeat: int) -> None:
    dev, _ = serve_issuer()  # run_gatekeeper.py's: RS256, on a loopback port, in a thread
    token = dev.mint("alice", audience="api", claims={"roles": ["viewer"]})
    auth = [(b"authorization", f"Bearer {token}".encode())]
    base = {"auth": {"issuers": [{"issuer": dev.issuer, "audience": ["api"]}]},
            "access_log": False}
    policy = {"policy": {"model": str(POLICIES / "model.conf"),
                         "policy": str(POLICIES / "policy.csv"), "watch": False}}
    bare = await measure(app(), auth, number, repeat)
    rows = [("the app alone", bare)]
    for name, extra in (("behind Gatekeeper, bearer token, no policy", {}),
                        ("behind Gatekeeper, bearer token, example policy", policy)):
        wrapped = Gatekeeper(app(), settings=Settings.model_validate({**base, **extra}))
        rows.append((name, await measure(wrapped, auth, number, repeat)))
        await wrapped.shutdown()
    print(f"best of {repeat} x {number} requests, µs CPU per request")
    for name, figure in rows:
        extra_cost = "" if figure is bare else f"   (+{figure - bare:.1f})"
        print(f"  {figure:7.1f}  {name}{extra_cost}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.number, arguments.repeat))
