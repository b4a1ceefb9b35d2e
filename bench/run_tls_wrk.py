"""TLS on the pod port end to end: gatekeeper's CPU per request over https against plain http,
under wrk, with keep-alive connections (a handshake per connection) and with ``Connection:
close`` (a full handshake per request), against harness.py's tiny nginx upstream.

A public path (anonymous, no token) keeps the auth work out of the difference. One worker,
rounds interleaved (plain, tls, plain, tls, ...), medians. The certificate is ECDSA P-256 from a
CA made here (tests/support/certs.py), as cert-manager's overlay issues it.

    .venv/bin/python bench/run_tls_wrk.py [--duration 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness

from tests.support.certs import TestCA, write_pair


def config(directory: Path, name: str, port: int, upstream: str, tls: bool) -> Path:
    values: dict[str, object] = {
        "listen": f"127.0.0.1:{port}", "admin_listen": f"127.0.0.1:{harness.free_port()}",
        "upstream": upstream, "public_paths": ["/public/*"], "access_log": True,
        "log_level": "warning",
    }
    if tls:
        cert, key = write_pair(directory / "tls", TestCA().server())
        values["tls"] = {"cert_file": str(cert), "key_file": str(key)}
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="gk-bench-tls-"))
    results: dict[str, list[harness.Measurement]] = {}
    with harness.NginxUpstream() as upstream:
        servers = []
        for name, tls in (("plain", False), ("tls", True)):
            port = harness.free_port()
            path = config(directory, name, port, upstream.url, tls)
            servers.append((name, port, tls, harness.running_server(
                [sys.executable, "-P", "-m", "gatekeeper", "run", "--config", str(path)], port,
                directory / f"{name}.log")))
        procs = [(name, port, tls, server.__enter__()) for name, port, tls, server in servers]
        try:
            for _ in range(args.rounds):
                for name, port, tls, proc in procs:
                    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/public/x"
                    for mode, headers in (("keep-alive", ()), ("close", ("Connection: close",))):
                        results.setdefault(f"{name} {mode}", []).append(harness.measure(
                            url, proc.pid, upstream, args.connections, args.duration,
                            args.warmup, headers))
        finally:
            for _, _, _, server in reversed(servers):
                server.__exit__(None, None, None)
    print(f"| scenario (-c{args.connections}, 1 worker) | req/s | gatekeeper CPU µs/req | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(r.wrk.requests_per_s for r in runs):,.0f} | "
              f"{statistics.median(r.server_cpu_us_per_req for r in runs):,.0f} | "
              f"{statistics.median(r.wrk.p99_ms for r in runs):,.1f} | "
              f"{sum(r.wrk.errors for r in runs)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
