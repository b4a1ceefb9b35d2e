"""ControlPlane (gatekeeper/clients/controlplane.py) against hostile issuer processes on loopback: every
call ends within its total deadline or its size cap, whatever the other side does.

End to end (a gatekeeper process next to a hostile issuer): tests/e2e/test_control_plane.py.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gatekeeper.clients.controlplane import ControlPlane, FetchError, safe_url
from tests.support.fakes import run
from tests.support.servers import ProcessHandle, free_port, run_process

DEADLINE = 1.0
CAP = 65536


@pytest.fixture(scope="module")
def hostile() -> Iterator[dict[str, tuple[str, ProcessHandle]]]:
    """One hostile issuer process per mode: mode → (url, process)."""
    from contextlib import ExitStack

    modes = ["drip", "hang", "huge", "huge-chunked", "gzip-bomb", "deep-json"]
    with ExitStack() as stack:
        found = {}
        for mode in modes:
            port = free_port()
            handle = stack.enter_context(run_process(
                [sys.executable, "-m", "tests.support.hostile_issuer", "--port", str(port),
                 "--mode", mode], ready_port=port))
            found[mode] = (f"http://127.0.0.1:{port}/jwks", handle)
        yield found


async def _fetch(url: str, *, max_concurrent: int = 16) -> object:
    async with httpx.AsyncClient(trust_env=False) as http:
        plane = ControlPlane(http, deadline_seconds=DEADLINE, max_bytes=CAP,
                             max_concurrent=max_concurrent)
        return (await plane.get(url)).json()


@pytest.mark.parametrize(("mode", "says"), [
    pytest.param("drip", "no complete answer within 1 s", id="a body dripped a byte at a time"),
    pytest.param("hang", "no complete answer within 1 s", id="a server that never answers"),
    pytest.param("huge", "larger than 65536 bytes", id="400 MB with a Content-Length"),
    pytest.param("huge-chunked", "larger than 65536 bytes", id="400 MB chunked, no length"),
    pytest.param("gzip-bomb", "gzip-encoded", id="a gzip bomb"),
    pytest.param("deep-json", "is not JSON", id="JSON nested 200000 deep"),
])
def test_a_hostile_answer_fails_the_call_within_its_bounds(
    hostile: dict[str, tuple[str, ProcessHandle]], mode: str, says: str
) -> None:
    url, _ = hostile[mode]
    if mode == "deep-json":  # under the cap only with a larger one: the reader must refuse it
        async def deep() -> object:
            async with httpx.AsyncClient(trust_env=False) as http:
                plane = ControlPlane(http, deadline_seconds=DEADLINE, max_bytes=1_000_000)
                return (await plane.get(url)).json()
        with pytest.raises(FetchError, match=says):
            run(deep())
        return
    with pytest.raises(FetchError, match=says) as caught:
        run(_fetch(url))
    assert "127.0.0.1" in str(caught.value)


def test_calls_to_one_party_are_capped_so_a_hung_one_cannot_take_every_connection(
    hostile: dict[str, tuple[str, ProcessHandle]]
) -> None:
    url, process = hostile["hang"]
    before = process.output().count("request ")
    seen: list[int] = []

    async def scenario() -> list[BaseException | object]:
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=None)) as http:
            plane = ControlPlane(http, deadline_seconds=3.0, max_bytes=CAP, max_concurrent=4)
            calls = [asyncio.create_task(plane.get(url)) for _ in range(20)]
            deadline = time.monotonic() + 2.0
            while process.output().count("request ") - before < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # room for more requests, had there been no cap
            seen.append(process.output().count("request ") - before)
            return await asyncio.gather(*calls, return_exceptions=True)

    results = run(scenario())
    assert seen == [4]
    assert all(isinstance(r, FetchError) for r in results)


@pytest.mark.parametrize(("url", "safe"), [
    pytest.param("https://user:pw@idp.example/jwks?token=x#f", "https://idp.example/jwks",
                 id="credentials, query and fragment are dropped"),
    pytest.param("http://127.0.0.1:8080/.well-known/openid-configuration",
                 "http://127.0.0.1:8080/.well-known/openid-configuration", id="a plain URL stays"),
    pytest.param("http://127.0.0.1:port/jwks", "(malformed URL)", id="a port that is no number"),
])
def test_safe_url_names_the_endpoint_and_nothing_secret(url: str, safe: str) -> None:
    assert safe_url(url) == safe
