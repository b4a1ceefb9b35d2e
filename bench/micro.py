"""What the in-process micro benchmarks share (micro_assertion.py, micro_hotpath.py): a fixed
principal's authenticator, a coroutine run without an event loop, the identity headers, and the
command line with its report. Only entry points every version since the regroup has, so
micro_hotpath.py still measures an earlier checkout (``PYTHONPATH=DIR``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gatekeeper
from gatekeeper.exchange import Exchange
from gatekeeper.principal import Principal

IDENTITY_HEADERS = {"X-Auth-Request-User": "sub", "X-Auth-Request-Email": "email",
                    "X-Auth-Request-Groups": "roles"}


class Known:
    """An authenticator that answers the same principal for every request (no I/O)."""

    def __init__(self, principal: Principal) -> None:
        self._principal = principal

    async def authenticate(self, request: Exchange) -> Principal | None:
        return self._principal


def drive(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (no I/O) without an event loop's overhead."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def run(doc: str, measure: Callable[[int, int], dict[str, float]],
        note: Callable[[int], str] = lambda number: "") -> int:
    """``--number``, ``--repeat``, ``--json``: measure, print µs per call, write the JSON."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures = measure(args.number, args.repeat)
    source = str(Path(gatekeeper.__file__).resolve().parent.parent)
    print(f"gatekeeper from {source}; best of {args.repeat} x {args.number} calls{note(args.number)}")
    for name, micros in figures.items():
        print(f"{micros:8.2f} µs  {name}")
    if args.json is not None:
        args.json.write_text(json.dumps({"source": source, "python": sys.version.split()[0],
                                         "number": args.number, "repeat": args.repeat,
                                         "us": figures}, indent=2) + "\n")
    return 0
