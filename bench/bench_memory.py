"""Memory of one gatekeeper worker: after 10 k vs 1 M requests, and during 1 GiB streamed each way.

    .venv/bin/python bench/bench_memory.py                      # both parts, ~8 min
    .venv/bin/python bench/bench_memory.py --part requests      # 10 k → 1 M requests only
    .venv/bin/python bench/bench_memory.py --part stream        # 1 GiB up and down only
    .venv/bin/python bench/bench_memory.py --total 100000 --stream-bytes 268435456   # smoke

Targets (issue 13): RSS after 1 M requests within 10 % of RSS after 10 k; RSS flat while a
1 GiB body streams up and a 1 GiB answer streams down.

requests: the token scenario of run_gatekeeper.py (one worker, a valid RS256 bearer token on
every request, access log and metrics on) in front of harness.py's nginx, loaded by
``wrk -t1 -c32`` on loopback. A wrk Lua script stops wrk after the segment's count of responses
(bounded by count), and ``-d`` bounds each run's time; ``--max-seconds`` bounds the whole
part. The worker's VmRSS is read at each checkpoint (10 k, 100 k, 250 k, 500 k, 750 k, 1 M
requests, counted from its start, the pre-flight checks included) after one second without
load, and sampled every two seconds while wrk runs. wrk sleeps its whole ``-d`` even after its
thread stopped, so a segment is a series of ``--run-seconds`` (10 s) runs, the last one cut
short by the count (it then idles until its ``-d`` ends).

stream: the same gatekeeper config in front of the tests' recording upstream
(tests/support/upstream.py, in this process): ``POST /upload`` with a 1 GiB Content-Length body
(the upstream hashes it as it streams and answers its length and sha256), then
``GET /stream/download?bytes=1 GiB`` (the upstream streams the pattern, the client hashes it).
Raw sockets on the client side, 1 MiB writes and reads. The worker's VmRSS is sampled every
50 ms during each transfer; VmHWM is reset before each (``/proc/PID/clear_refs``: 5), so the
peak (the larger of VmHWM and the highest sample) is the transfer's own.

Each part runs once per ``--http-protocols`` entry (``server.http``; default: gatekeeper for
requests, gatekeeper and uvicorn for stream). Writes bench/out/memory.json (every sample) and
bench/out/memory.md; exits 1 if a target is missed or a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support
import harness
import run_gatekeeper

from tests.support.servers import serve_asgi
from tests.support.upstream import Recorder, create_upstream_app, pattern_sha256

MiB = 1 << 20
CHECKPOINTS = (10_000, 100_000, 250_000, 500_000, 750_000, 1_000_000)
STOP_AFTER_LUA = """
-- Stop this (only) wrk thread after {count} responses: a segment bounded by count.
local seen = 0
response = function(status, headers, body)
  seen = seen + 1
  if seen >= {count} then wrk.thread:stop() end
end
"""


# -- /proc ------------------------------------------------------------------------------------
def status_kib(pid: int, *keys: str) -> dict[str, int]:
    """Fields of /proc/PID/status in KiB (VmRSS, VmHWM, RssAnon, RssFile)."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in keys:
                values[name] = int(rest.split()[0])
    return values


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS")["VmRSS"] / 1024


def reset_peak(pid: int) -> None:
    """VmHWM back to the current RSS (Linux >= 4.0; our own child, so we may)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Sampler:
    """VmRSS of ``pid`` every ``interval`` s in a thread, while the block runs."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)
        self._stop = threading.Event()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.samples.append((time.monotonic() - started, rss_mib(self.pid)))
            self._stop.wait(self.interval)

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)


# -- gatekeeper -------------------------------------------------------------------------------
def gatekeeper_env(upstream_url: str, protocol: str) -> dict[str, str]:
    return {"GATEKEEPER_LISTEN": "127.0.0.1:{port}",
            "GATEKEEPER_ADMIN_LISTEN": f"127.0.0.1:{harness.free_port()}",
            "GATEKEEPER_UPSTREAM": upstream_url, "GATEKEEPER_SERVER__HTTP": protocol}


@contextlib.contextmanager
def gatekeeper(config: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """One worker (``workers: 1`` is one process: the pid is the worker's); yields URL, pid."""
    port = harness.free_port()
    env = {key: harness.expand(value, port=str(port)) for key, value in env.items()}
    command = [sys.executable, "-P", "-m", "gatekeeper", "run", "--config", str(config)]
    with harness.running_server(command, port, log, env) as proc:
        yield f"http://127.0.0.1:{port}", proc.pid


# -- part 1: 10 k vs 1 M requests --------------------------------------------------------------
def run_requests(args: argparse.Namespace, protocol: str, issuer: Any, bearer: str,
                 directory: Path) -> dict[str, Any]:
    config = run_gatekeeper.write_config(directory, issuer, 1)
    checkpoints = [c for c in CHECKPOINTS if c < args.total] + [args.total]
    deadline = time.monotonic() + args.max_seconds
    with harness.NginxUpstream() as nginx, gatekeeper(
            config, gatekeeper_env(nginx.url, protocol), directory / f"requests-{protocol}.log"
    ) as (url, pid):
        problems = harness.check_proxy(url, (bearer,), run_gatekeeper.token_checks(issuer, bearer))
        done = len(run_gatekeeper.token_checks(issuer, bearer)) + 3  # check_proxy's own three
        points: list[dict[str, Any]] = []
        errors = 0
        sampler = Sampler(pid, 2.0)
        with sampler.running():
            for checkpoint in checkpoints:
                while done < checkpoint and time.monotonic() < deadline:
                    count = checkpoint - done
                    script = directory / "stop_after.lua"
                    script.write_text(STOP_AFTER_LUA.format(count=count))
                    # wrk sleeps its whole -d even once every thread has stopped: short runs.
                    seconds = int(min(args.run_seconds, deadline - time.monotonic())) + 1
                    result = harness.run_wrk(url + "/", args.connections, seconds, (bearer,),
                                             script=str(script))
                    done += result.requests
                    errors += result.errors
                if done < checkpoint:
                    problems.append(f"time bound ({args.max_seconds} s) reached at {done} requests")
                    break
                time.sleep(1.0)  # let in-flight work settle before reading RSS
                kib = status_kib(pid, "VmRSS", "VmHWM", "RssAnon", "RssFile")
                points.append({"requests": done, "rss_mib": kib["VmRSS"] / 1024,
                               "hwm_mib": kib["VmHWM"] / 1024, "anon_mib": kib["RssAnon"] / 1024,
                               "file_mib": kib["RssFile"] / 1024, "at_s": time.monotonic()})
                print(f"  {protocol}: {done:>9,} requests  RSS {kib['VmRSS'] / 1024:6.1f} MiB "
                      f"(anon {kib['RssAnon'] / 1024:.1f})", file=sys.stderr, flush=True)
    first, last = points[0], points[-1]
    growth = last["rss_mib"] / first["rss_mib"] - 1
    if errors:
        problems.append(f"{errors} wrk errors (socket errors or non-2xx)")
    if last["requests"] >= args.total and growth > 0.10:
        problems.append(f"RSS grew {growth:.1%} from {first['requests']:,} to "
                        f"{last['requests']:,} requests (target: within 10 %)")
    return {"protocol": protocol, "checkpoints": points, "growth": growth, "errors": errors,
            "samples": sampler.samples, "problems": problems}


# -- part 2: 1 GiB up, 1 GiB down ---------------------------------------------------------------
def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the answer's head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError(f"no content-length in {head[:300]!r}")


def upload(address: tuple[str, int], bearer: str, size: int) -> tuple[bytes, bytes]:
    """POST ``size`` pattern bytes; the answer's head and body."""
    block = bytes(range(256)) * (MiB // 256)  # the upstream's pattern, 1 MiB at a time
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: bench\r\n%s\r\nContent-Length: %d\r\n"
                     b"Content-Type: application/octet-stream\r\n\r\n" % (bearer.encode(), size))
        sent = 0
        while sent < size:
            piece = block[:size - sent]
            sock.sendall(piece)
            sent += len(piece)
        head, body = _read_head(sock)
        length = _content_length(head)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return head, body


def download(address: tuple[str, int], bearer: str, size: int) -> tuple[bytes, int, str]:
    """GET ``size`` streamed bytes; the answer's head, the bytes received and their sha256."""
    digest = hashlib.sha256()
    buffer = bytearray(MiB)
    view = memoryview(buffer)
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(b"GET /stream/download?bytes=%d&chunk=%d HTTP/1.1\r\nHost: bench\r\n%s\r\n\r\n"
                     % (size, MiB, bearer.encode()))
        head, rest = _read_head(sock)
        digest.update(rest)
        received, length = len(rest), _content_length(head)
        while received < length:
            n = sock.recv_into(view, min(MiB, length - received))
            if n == 0:
                break
            digest.update(view[:n])
            received += n
    return head, received, digest.hexdigest()


def run_stream(args: argparse.Namespace, protocol: str, issuer: Any, bearer: str,
               directory: Path) -> dict[str, Any]:
    config = run_gatekeeper.write_config(directory, issuer, 1)
    size = args.stream_bytes
    expected = pattern_sha256(size)
    problems: list[str] = []
    results: dict[str, Any] = {"protocol": protocol, "bytes": size}
    with contextlib.ExitStack() as stack:
        upstream_url = stack.enter_context(serve_asgi(create_upstream_app(Recorder())))
        env = gatekeeper_env(upstream_url, protocol) | {
            "GATEKEEPER_UPSTREAM_TIMEOUT_SECONDS": "120"}  # the upload's answer comes at its end
        url, pid = stack.enter_context(gatekeeper(config, env, directory / f"stream-{protocol}.log"))
        host, port = url.removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        # Warm up: a small transfer each way, so first-use allocations are not counted.
        upload(address, bearer, 4 * MiB)
        download(address, bearer, 4 * MiB)
        for direction in ("up", "down"):
            time.sleep(1.0)
            reset_peak(pid)
            before = rss_mib(pid)
            sampler = Sampler(pid, 0.05)
            started = time.monotonic()
            with sampler.running():
                if direction == "up":
                    head, body = upload(address, bearer, size)
                    ok = head.startswith(b"HTTP/1.1 200") and json.loads(body) == {
                        "bytes": size, "sha256": expected}
                else:
                    head, received, digest = download(address, bearer, size)
                    ok = head.startswith(b"HTTP/1.1 200") and (received, digest) == (size, expected)
            seconds = time.monotonic() - started
            rss = [mib for _, mib in sampler.samples]
            # VmHWM is the kernel's high-water mark as of its last update (on unmaps, exits);
            # the samples catch what it may not have recorded yet.
            peak = max(status_kib(pid, "VmHWM")["VmHWM"] / 1024, *rss)
            half = len(rss) // 2
            figures = {
                "seconds": seconds, "mib_per_s": size / MiB / seconds, "rss_before_mib": before,
                "rss_max_sampled_mib": max(rss), "peak_mib": peak, "peak_over_before_mib": peak - before,
                "first_half_median_mib": statistics.median(rss[:half] or rss),
                "second_half_median_mib": statistics.median(rss[half:]),
                "samples": sampler.samples, "intact": ok,
            }
            results[direction] = figures
            print(f"  {protocol} {direction}: {seconds:.1f} s, RSS {before:.1f} MiB before, peak "
                  f"{peak:.1f} (+{peak - before:.1f}), halves {figures['first_half_median_mib']:.1f}"
                  f" → {figures['second_half_median_mib']:.1f}", file=sys.stderr, flush=True)
            if not ok:
                problems.append(f"{direction}: the transfer was not intact ({head[:60]!r})")
            if peak - before > args.flat_mib:
                problems.append(f"{direction}: peak RSS {peak - before:.1f} MiB over the RSS "
                                f"before (flat: within {args.flat_mib} MiB)")
    results["problems"] = problems
    return results


# -- report -----------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    lines = []
    for part in report["requests"]:
        lines += [f"requests, server.http {part['protocol']}: RSS growth "
                  f"{part['growth']:+.1%} from the first checkpoint to the last, "
                  f"{part['errors']} wrk errors", "",
                  "| requests | RSS MiB | of which anon | file | VmHWM MiB |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {p['requests']:,} | {p['rss_mib']:.1f} | {p['anon_mib']:.1f} | "
                  f"{p['file_mib']:.1f} | {p['hwm_mib']:.1f} |" for p in part["checkpoints"]]
        lines.append("")
    if report["stream"]:
        lines += ["| server.http | direction | GiB | s | MiB/s | RSS before | peak (VmHWM) | "
                  "peak - before | 1st half median | 2nd half median | intact |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for part in report["stream"]:
            for direction in ("up", "down"):
                f = part.get(direction)
                if f is None:
                    continue
                lines.append(
                    f"| {part['protocol']} | {direction} | {part['bytes'] / (1 << 30):g} | "
                    f"{f['seconds']:.1f} | {f['mib_per_s']:.0f} | {f['rss_before_mib']:.1f} | "
                    f"{f['peak_mib']:.1f} | {f['peak_over_before_mib']:+.1f} | "
                    f"{f['first_half_median_mib']:.1f} | {f['second_half_median_mib']:.1f} | "
                    f"{'yes' if f['intact'] else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("requests", "stream", "both"), default="both")
    parser.add_argument("--total", type=int, default=1_000_000, help="requests in all")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="bound on the requests part's load, per protocol")
    parser.add_argument("--run-seconds", type=int, default=10,
                        help="-d of each wrk run (a segment is as many runs as its count needs)")
    parser.add_argument("--stream-bytes", type=int, default=1 << 30)
    parser.add_argument("--flat-mib", type=float, default=16.0,
                        help="most the peak RSS may exceed the RSS before a transfer")
    parser.add_argument("--http-protocols", default=None,
                        help="server.http values, comma-separated (default: gatekeeper for "
                        "requests; gatekeeper,uvicorn for stream)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "memory")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs' temp dir")
    args = parser.parse_args()

    issuer, issuer_server = run_gatekeeper.serve_issuer()
    bearer = "Authorization: Bearer " + issuer.mint(
        "alice", audience=run_gatekeeper.AUDIENCE, ttl_seconds=6 * 3600,
        claims={"email": "alice@example.com", "roles": ["admin", "user"]})
    directory = Path(tempfile.mkdtemp(prefix="gk-bench-memory-"))
    started, load_before = time.time(), os.getloadavg()
    report: dict[str, Any] = {"requests": [], "stream": []}
    try:
        if args.part in ("requests", "both"):
            for protocol in (args.http_protocols or "gatekeeper").split(","):
                report["requests"].append(run_requests(args, protocol, issuer, bearer, directory))
        if args.part in ("stream", "both"):
            for protocol in (args.http_protocols or "gatekeeper,uvicorn").split(","):
                report["stream"].append(run_stream(args, protocol, issuer, bearer, directory))
    finally:
        issuer_server.should_exit = True
        if args.keep_logs:
            print(f"# logs in {directory}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)
    table = markdown(report)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "settings": {k: str(v) for k, v in vars(args).items()}, **report}, indent=1) + "\n")
    problems = [p for part in report["requests"] + report["stream"] for p in part["problems"]]
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
