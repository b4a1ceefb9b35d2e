"""CPU bounded under attack: input a client controls costs time in proportion to its bytes.

Each attack sends a fixed amount of hostile input to a gatekeeper process of its own and
compares the CPU seconds that process used (/proc/<pid>/stat, user + system: not a wall-clock
time, so a busy machine does not change it) with a bound far above what linear work on that
input costs and far below what the quadratic or exponential work it defends against costs.
Another client is served while the attack goes on (tests/support/attacks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Gatekeeper
from tests.support.attacks import assert_served, stream_head, under_siege
from tests.support.servers import cpu_seconds


def _request(target: bytes, header: bytes) -> bytes:
    return (b"GET " + target + b" HTTP/1.1\r\nHost: gk.test\r\nConnection: close\r\n"
            + header + b"\r\n\r\n")


# Each round is one request with ~30 KB of hostile header; the bound per round, 0.25 s, is
# ~100x what parsing 30 KB linearly costs (~2 ms with the request around it), and an eighth of
# what the attack cost before its fix (2 s and more per round).
PER_ROUND_CPU_BOUND = 0.25

COOKIE_ATTACKS = {
    # CPython's http.cookies unquotes a quoted value in time quadratic in its backslashes
    # (CVE-2024-7592, unfixed in the 3.11 this runs on): 30 KB of them cost ~2 s per request.
    "a quoted cookie value of 30,000 backslashes": b'Cookie: tok="' + b"\\" * 30000 + b'"',
    "a quoted cookie value of 7,500 octal escapes": b'Cookie: tok="' + b"\\101" * 7500 + b'"',
    "3,000 cookies": b"Cookie: " + b"; ".join(b"c%d=v" % i for i in range(3000)),
}


@pytest.mark.parametrize("header", list(COOKIE_ATTACKS.values()), ids=list(COOKIE_ATTACKS))
def test_a_cookie_header_costs_what_its_bytes_cost(
    start_gatekeeper: Callable[..., Gatekeeper], header: bytes,
) -> None:
    # The bearer token may come from a cookie (token_sources "cookie:NAME").
    gk = start_gatekeeper(auth={"token_sources": ["header", "cookie:tok"]})
    pid = gk.process.pid
    before = cpu_seconds(pid)
    siege, response, during = under_siege(
        gk, lambda: stream_head(gk, _request(b"/private/x", header), b"", 0, b""))
    spent = cpu_seconds(pid) - before
    rounds = len(siege.results)
    assert all(attack.statuses == [401] for attack in siege.results)
    assert spent < PER_ROUND_CPU_BOUND * rounds + 0.5, f"{spent:.1f} s CPU for {rounds} rounds"
    assert_served(response)
    assert during


# Python's re backtracks: keyMatch2's "/*" becomes ".*", and k of them against a path that
# almost matches cost time of degree k in its length (CWE-1333). Four of them on a 6 KB path
# cost ~14 s per request before the fix.
WILDCARD_RULES = {
    "four '/*' wildcards": ("keyMatch2", "/public/*/b/*/c/*/d/*", b"/public/" + b"b/c/" * 1500),
    "three '/*' and a ':param'": (
        "keyMatch2", "/public/*/b/*/c/*/:name/d", b"/public/" + b"b/c/" * 1500),
    "wildcards after a ':param'": (
        "keyMatch2", "/public/:t/*/b/*/c/*/d/*", b"/public/t/" + b"b/c/" * 1500),
    "keyMatch3 with '{param}'": (
        "keyMatch3", "/public/{t}/*/b/*/c/*/d/*", b"/public/t/" + b"b/c/" * 1500),
    "keyMatch5 with a query": (
        "keyMatch5", "/public/*/b/*/c/*/d/*", b"/public/" + b"b/c/" * 1500 + b"?q=1"),
}


@pytest.mark.parametrize(("function", "pattern", "target"), list(WILDCARD_RULES.values()),
                         ids=list(WILDCARD_RULES))
def test_a_path_costs_what_its_bytes_cost_against_wildcard_rules(
    start_gatekeeper: Callable[..., Gatekeeper], tmp_path: Path, function: str, pattern: str,
    target: bytes,
) -> None:
    model = tmp_path / "model.conf"
    default = Path(__file__).resolve().parents[2] / "policies" / "model.conf"
    model.write_text(default.read_text().replace("keyMatch2(", function + "("))
    policy = tmp_path / "policy.csv"
    policy.write_text(f"p, role:anonymous, /public/*, GET, allow\n"
                      f"p, role:anonymous, {pattern}, GET, deny\n")
    gk = start_gatekeeper(policy={"model": str(model), "policy": str(policy)})
    pid = gk.process.pid
    before = cpu_seconds(pid)
    siege, response, during = under_siege(gk, lambda: stream_head(gk, _request(target, b""), b"",
                                                                  0, b""))
    spent = cpu_seconds(pid) - before
    rounds = len(siege.results)
    assert all(attack.statuses == [200] for attack in siege.results)  # no rule denies it
    assert spent < PER_ROUND_CPU_BOUND * rounds + 0.5, f"{spent:.1f} s CPU for {rounds} rounds"
    assert_served(response)
    assert during
