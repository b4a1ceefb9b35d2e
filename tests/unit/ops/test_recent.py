"""ops/recent.py: the policy page's samples of the traffic stay bounded, and a route seen before
costs no allocation."""

from __future__ import annotations

import tracemalloc
from typing import Any

from gatekeeper.ops.recent import (
    MAX_OTHER_METHODS,
    STANDARD_METHODS,
    RecentDenies,
    RouteSample,
    Traffic,
)


def entry(n: int) -> dict[str, Any]:
    return {"request_id": f"r{n}", "method": "GET", "path": f"/p/{n}", "status": 403,
            "subject": "alice", "decision": "unauthorized", "reason": "no_matching_rule"}


def test_only_the_latest_denies_are_kept_newest_first_as_the_same_objects() -> None:
    denies = RecentDenies(limit=3)
    entries = [entry(n) for n in range(5)]
    for item in entries:
        denies.add(item)
    kept = list(denies.newest_first())
    assert [item["request_id"] for item in kept] == ["r4", "r3", "r2"]
    assert all(a is b for a, b in zip(kept, reversed(entries[2:]), strict=True))  # no copies


def test_a_deny_the_access_log_did_not_stamp_gets_a_time() -> None:
    denies = RecentDenies()
    denies.add(entry(1))
    stamped = {**entry(2), "time": "2026-12-07T22:00:00.123Z"}
    denies.add(stamped)
    newest, oldest = list(denies.newest_first())
    assert newest["time"] == "2026-12-07T22:00:00.123Z"
    assert isinstance(oldest["time"], str) and oldest["time"].endswith("Z")


def test_a_route_is_kept_once_and_the_sample_is_bounded_oldest_out() -> None:
    sample = RouteSample(limit=3)
    for method, path in [("GET", "/a"), ("GET", "/a"), ("POST", "/a"), ("GET", "/b"),
                         ("GET", "/a"), ("GET", "/c")]:
        sample.see(method, path)
    assert sample.newest_first() == [("GET", "/c"), ("GET", "/b"), ("POST", "/a")]
    assert len(sample) == 3


def test_made_up_methods_cannot_grow_the_sample_nor_crowd_out_the_standard_ones() -> None:
    sample = RouteSample(limit=1000)
    for n in range(MAX_OTHER_METHODS * 4):
        sample.see(f"M{n}", "/x")
    assert len(sample) == MAX_OTHER_METHODS
    for method in sorted(STANDARD_METHODS):
        sample.see(method, "/x")
    assert len(sample) == MAX_OTHER_METHODS + len(STANDARD_METHODS)
    for n in range(5000):
        sample.see("GET", f"/random/{n}")
    assert len(sample) == 1000
    assert sample.newest_first()[0] == ("GET", "/random/4999")


def test_a_method_whose_routes_all_aged_out_gives_its_room_back() -> None:
    sample = RouteSample(limit=MAX_OTHER_METHODS)
    for n in range(MAX_OTHER_METHODS):
        sample.see(f"M{n}", "/x")
    for n in range(MAX_OTHER_METHODS):
        sample.see("GET", f"/{n}")  # every made-up method's one route ages out
    sample.see("MKCOL", "/dav")
    assert sample.newest_first()[0] == ("MKCOL", "/dav")


def test_a_route_seen_before_allocates_nothing() -> None:
    traffic = Traffic()
    paths = [f"/items/{n}" for n in range(50)]
    for path in paths:
        traffic.route("GET", path)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            for path in paths:
                traffic.route("GET", path)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024, f"{grown} bytes for 10,000 known routes"
