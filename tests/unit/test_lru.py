"""Every cache is bounded in entries and in bytes (gatekeeper/lru.py), whatever a client makes
its keys and values: a path, a token, a session."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gatekeeper.lru import DEFAULT_MAX_BYTES, LRU, approx_bytes
from gatekeeper.policy.loader import load_policy
from gatekeeper.principal import Principal
from tests.support.paths import ROOT

MODEL = ROOT / "policies" / "model.conf"


def test_the_entry_bound_drops_the_least_recent() -> None:
    lru: LRU[int, str] = LRU(3)
    for i in range(5):
        lru.put(i, "x")
    assert lru.get(1) is None and [lru.get(i) for i in (2, 3, 4)] == ["x", "x", "x"]


def test_the_byte_bound_holds_whatever_the_entry_count_allows() -> None:
    lru: LRU[str, int] = LRU(1_000_000, max_bytes=100_000)
    for i in range(1000):
        lru.put(f"/{i}/" + "a" * 10_000, i)  # a long path, as a decision cache key
        assert lru.bytes <= 100_000
    assert 0 < len(lru) < 10 and lru.get("/999/" + "a" * 10_000) == 999


def test_an_entry_larger_than_the_byte_bound_is_not_kept() -> None:
    lru: LRU[str, str] = LRU(10, max_bytes=1000)
    lru.put("small", "v")
    lru.put("big", "x" * 2000)
    assert lru.get("big") is None and lru.get("small") == "v" and lru.bytes < 1000


def test_replacing_and_discarding_keep_the_weight_true() -> None:
    lru: LRU[str, str] = LRU(10)
    for _ in range(100):
        lru.put("k", "x" * 1000)
    assert lru.bytes == approx_bytes("k") + approx_bytes("x" * 1000)
    lru.discard("k")
    assert lru.bytes == 0 and len(lru) == 0


def test_approx_bytes_counts_what_a_principal_holds() -> None:
    token = "t" * 5000
    principal = Principal("alice", ("admin",), {"groups": ["g" * 1000] * 3, "n": {"deep": "d" * 500}},
                          "bearer", token=token)
    assert approx_bytes(principal) > 5000 + 3000 + 500
    assert approx_bytes(dataclasses.replace(principal, token=None)) < approx_bytes(principal) - 4000


def test_the_decision_cache_stays_within_its_bytes_under_long_unique_paths(tmp_path: Path) -> None:
    (tmp_path / "policy.csv").write_text("p, anonymous, /public/*, GET, allow\n")
    policy = load_policy(MODEL, tmp_path / "policy.csv").policy
    for i in range(2500):  # 2,500 x 16 KB = 40 MB of paths an anonymous client chose
        policy.decide("anonymous", [], "GET", f"/public/{i}/" + "p" * 16_000, authenticated=False)
    assert policy._cache.bytes <= DEFAULT_MAX_BYTES and len(policy._cache) < 2500
