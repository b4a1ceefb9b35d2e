"""Head floods against one gatekeeper worker while a normal client is served: the worker's
peak memory, and the normal client's latency with and without the flood.

    .venv/bin/python bench/bench_flood.py                    # 3 rounds x 2 protocols x 4 phases, ~4 min
    .venv/bin/python bench/bench_flood.py --rounds 1 --phase-seconds 3   # smoke, ~40 s
    .venv/bin/python bench/bench_flood.py --stock            # also the app under uvicorn's
                                                             # stock httptools protocol
    .venv/bin/python bench/bench_flood.py --baseline DIR     # and an earlier checkout's, beside

Target (issue 13): a head flood (one 256 MB header, millions of small headers, a 64 MB URL)
costs at most the configured limits in memory and does not delay a concurrent normal client by
more than 10 ms.

One gatekeeper per ``server.http`` protocol (``--http-protocols``, default gatekeeper,uvicorn),
each one worker, default limits (max_request_line_bytes 8192, max_header_bytes 32768,
max_header_count 100: one head may take ``max_head_bytes`` = 41,364 raw bytes), the token config
of run_gatekeeper.py in front of harness.py's nginx. Phases, interleaved round-robin (round 1:
protocol A: none, header, headers, url; protocol B: …; round 2: …):

    none      the normal client alone (the reference)
    header    one attacker: ``X-Big: `` then 256 MB of ``b`` (one header line), then CRLF CRLF
    headers   one attacker: 4,000,000 headers ``a:b`` (20 MB), then CRLF
    url       one attacker: ``GET /public/`` then 64 MB of ``a``, then `` HTTP/1.1`` …

An attacker is one client that sends its attack on a connection for as long as the server
reads it, and starts again on a new connection once refused, back to back, for the phase
(bounded by ``--max-attacks`` and the phase's time). The normal client is another process (so
the attacker's thread cannot hold it up in this one): one keep-alive connection, a GET with the
bearer token every ``--interval`` s, each request timed from send to the end of the answer; the
phase lasts ``--phase-seconds`` of its requests.

Per phase: the worker's VmHWM is reset before it (``/proc/PID/clear_refs``: 5) and read after,
its VmRSS sampled every 20 ms meanwhile: peak (the larger of the two) - RSS before = what the
phase cost in memory. Reported per (protocol, phase): medians over
rounds of that and of the client's p50 / p99 / max latency, and the added latency (the phase's
p50 and p99 minus the same round's ``none`` phase). ``uptime``'s load is recorded beside it.
Writes bench/out/flood.json (every phase) and bench/out/flood.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import run_gatekeeper
from bench_memory import Sampler, gatekeeper, gatekeeper_env, reset_peak, rss_mib, status_kib

MB = 1_000_000
SEND_CHUNK = 64 * 1024
MAX_HEAD_BYTES = 8192 + 2 + 32768 + 4 * 100 + 2  # limits.ConnectionLimits().max_head_bytes
# (head, filler, filler volume, tail): the three attacks of the issue.
ATTACKS: dict[str, tuple[bytes, bytes, int, bytes]] = {
    "header": (b"GET /public/x HTTP/1.1\r\nHost: bench\r\nX-Big: ", b"b", 256 * MB, b"\r\n\r\n"),
    "headers": (b"GET /public/x HTTP/1.1\r\nHost: bench\r\n", b"a:b\r\n", 4_000_000 * 5, b"\r\n"),
    "url": (b"GET /public/", b"a", 64 * MB, b" HTTP/1.1\r\nHost: bench\r\n\r\n"),
}
PHASES = ("none", *ATTACKS)


# -- the normal client (a process of its own: --client) ------------------------------------------
def client_main(host: str, port: int, seconds: float, interval: float, header: str) -> int:
    """Print one JSON line: the latency of each request in ms, and the errors."""
    name, _, value = header.partition(": ")
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    connection = http.client.HTTPConnection(host, port, timeout=30)

    def one() -> float:
        started = time.perf_counter()
        connection.request("GET", "/", headers={name: value})
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200 or body != b"ok\n":
            raise ValueError(f"status {response.status}")
        return elapsed

    one()  # connect, and the first request's one-off costs, before the clock
    print("ready", flush=True)
    start = time.perf_counter()
    due = start
    while time.perf_counter() - start < seconds:
        try:
            latencies.append(one())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            connection.close()
        due += interval
        time.sleep(max(0.0, due - time.perf_counter()))
    print(json.dumps({"latencies_ms": latencies, "errors": dict(errors)}), flush=True)
    return 0


# -- the attacker (a thread of this process) ---------------------------------------------------
@dataclass
class Attacker:
    address: tuple[str, int]
    kind: str
    max_attacks: int
    outcomes: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        attacks = 0
        while not self.stop.is_set() and attacks < self.max_attacks and time.monotonic() < deadline:
            self.outcomes[self.once(deadline)] += 1
            attacks += 1

    def once(self, deadline: float) -> str:
        head, filler, volume, tail = ATTACKS[self.kind]
        chunk = filler * (SEND_CHUNK // len(filler))
        try:
            with socket.create_connection(self.address, timeout=10) as sock:
                sock.sendall(head)
                sent = len(head)
                while sent < volume and not self.stop.is_set() and time.monotonic() < deadline:
                    sock.sendall(chunk)
                    sent += len(chunk)
                    self.sent += len(chunk)  # what the kernel took; the server read far less
                if sent < volume:
                    return "unfinished"  # the phase ended first: the server kept reading
                sock.sendall(tail)
                answer = sock.recv(200)
        except (BrokenPipeError, ConnectionResetError):
            return "refused (reset while sending)"
        except TimeoutError:
            return "timeout"
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
        return f"answered {status} after all was sent"


# -- one phase ----------------------------------------------------------------------------------
@dataclass
class Target:
    protocol: str
    url: str
    pid: int


def run_phase(target: Target, phase: str, args: argparse.Namespace, bearer: str) -> dict[str, Any]:
    host, port = target.url.removeprefix("http://").rsplit(":", 1)
    client = subprocess.Popen(
        [sys.executable, __file__, "--client", host, port, str(args.phase_seconds),
         str(args.interval), bearer], stdout=subprocess.PIPE, text=True)
    attacker = None
    thread = None
    sampler = Sampler(target.pid, 0.02)
    try:
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            raise RuntimeError("the normal client did not start")
        time.sleep(0.2)  # idle a moment: the RSS before is the worker's at rest
        reset_peak(target.pid)
        before = rss_mib(target.pid)
        if phase != "none":
            attacker = Attacker((host, int(port)), phase, args.max_attacks)
            thread = threading.Thread(target=attacker.run, args=(args.phase_seconds + 30,),
                                      daemon=True)
            thread.start()
        with sampler.running():
            out, _ = client.communicate(timeout=args.phase_seconds + 60)
    finally:
        if attacker is not None and thread is not None:
            attacker.stop.set()
            thread.join(60)
        if client.poll() is None:
            client.kill()
            client.wait()
    # VmHWM as of the kernel's last update of it, or a higher sample (see bench_memory.py).
    peak = max(status_kib(target.pid, "VmHWM")["VmHWM"] / 1024, *(m for _, m in sampler.samples))
    result = json.loads(out.strip().splitlines()[-1])
    latencies = sorted(result["latencies_ms"])

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "protocol": target.protocol, "phase": phase, "requests": len(latencies),
        "client_errors": result["errors"], "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "rss_before_mib": before, "peak_mib": peak, "peak_over_before_kib": (peak - before) * 1024,
        "attacks": dict(attacker.outcomes) if attacker else {},
        "attack_bytes_sent": attacker.sent if attacker else 0,
        "loadavg": os.getloadavg(),
    }


def summarize(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over rounds per (protocol, phase), with the latency added over the same round's
    'none' phase."""
    reference = {(p["protocol"], p["round"]): p for p in phases if p["phase"] == "none"}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in phases:
        groups.setdefault((p["protocol"], p["phase"]), []).append(p)
    rows = []
    for (protocol, phase), group in groups.items():
        added50 = [p["p50_ms"] - reference[(protocol, p["round"])]["p50_ms"] for p in group]
        added99 = [p["p99_ms"] - reference[(protocol, p["round"])]["p99_ms"] for p in group]
        outcomes: Counter[str] = Counter()
        for p in group:
            outcomes.update(p["attacks"])
        rows.append({
            "protocol": protocol, "phase": phase, "rounds": len(group),
            "requests": sum(p["requests"] for p in group),
            "client_errors": sum(sum(p["client_errors"].values()) for p in group),
            "p50_ms": statistics.median(p["p50_ms"] for p in group),
            "p99_ms": statistics.median(p["p99_ms"] for p in group),
            "max_ms": statistics.median(p["max_ms"] for p in group),
            "added_p50_ms": statistics.median(added50), "added_p99_ms": statistics.median(added99),
            "peak_over_before_kib": statistics.median(p["peak_over_before_kib"] for p in group),
            "peak_over_before_kib_max": max(p["peak_over_before_kib"] for p in group),
            "attacks_per_phase": statistics.median(sum(p["attacks"].values()) for p in group),
            "outcomes": dict(outcomes),
            "load1": statistics.median(p["loadavg"][0] for p in group),
        })
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| server.http | phase | attacks/phase | how they ended | client p50 ms | p99 ms | max ms "
        "| added p50 ms | added p99 ms | peak RSS - before KiB (max) | client errors | load1 |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        outcomes = ", ".join(f"{n} {what}" for what, n in sorted(r["outcomes"].items())) or "—"
        lines.append(
            f"| {r['protocol']} | {r['phase']} | {r['attacks_per_phase']:g} | {outcomes} | "
            f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['added_p50_ms']:+.2f} | "
            f"{r['added_p99_ms']:+.2f} | {r['peak_over_before_kib']:,.0f} "
            f"({r['peak_over_before_kib_max']:,.0f}) | {r['client_errors']} | {r['load1']:.2f} |")
    return "\n".join(lines)


STOCK = ("import sys, gatekeeper.server.choice as choice; "
         "choice.http_protocol = lambda kind, limits: 'httptools'; "  # uvicorn's own, unguarded
         "from gatekeeper.__main__ import main; sys.exit(main(sys.argv[1:]))")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--client", nargs=5, metavar=("HOST", "PORT", "SECONDS", "INTERVAL", "HEADER"),
                        help=argparse.SUPPRESS)  # the normal client's process
    parser.add_argument("--http-protocols", default="gatekeeper,uvicorn")
    parser.add_argument("--stock", action="store_true",
                        help="also uvicorn's stock httptools protocol (no guards), last: "
                        "'uvicorn-stock'")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of an earlier commit (git archive REV | tar -x -C DIR): "
                        "its gatekeeper runs beside, as PROTOCOL@baseline (python -P, PYTHONPATH)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-seconds", type=float, default=8.0)
    parser.add_argument("--interval", type=float, default=0.01, help="the normal client's pace")
    parser.add_argument("--max-attacks", type=int, default=100_000, help="per phase")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "flood")
    args = parser.parse_args()
    if args.client:
        host, port, seconds, interval, header = args.client
        return client_main(host, int(port), float(seconds), float(interval), header)

    issuer, issuer_server = run_gatekeeper.serve_issuer()
    bearer = "Authorization: Bearer " + issuer.mint(
        "alice", audience=run_gatekeeper.AUDIENCE, ttl_seconds=6 * 3600,
        claims={"email": "alice@example.com", "roles": ["admin", "user"]})
    directory = Path(tempfile.mkdtemp(prefix="gk-bench-flood-"))
    config = run_gatekeeper.write_config(directory, issuer, 1)
    started, uptime_before = time.time(), subprocess.run(["uptime"], capture_output=True,
                                                         text=True).stdout.strip()
    phases: list[dict[str, Any]] = []
    problems: list[str] = []
    with harness.NginxUpstream() as nginx, contextlib.ExitStack() as stack:
        targets = []
        for protocol in args.http_protocols.split(","):
            for name, extra in [(protocol, {})] + ([] if args.baseline is None else [
                    (f"{protocol}@baseline", {"PYTHONPATH": str(args.baseline.resolve())})]):
                url, pid = stack.enter_context(gatekeeper(
                    config, gatekeeper_env(nginx.url, protocol) | extra, directory / f"{name}.log"))
                problems += [f"{name}: {p}" for p in harness.check_proxy(
                    url, (bearer,), run_gatekeeper.token_checks(issuer, bearer))]
                targets.append(Target(name, url, pid))
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                for phase in PHASES:
                    result = run_phase(target, phase, args, bearer) | {"round": round_no}
                    phases.append(result)
                    print(f"round {round_no} {target.protocol:<10} {phase:<8} "
                          f"attacks {sum(result['attacks'].values()):>5}  p50 "
                          f"{result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  max "
                          f"{result['max_ms']:7.1f} ms  peak-before "
                          f"{result['peak_over_before_kib']:8,.0f} KiB  {result['attacks']}",
                          file=sys.stderr, flush=True)
        if args.stock:  # last and alone: an unguarded worker may stay busy long after a phase
            stock_command = [sys.executable, "-P", "-c", STOCK, "run", "--config", str(config)]
            port = harness.free_port()
            env = {k: harness.expand(v, port=str(port))
                   for k, v in gatekeeper_env(nginx.url, "uvicorn").items()}
            proc = stack.enter_context(harness.running_server(
                stock_command, port, directory / "uvicorn-stock.log", env))
            target = Target("uvicorn-stock", f"http://127.0.0.1:{port}", proc.pid)
            for phase in PHASES:
                result = run_phase(target, phase, args, bearer) | {"round": 1}
                phases.append(result)
                print(f"stock {phase:<8} {result}", file=sys.stderr, flush=True)
    issuer_server.should_exit = True
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows = summarize(phases)
    table = markdown(rows) + (f"\n\nmax_head_bytes (the configured bound per connection): "
                              f"{MAX_HEAD_BYTES / 1024:.1f} KiB. uptime before: {uptime_before}; "
                              f"after: {uptime_after}")
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "uptime_before": uptime_before, "uptime_after": uptime_after,
        "settings": {k: str(v) for k, v in vars(args).items() if k != "client"},
        "problems": problems, "summary": rows, "phases": phases}, indent=1) + "\n")
    shutil.rmtree(directory, ignore_errors=True)
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
