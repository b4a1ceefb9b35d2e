"""The two HTTP/1.1 protocols (``server.http``) alone, in process: the CPU one keep-alive request
costs a protocol, from its bytes to the answer written, with a trivial app and a transport that
only counts, so nothing but the protocol (and the task each request runs in) is measured.

    .venv/bin/python bench/bench_protocols.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvicorn
import uvloop
from uvicorn.server import ServerState

from gatekeeper.server.choice import http_protocol
from gatekeeper.server.limits import ConnectionLimits

# A wrk request with a bearer token, and the answer gatekeeper's proxy would give (its headers).
REQUEST = (b"GET /echo/x?y=1 HTTP/1.1\r\nHost: gk.test\r\nUser-Agent: wrk\r\nAuthorization: Bearer "
           + b"x" * 700 + b"\r\nAccept: */*\r\n\r\n")
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2"),
           (b"server", b"nginx"), (b"date", b"Mon, 07 Dec 2026 20:00:00 GMT"),
           (b"x-request-id", b"0123456789abcdef0123456789abcdef")]


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.answers = 0
        self.protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def write(self, data: Any) -> None:
        self.writes += 1
        self.answers += bytes(data).count(b"HTTP/1.1 200 ")

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4180)}.get(name, default)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})


async def measure(kind: str, requests: int) -> tuple[float, float]:
    """CPU µs per request, writes per request."""
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                            proxy_headers=False, ws="none")
    config.load()
    protocol = http_protocol(kind, ConnectionLimits())(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={})
    transport = CountingTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    started = time.process_time()
    for _ in range(requests):
        protocol.data_received(REQUEST)
        for _ in range(3):  # the request's task, its answer, the next turn
            await asyncio.sleep(0)
    spent = time.process_time() - started
    assert transport.answers == requests, (kind, transport.answers)
    return spent / requests * 1e6, transport.writes / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"gatekeeper": [], "uvicorn": []}
    for _ in range(args.rounds):  # interleaved, so drift falls on both
        for kind in results:
            results[kind].append(uvloop.run(measure(kind, args.requests)))
    print("| protocol | CPU µs/request (median, min-max) | writes/request |\n|---|---:|---:|")
    for kind, runs in results.items():
        cpu = sorted(r[0] for r in runs)
        print(f"| {kind} | {cpu[len(cpu) // 2]:.1f} ({cpu[0]:.1f}-{cpu[-1]:.1f}) | {runs[0][1]:.0f} |")


if __name__ == "__main__":
    main()
