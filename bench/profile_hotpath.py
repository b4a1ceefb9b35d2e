"""Where a gatekeeper worker's CPU goes under wrk: py-spy on the bearer-token request, summed by layer.

For each ``--tree`` (a checkout's directory, put first on PYTHONPATH; ``.`` is this one), in turn:
start gatekeeper (one worker, access log on, the token scenario of run_gatekeeper.py) in front of
the harness's nginx, warm it up with wrk, then record it with py-spy (``--nonblocking``: the
process is not paused to sample) while wrk keeps it busy, and write the collapsed stacks and a
table: each sample goes to the deepest frame that belongs to a known layer.

    .venv/bin/python bench/profile_hotpath.py --tree /tmp/hp-base --tree . --out bench/out/profile

Needs py-spy (``.venv/bin/python -m pip install py-spy``) and ptrace rights (root here), wrk, nginx.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import run_gatekeeper

# Layer of a frame, by its file; the first pattern that matches wins. Order: ours before the
# libraries they call, so "the access log" includes the JSON encoding it does.
LAYERS = [
    ("access log", re.compile(r"gatekeeper/logs\.py")),
    ("metrics", re.compile(r"gatekeeper/metrics\.py|prometheus_client/")),
    ("header filtering", re.compile(r"gatekeeper/(mutate|headernames)\.py|sessions/cookie\.py")),
    ("pipeline (authn, authz, paths)", re.compile(
        r"gatekeeper/(pipeline|authz|paths|request|exchange|principal|cookies|origin|revocation"
        r"|subjects|lru)\.py|gatekeeper/(authn|tokens|policy|sessions|login)/")),
    ("upstream client", re.compile(r"gatekeeper/upstream/")),
    ("gate + proxy glue", re.compile(r"gatekeeper/edge/|gatekeeper/app\.py")),
    ("HTTP server protocol", re.compile(r"uvicorn/|gatekeeper/server/|httptools")),
    ("asyncio / uvloop scheduling", re.compile(r"asyncio/|uvloop")),
]
_FRAME_FILE = re.compile(r"\((.*?):\d+\)$")


def layer_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # the deepest first
        match = _FRAME_FILE.search(frame)
        path = match.group(1) if match else frame
        for name, pattern in LAYERS:
            if pattern.search(path):
                return name
    return "other"


def summarize(raw: Path) -> dict[str, int]:
    shares: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            shares[layer_of(stack)] += int(count)
    return dict(shares)


def profile(tree: Path, label: str, out: Path, directory: Path, upstream: harness.NginxUpstream,
            config: Path, bearer: str, seconds: int, rate: int, connections: int) -> dict[str, int]:
    port = harness.free_port()
    env = {"GATEKEEPER_LISTEN": f"127.0.0.1:{port}",
           "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{harness.free_port()}",
           "GATEKEEPER_UPSTREAM": upstream.url,
           "PYTHONPATH": str(tree.resolve())}
    # -P: not the working directory first on sys.path, or `-m` would import this checkout
    # whatever PYTHONPATH says.
    command = [sys.executable, "-P", "-m", "gatekeeper", "run", "--config", str(config)]
    url = f"http://127.0.0.1:{port}/"
    raw = out.parent / f"{out.name}-{label}.txt"
    with harness.running_server(command, port, directory / f"{label}.log", env) as proc:
        harness.run_wrk(url, connections, 3, headers=(bearer,))  # warm-up
        wrk = subprocess.Popen([harness.WRK, "-t1", f"-c{connections}", f"-d{seconds + 3}s",
                                "-H", bearer, url], stdout=subprocess.DEVNULL)
        try:
            time.sleep(1)
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                            str(proc.pid), "--rate", str(rate), "--duration", str(seconds),
                            "--nonblocking", "--format", "raw", "--output", str(raw)],
                           check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60)
        finally:
            wrk.wait(seconds + 30)
    return summarize(raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", action="append", type=Path, required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=400)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "profile")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    issuer, issuer_server = run_gatekeeper.serve_issuer()
    token = issuer.mint("alice", audience=run_gatekeeper.AUDIENCE, ttl_seconds=6 * 3600,
                        claims={"email": "alice@example.com", "roles": ["admin", "user"]})
    bearer = f"Authorization: Bearer {token}"
    directory = Path(tempfile.mkdtemp(prefix="gk-profile-"))
    config = run_gatekeeper.write_config(directory, issuer, 1)
    tables: dict[str, dict[str, int]] = {}
    with harness.NginxUpstream() as upstream:
        for index, tree in enumerate(args.tree):
            label = f"{index}-{tree.resolve().name}"
            tables[label] = profile(tree, label, args.out, directory, upstream, config, bearer,
                                    args.seconds, args.rate, args.connections)
    issuer_server.should_exit = True
    layers = [name for name, _ in LAYERS] + ["other"]
    lines = ["| layer | " + " | ".join(tables) + " |",
             "|---|" + "---:|" * len(tables)]
    for layer in layers:
        cells = []
        for shares in tables.values():
            total = sum(shares.values()) or 1
            cells.append(f"{100 * shares.get(layer, 0) / total:.1f} %")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    lines.append("| samples | " + " | ".join(str(sum(s.values())) for s in tables.values()) + " |")
    table = "\n".join(lines)
    print(table)
    args.out.with_suffix(".md").write_text(
        f"py-spy {args.rate} Hz, {args.seconds} s, wrk -c{args.connections}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.uname().nodename}\n\n"
        + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
