"""A real nginx (Debian's, with auth_request) in front of gatekeeper, and raw requests to it.

    with run_nginx(server_blocks, tmp_path_factory.mktemp("nginx"), port):
        status = status_of(port, b"GET /x HTTP/1.1\\r\\nHost: app.example\\r\\n...\\r\\n\\r\\n")

nginx runs in the foreground as one process, everything under its prefix directory; the server
blocks given must listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import run_process
from tests.support.tools import NGINX, require

__all__ = ["documented_recipe", "run_documented_nginx", "run_nginx", "status_of"]

_FORWARD_AUTH_DOC = Path(__file__).resolve().parents[2] / "docs" / "forward-auth.md"


@contextlib.contextmanager
def run_nginx(server_blocks: str, prefix: Path, port: int) -> Iterator[None]:
    """nginx serving ``server_blocks`` inside its ``http {}``, until ``port`` accepts (without
    nginx, the test fails with one line naming the package: no silent skip)."""
    nginx = require(NGINX)
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp}
{server_blocks}
}}
""")
    with run_process([nginx, "-p", str(prefix), "-c", str(conf)], ready_port=port):
        yield


def status_of(port: int, data: bytes) -> int:
    """Write ``data`` byte for byte to 127.0.0.1:``port``, read until nginx closes (at most
    1 MiB); the status of its answer. nginx answers after the upstream did, so whatever the
    request caused upstream is recorded by the time this returns."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        received = bytearray()
        while len(received) < 1 << 20 and (chunk := sock.recv(65536)):
            received += chunk
    status = re.match(rb"HTTP/1\.[01] (\d{3}) ", bytes(received))
    assert status, f"no HTTP answer to {data[:200]!r}: {bytes(received[:200])!r}"
    return int(status.group(1))


def documented_recipe() -> str:
    """The one ```nginx block of docs/forward-auth.md: what users copy is what is tested."""
    blocks: list[str] = re.findall(r"```nginx\n(.*?)```", _FORWARD_AUTH_DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/forward-auth.md must hold exactly one nginx recipe"
    return blocks[0]


@contextlib.contextmanager
def run_documented_nginx(gatekeeper_listen: str, upstream_port: int, prefix: Path,
                         port: int) -> Iterator[None]:
    """nginx running the documented recipe on 127.0.0.1:``port``, its addresses replaced by the
    test's gatekeeper and upstream."""
    server = documented_recipe()
    for documented, actual in (("listen 80;", f"listen 127.0.0.1:{port};"),
                               ("127.0.0.1:4180", gatekeeper_listen),
                               ("127.0.0.1:8080", f"127.0.0.1:{upstream_port}")):
        assert documented in server
        server = server.replace(documented, actual)
    with run_nginx(server, prefix, port):
        yield
