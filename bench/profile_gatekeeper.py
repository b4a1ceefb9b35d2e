"""Where gatekeeper's CPU goes under load: a py-spy flame summary of one scenario.

Starts what run_gatekeeper.py's scenario starts (the dev issuer, the harness's nginx upstream,
``gatekeeper run`` with one worker and the same config), warms it up with wrk, then samples it
with ``py-spy record`` while ``wrk -t1 -cN`` loads it, and summarizes the collapsed stacks:

- **self %**: samples whose innermost frame is this function (where the CPU is spent);
- **total %**: samples with this function anywhere on the stack (what it costs with callees);
- **self % by file**: the same, summed per source file (a layer's share).

Only samples of a running thread count (py-spy's default: idle threads are not sampled), so
the shares are of gatekeeper's busy time. py-spy needs ptrace rights over the process (root,
or ``kernel.yama.ptrace_scope=0``).

    .venv/bin/python bench/profile_gatekeeper.py                       # token, -c32, 10 s
    .venv/bin/python bench/profile_gatekeeper.py --kind session --connections 4

writes ``out/profile-<kind>.txt`` (the raw collapsed stacks: feed them to flamegraph.pl or
speedscope for the picture) and ``out/profile-<kind>.md`` (the summary tables).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import run_gatekeeper

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
KINDS = {"token": "/", "public": "/public/x", "session": "/", "token-rbac": "/"}


def _frame_name(frame: str) -> str:
    """``handle (gatekeeper/pipeline.py)``: the function and its file, site-packages cut off."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3", str(run_gatekeeper.ROOT) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{name} ({where})" if where else name


def summarize(lines: Iterable[str], top: int = 20) -> str:
    """The markdown summary of py-spy's raw (collapsed) output."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    file_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        # --subprocesses prefixes a "process …" frame; neither it nor a thread frame is code.
        frames = [_frame_name(f) for f in stack.split(";")
                  if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        count = int(count_text)
        samples += count
        self_counts[frames[-1]] += count
        file_counts[frames[-1].partition(" (")[2].rstrip(")") or "?"] += count
        for frame in set(frames):
            total_counts[frame] += count

    if samples == 0:
        return "no samples (did py-spy attach?)\n"

    def table(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [f"| {title} | % |", "|---|---:|"]
        rows += [f"| `{name}` | {100 * n / samples:.1f} |" for name, n in counter.most_common(top)]
        return [*rows, ""]

    return "\n".join([f"{samples} samples of a running thread.", "",
                      *table("self: function (file)", self_counts),
                      *table("total: function (file)", total_counts),
                      *table("self by file", file_counts)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=sorted(KINDS), default="token")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rate", type=int, default=400, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()

    issuer, issuer_server = run_gatekeeper.serve_issuer()
    token = issuer.mint("alice", audience=run_gatekeeper.AUDIENCE, ttl_seconds=6 * 3600,
                        claims={"email": "alice@example.com", "roles": ["admin", "user"]})
    bearer = f"Authorization: Bearer {token}"
    headers: tuple[str, ...] = (bearer,)
    if args.kind == "public":
        headers = ()
    elif args.kind == "session":
        headers = (run_gatekeeper.session_cookie(issuer),)
    directory = Path(tempfile.mkdtemp(prefix="gk-profile-"))
    policy = None
    if args.kind == "token-rbac":
        policy = directory / "admin-only.csv"
        policy.write_text("p, role:admin, /*, *, allow\n")
    config = run_gatekeeper.write_config(directory, issuer, 1, policy)
    port = harness.free_port()
    raw = args.out / f"profile-{args.kind}.txt"
    args.out.mkdir(parents=True, exist_ok=True)
    with harness.NginxUpstream() as upstream, harness.running_server(
        [sys.executable, "-m", "gatekeeper", "run", "--config", str(config)], port,
        directory / "gatekeeper.log",
        {"GATEKEEPER_LISTEN": f"127.0.0.1:{port}",
         "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{harness.free_port()}",
         "GATEKEEPER_UPSTREAM": upstream.url},
    ) as proc:
        url = f"http://127.0.0.1:{port}{KINDS[args.kind]}"
        problems = harness.check_proxy(f"http://127.0.0.1:{port}", (bearer,))
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        harness.run_wrk(url, args.connections, args.warmup, headers)
        # wrk runs a little longer than py-spy on both sides, so every sample is under load.
        load = threading.Thread(target=harness.run_wrk,
                                args=(url, args.connections, args.seconds + 2, headers))
        load.start()
        time.sleep(1)
        subprocess.run([PY_SPY, "record", "--pid", str(proc.pid), "--subprocesses",
                        "--rate", str(args.rate), "--duration", str(args.seconds),
                        "--nolineno", "--format", "raw", "--output", str(raw)],
                       check=True, capture_output=True, timeout=args.seconds + 60)
        load.join()
    issuer_server.should_exit = True
    with raw.open() as lines:
        summary = summarize(lines)
    heading = (f"py-spy {args.rate} Hz, {args.seconds} s under wrk -t1 -c{args.connections}, "
               f"scenario {args.kind}, one worker, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    markdown = args.out / f"profile-{args.kind}.md"
    markdown.write_text(f"{heading}\n\n{summary}")
    print(f"{heading}\n\n{summary}")
    with contextlib.suppress(OSError):
        shutil.rmtree(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
