"""TLS cost on gatekeeper's listener, in process: the server side's CPU per full handshake, per
resumed handshake, per keep-alive request's records, and what gatekeeper adds (the rotation
check on each handshake, a client certificate's claims per connection).

Real OpenSSL handshakes over memory BIOs (no sockets, no event loop): only the server object's
calls are timed, with ``time.process_time`` (CPU, not wall clock), so the client's half of each
handshake is not counted. Certificates: ECDSA P-256, as cert-manager's overlay issues them.

    .venv/bin/python bench/bench_tls.py [--handshakes 400] [--requests 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gatekeeper.peercert import CertificateCache, parse
from gatekeeper.settings.tls import TlsSettings
from gatekeeper.tls.context import new_context
from gatekeeper.tls.rotation import RotatingContext
from tests.support.certs import TestCA, write_pair

REQUEST = (b"GET /api/items HTTP/1.1\r\nHost: app.example.com\r\nAuthorization: Bearer "
           + b"x" * 700 + b"\r\n\r\n")
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 300\r\n\r\n" + b"y" * 300


class Pair:
    """One connection; ``server_cpu`` sums the CPU seconds spent in the server object's calls."""

    def __init__(self, server: ssl.SSLContext, client: ssl.SSLContext,
                 session: ssl.SSLSession | None = None) -> None:
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client.wrap_bio(self.c_in, self.c_out, server_hostname="localhost",
                                      session=session)
        self.server = server.wrap_bio(self.s_in, self.s_out, server_side=True)
        self.server_cpu = 0.0

    def _server(self, call: Callable[[], object]) -> object:
        start = time.process_time()
        try:
            return call()
        finally:
            self.server_cpu += time.process_time() - start

    def handshake(self) -> None:
        done_c = done_s = False
        for _ in range(20):
            if not done_c:
                try:
                    self.client.do_handshake()
                    done_c = True
                except ssl.SSLWantReadError:
                    pass
            self.s_in.write(self.c_out.read())
            if not done_s:
                try:
                    self._server(self.server.do_handshake)
                    done_s = True
                except ssl.SSLWantReadError:
                    pass
            self.c_in.write(self.s_out.read())
            if done_c and done_s:
                # TLS 1.3 tickets arrive after the handshake: let the client read them.
                with contextlib.suppress(ssl.SSLWantReadError):
                    self.client.read(1)
                return
        raise RuntimeError("handshake did not finish")

    def request(self) -> None:
        self.client.write(REQUEST)
        self.s_in.write(self.c_out.read())
        self._server(lambda: self.server.read(65536))
        self._server(lambda: self.server.write(RESPONSE))
        self.c_in.write(self.s_out.read())
        self.client.read(65536)


def per_handshake(server: ssl.SSLContext, client: ssl.SSLContext, count: int,
                  resume: bool = False) -> float:
    first = Pair(server, client)
    first.handshake()
    session = first.client.session if resume else None
    total = 0.0
    for _ in range(count):
        pair = Pair(server, client, session)
        pair.handshake()
        if resume and not pair.client.session_reused:
            raise RuntimeError("the session was not resumed")
        total += pair.server_cpu
    return total / count * 1e6


def per_request(server: ssl.SSLContext, client: ssl.SSLContext, count: int) -> float:
    pair = Pair(server, client)
    pair.handshake()
    pair.server_cpu = 0.0
    for _ in range(count):
        pair.request()
    return pair.server_cpu / count * 1e6


def timeit(call: Callable[[], object], count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=400)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ca = TestCA()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        cert, key = write_pair(root / "server", ca.server())
        (root / "ca.crt").write_bytes(ca.pem)
        client_cert = ca.issue("bench-client", dns=("bench.internal",),
                               uris=("spiffe://cluster.local/ns/bench/sa/client",))
        tls = TlsSettings(cert_file=cert, key_file=key)
        mtls = TlsSettings(cert_file=cert, key_file=key, client_ca_file=root / "ca.crt")
        plain, _ = new_context(tls, verify_clients=False)
        rotating = RotatingContext(tls, verify_clients=False).context
        mutual = RotatingContext(mtls, verify_clients=True).context
        client = ca.client_context()
        client13 = ca.client_context()
        client12 = ca.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        with_cert = ca.client_context(client_cert, root / "client")
        rows: list[tuple[str, Callable[[], float]]] = [
            ("full handshake, TLS 1.3 (no rotation check)",
             lambda: per_handshake(plain, client13, args.handshakes)),
            ("full handshake, TLS 1.3, with the rotation check",
             lambda: per_handshake(rotating, client13, args.handshakes)),
            ("full handshake, TLS 1.2", lambda: per_handshake(rotating, client12, args.handshakes)),
            ("resumed handshake, TLS 1.3 (session ticket)",
             lambda: per_handshake(rotating, client, args.handshakes, resume=True)),
            ("full handshake, TLS 1.3, client certificate verified",
             lambda: per_handshake(mutual, with_cert, args.handshakes)),
            ("records of one keep-alive request (~0.8 KB in, ~0.4 KB out)",
             lambda: per_request(rotating, client13, args.requests)),
            ("client certificate -> claims, parsed (once per new certificate)",
             lambda: timeit(lambda: parse(client_cert.der), args.handshakes)),
            ("client certificate -> claims, cached (once per connection)",
             lambda: timeit(lambda: cache.get(client_cert.der), args.requests)),
        ]
        cache = CertificateCache()
        cache.get(client_cert.der)
        print(f"# bench/bench_tls.py, {datetime.date.today()}, {platform.node()}, "
              f"{platform.python_version()}, {ssl.OPENSSL_VERSION}; median of {args.rounds} rounds, "
              "server-side CPU µs")
        print("| what | CPU µs |")
        print("| --- | ---: |")
        for name, measure in rows:
            values = [measure() for _ in range(args.rounds)]
            print(f"| {name} | {statistics.median(values):,.1f} |")


if __name__ == "__main__":
    main()
