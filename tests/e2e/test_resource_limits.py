"""Resources bounded under attack (request heads, slow and silent clients, the connection cap):
each limit hit from a raw socket, with gatekeeper's peak RSS read from /proc and another client
served while the attack goes on (tests/support/attacks.py). Each attack runs against a
gatekeeper process of its own, so its peak RSS is this attack's alone.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import pytest

from tests.conftest import Gatekeeper
from tests.support.attacks import (
    RSS_GROWTH_LIMIT,
    MiB,
    address,
    assert_served,
    drip,
    drip_body,
    hold_unread,
    pipeline_unread,
    stream_head,
    under_siege,
    wait_closed,
)
from tests.support.servers import peak_rss_bytes

# -- §2.1 request heads bounded while they are read --------------------------------------------

HEAD_ATTACKS = {
    "a 64 MiB request target is 414": (
        b"GET /public/", b"a", 64 * MiB, b" HTTP/1.1\r\nHost: gk.test\r\n\r\n", 414),
    "one 64 MiB header is 431": (
        b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\nX-Big: ", b"b", 64 * MiB, b"\r\n\r\n", 431),
    "millions of small headers are 431": (
        b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n", b"a:b\r\n", 24 * MiB, b"\r\n", 431),
    "millions of empty-valued headers are 431": (
        b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n", b"a:\r\n", 24 * MiB, b"\r\n", 431),
    "a 64 MiB header name is 431": (
        b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\nX", b"n", 64 * MiB, b": v\r\n\r\n", 431),
    "millions of trailer fields after a chunked body are 431": (
        b"POST /public/x HTTP/1.1\r\nHost: gk.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n", b"a:b\r\n", 24 * MiB, b"\r\n", 431),
    "a huge head pipelined after a complete request is 431": (
        b"GET /public/first HTTP/1.1\r\nHost: gk.test\r\n\r\n"
        b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\nX-Big: ", b"c", 64 * MiB, b"\r\n\r\n", 431),
}


@pytest.mark.parametrize(("head", "filler", "volume", "tail", "status"),
                         list(HEAD_ATTACKS.values()), ids=list(HEAD_ATTACKS))
def test_an_oversized_request_head_is_refused_as_it_arrives(
    start_gatekeeper: Callable[..., Gatekeeper], head: bytes, filler: bytes, volume: int,
    tail: bytes, status: int,
) -> None:
    gk = start_gatekeeper()
    before = peak_rss_bytes(gk.process.pid)
    siege, response, during = under_siege(
        gk, lambda: stream_head(gk, head, filler, volume, tail))
    growth = peak_rss_bytes(gk.process.pid) - before
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB"
    first = siege.results[0]
    assert first.statuses[-1] == status and first.closed
    assert first.sent < volume  # refused before the head was over, not after buffering it
    assert_served(response)
    assert during


@pytest.mark.parametrize(("overrides", "head", "status"), [
    pytest.param({"max_request_line_bytes": 512},
                 b"GET /public/" + b"a" * 600
                 + b" HTTP/1.1\r\nHost: gk.test\r\nConnection: close\r\n\r\n", 414,
                 id="a target over max_request_line_bytes is 414"),
    pytest.param({"max_header_count": 20},
                 b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n" + b"a: b\r\n" * 20 + b"\r\n", 431,
                 id="one header over max_header_count is 431"),
    pytest.param({"max_header_bytes": 8192},
                 b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\nX: " + b"v" * 8200 + b"\r\n\r\n", 431,
                 id="headers over max_header_bytes are 431"),
    pytest.param({"max_header_bytes": 8192},
                 b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\nX:" + b" " * 70000 + b"v\r\n\r\n", 431,
                 id="padding the parser never reports still counts"),
])
def test_each_head_limit_is_a_config_key(
    start_gatekeeper: Callable[..., Gatekeeper], overrides: dict[str, int], head: bytes,
    status: int,
) -> None:
    gk = start_gatekeeper(**overrides)
    attack = stream_head(gk, head, b"", 0, b"")
    assert attack.statuses == [status]


def test_every_worker_process_keeps_the_limits(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    # workers > 1 hands the protocol to each process (pickled): the limits must go with it.
    gk = start_gatekeeper(workers=2, max_request_line_bytes=512)
    head = b"GET /public/" + b"a" * 600 + b" HTTP/1.1\r\nHost: gk.test\r\n\r\n"
    assert [stream_head(gk, head, b"", 0, b"").statuses for _ in range(6)] == [[414]] * 6
    with gk.client(timeout=30) as client:
        assert_served(client.get("/public/served"))


def test_a_head_just_within_every_limit_is_served(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(max_request_line_bytes=512, max_header_count=20, max_header_bytes=8192)
    target = b"/public/served?" + b"q" * (512 - len(b"GET /public/served? HTTP/1.1"))
    names = [b"connection", *(b"h%d" % i for i in range(17)), b"x-fill"]
    used = len(b"hostgk.test") + len(b"connectionclose") + sum(len(n) for n in names[1:-1]) + 17 + 6
    headers = b"Host: gk.test\r\nConnection: close\r\n"
    headers += b"".join(b"%s: v\r\n" % n for n in names[1:-1])
    headers += b"X-Fill: " + b"f" * (8192 - used) + b"\r\n"
    attack = stream_head(gk, b"GET " + target + b" HTTP/1.1\r\n" + headers + b"\r\n", b"", 0, b"")
    assert attack.statuses == [200]


def test_pipelined_requests_are_parsed_one_ahead_not_a_read_at_a_time(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    # uvicorn parsed every request of a read and queued an object for each (~1.7 KB for these
    # 35 bytes): 256 KB pipelined on a connection that does not read took ~13 MB, and 30 such
    # connections ~400 MB. Now the rest waits as bytes (at most one read each, ~8 MB here).
    gk = start_gatekeeper()
    request = b"GET /public/x HTTP/1.1\r\nHost:a\r\n\r\n"
    before = peak_rss_bytes(gk.process.pid)
    held = []
    try:
        for _ in range(30):
            sock, attack = pipeline_unread(gk, request, 256 * 1024)
            held.append(sock)
            assert attack.statuses[:1] == [200]
        with gk.client(timeout=30) as client:  # served while all 30 are held
            response = client.get("/public/served")
        growth = peak_rss_bytes(gk.process.pid) - before
    finally:
        for sock in held:
            sock.close()
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB"
    assert_served(response)


def test_pipelined_requests_are_all_answered_in_order(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper()
    requests = b"".join(b"GET /public/%d HTTP/1.1\r\nHost: gk.test\r\n\r\n" % i
                        for i in range(3000))
    upload = b"POST /public/up HTTP/1.1\r\nHost: gk.test\r\nContent-Length: 5000\r\n\r\n"
    last = b"GET /public/last HTTP/1.1\r\nHost: gk.test\r\nConnection: close\r\n\r\n"
    attack = stream_head(gk, requests + upload + b"u" * 5000 + requests + last, b"", 0, b"")
    assert attack.statuses == [200] * 6002 and attack.closed
    paths = re.findall(rb'"path": ?"(/public/[^"]*)"', attack.received)
    expected = [f"/public/{i}" for i in range(3000)]
    assert [p.decode() for p in paths] == [*expected, "/public/up", *expected, "/public/last"]


def test_pipelined_heads_near_the_limit_are_all_answered(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    # 1.4 MB sent at once, ~29 KB a head: what waits unparsed must not grow by a read each
    # time an answer completes (it would pass the 1 MiB cap and cut a well-behaved client off).
    gk = start_gatekeeper()
    head = b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n" + b"".join(
        b"X-A%d: %s\r\n" % (i, b"v" * 300) for i in range(95))
    last = head.replace(b"Host:", b"Connection: close\r\nHost:")
    attack = stream_head(gk, (head + b"\r\n") * 49 + last + b"\r\n", b"", 0, b"")
    assert attack.statuses == [200] * 50 and attack.closed


# -- §2.2 slow or silent clients dropped --------------------------------------------------------

def test_a_slowloris_head_is_dropped_at_the_deadline_while_others_are_served(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(request_head_timeout_seconds=1)
    # Steady progress, one byte every 50 ms: 8 s for the whole head, far past the deadline.
    head = b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n" + b"X-Drip: 1\r\n" * 12 + b"\r\n"
    siege, response, during = under_siege(gk, lambda: drip(gk, head, 0.05), max_rounds=3)
    first = siege.results[0]
    assert first.statuses == [408] and first.closed
    assert first.sent < len(head)
    assert_served(response)
    assert during


def test_a_body_dripped_too_slowly_is_dropped_and_frees_the_app_s_pool(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    # One connection to the app: a dripping body holds it, everyone else waits for it.
    gk = start_gatekeeper(upstream_max_connections=1, upstream_timeout_seconds=30,
                          request_body_timeout_seconds=1, request_body_min_bytes_per_second=100)
    # 10 bytes a second against a pace of 100: 8 s for the whole body, far behind.
    head = b"POST /public/upload HTTP/1.1\r\nHost: gk.test\r\nContent-Length: 80\r\n\r\n"
    siege, response, during = under_siege(gk, lambda: drip_body(gk, head, b"b" * 80, 0.1),
                                          max_rounds=3)
    first = siege.results[0]
    assert first.statuses == [408] and first.closed
    assert first.sent < 80
    assert_served(response)
    assert during


def test_a_body_at_the_pace_is_not_cut(start_gatekeeper: Callable[..., Gatekeeper]) -> None:
    gk = start_gatekeeper(request_body_timeout_seconds=1, request_body_min_bytes_per_second=100)
    head = (b"POST /public/upload HTTP/1.1\r\nHost: gk.test\r\nConnection: close\r\n"
            b"Content-Length: 3000\r\n\r\n")
    # 200 bytes every 0.5 s: 400 B/s, four times the pace, for 7.5 s (past the grace).
    attack = drip_body(gk, head, b"b" * 3000, 0.5, step=200)
    assert attack.statuses == [200] and attack.sent == 3000


def test_a_client_that_stops_reading_is_cut_off_and_frees_the_app_s_pool(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(upstream_max_connections=1, upstream_timeout_seconds=30,
                          send_timeout_seconds=1, public_paths=["/public/*", "/stream/*"])
    request = b"GET /stream/download?bytes=%d HTTP/1.1\r\nHost: gk.test\r\n\r\n" % (256 * MiB)
    siege, response, during = under_siege(gk, lambda: hold_unread(gk, request, 20), max_rounds=3)
    assert siege.results[0].closed, gk.process.output()[-3000:]
    assert_served(response)
    assert during


def test_a_connection_that_never_sends_is_closed(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(request_head_timeout_seconds=1)
    with socket.create_connection(address(gk), timeout=10) as sock:
        assert wait_closed(sock, 20) == b""  # nothing asked, nothing answered


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(keep_alive_timeout_seconds=1)
    with socket.create_connection(address(gk), timeout=10) as sock:
        sock.sendall(b"GET /public/x HTTP/1.1\r\nHost: gk.test\r\n\r\n")
        received = wait_closed(sock, 20)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200"]


def test_connections_over_the_cap_are_refused_and_a_freed_place_serves_again(
    start_gatekeeper: Callable[..., Gatekeeper],
) -> None:
    gk = start_gatekeeper(max_connections=4, request_head_timeout_seconds=60)
    held = [socket.create_connection(address(gk), timeout=10) for _ in range(4)]
    try:
        # Each held connection has begun a request: they are clients, not idle sockets.
        for sock in held:
            sock.sendall(b"GET /public/x HTTP/1.1\r\n")
        with socket.create_connection(address(gk), timeout=10) as extra:
            refused = wait_closed(extra, 20)
        assert re.findall(rb"HTTP/1\.1 (\d{3}) ", refused) == [b"503"]
        held.pop().close()
        deadline = time.monotonic() + 20
        while True:  # the close reaches gatekeeper's loop a moment later
            with gk.client(timeout=10) as client:
                response = client.get("/public/served")
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert_served(response)
    finally:
        for sock in held:
            sock.close()
