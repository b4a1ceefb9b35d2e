"""The revocation check on the request path: its cost with an empty list and with 200,000 entries.

    .venv/bin/python bench/bench_revocation.py

The list is filled directly (as a resync from Redis would leave it); no Redis is involved, since
the point is that the request path never touches Redis.
"""

from __future__ import annotations

import math
import timeit
from typing import Any, cast

from gatekeeper.metrics import Metrics
from gatekeeper.principal import Principal
from gatekeeper.revocation import RevocationList
from gatekeeper.settings import RevocationSettings

SETTINGS = RevocationSettings(enabled=True, admin_secret="x" * 40)


def revocation_list(entries: int) -> RevocationList:
    revocations = RevocationList(cast(Any, None), SETTINGS, "bench:", Metrics())
    far = 4_000_000_000.0
    revocations._jti.update((f"jti-{i}", far) for i in range(entries // 2))
    revocations._sub.update((f"sub-{i}", far) for i in range(entries // 2))
    revocations._fresh_until = math.inf
    return revocations


def main() -> None:
    principal = Principal(subject="alice", roles=("user",), claims={"jti": "not-revoked"},
                          via="bearer")
    print("| entries | µs per check (best of 5 x 200,000) |")
    print("|---:|---:|")
    for entries in (0, 200_000):
        revocations = revocation_list(entries)
        best = min(timeit.repeat(lambda r=revocations: r.check(principal), number=200_000, repeat=5))
        print(f"| {entries:,} | {best / 200_000 * 1e6:.2f} |")


if __name__ == "__main__":
    main()
