"""A policy condition on a query parameter, in front of real frameworks: the value the policy
checked is the value the app's framework reads.

For Starlette (uvicorn), Flask (werkzeug), aiohttp and Django (cheroot), one app process and one
gatekeeper process whose policy lets a caller read ``/items/:id`` only with ``?owner=`` equal to
their own subject (``r.obj.Owner == r.sub``, ``Owner = query owner``). Alice sends hostile
queries — the name repeated in both orders, ``;`` pairs, other spellings of the name, broken
escapes, and every pair of a set of pieces — over raw sockets. Each handler records ``owner`` as
its framework's own query API reads it (tests/support/apps); no record may show another owner
than ``alice``, and the controls (her own, plainly and encoded) must reach the handler.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, gatekeeper_config
from tests.support.servers import ProcessHandle, free_port, run_process

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ["starlette", "flask", "aiohttp", "django"]  # each reads one value its own way
MODEL = """\
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) && r.obj.Owner == r.sub

[object_attributes]
Owner = query owner
"""
POLICY = "p, role:authenticated, /items/:id, GET|HEAD\n"

CONTROLS = [b"owner=alice", b"own%65r=alic%65", b"page=2&owner=alice"]
HOSTILE = [b"owner=bob", b"owner=alice&owner=bob", b"owner=bob&owner=alice",
           b"owner=alice;owner=bob", b"owner=bob;owner=alice", b"Owner=bob&owner=alice",
           b"owner=alice&OWNER=bob", b"owner[]=bob&owner=alice", b"owner=alice&owner[]=bob",
           b"owner=alice&own%65r=bob", b"own%65r=bob&owner=alice", b"owner=alice%00",
           b"+owner=bob&owner=alice", b"owner=alice&&owner=bob", b"owner=ali%ce",
           b"owner=alice%26owner%3Dbob", b"owner=alice;", b"x=1;owner=alice&owner=bob"]
PIECES = [b"owner=alice", b"owner=bob", b"Owner=bob", b"own%65r=bob", b"owner", b"owner=",
          b"owner[]=bob", b"x=1", b"owner=%ff", b"", b"owner=alice%20"]
GENERATED = sorted({sep.join(pair) for sep in (b"&", b";")
                    for pair in itertools.product(PIECES, repeat=2)})


@dataclass
class Stack:
    framework: str
    gatekeeper: tuple[str, int]
    log: Path

    def get(self, query: bytes, probe: str, token: str) -> int:
        data = (b"GET /items/1?" + query + b" HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n"
                + f"X-Probe: {probe}\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        with socket.create_connection(self.gatekeeper, timeout=15) as conn:
            conn.sendall(data)
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
        return int(received.split(b" ", 2)[1])

    def records(self) -> dict[str, dict[str, Any]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return {record["probe"]: record for record in map(json.loads, lines)}


def _wait_for_port(process: ProcessHandle, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not listen on {port}:\n{process.output()}") from None
            time.sleep(0.05)


@pytest.fixture(scope="module", params=FRAMEWORKS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          issuer: DevIssuer) -> Iterator[Stack]:
    framework: str = request.param
    base = tmp_path_factory.mktemp(f"query-{framework}")
    (base / "model.conf").write_text(MODEL)
    (base / "policy.csv").write_text(POLICY)
    app_port = free_port()
    config = gatekeeper_config(issuer, f"http://127.0.0.1:{app_port}",
                               policy={"model": str(base / "model.conf"),
                                       "policy": str(base / "policy.csv"), "watch": False})
    (base / "gatekeeper.yaml").write_text(yaml.safe_dump(config))
    log = base / "records.jsonl"
    host, port = config["listen"].rsplit(":", 1)
    with ExitStack() as processes:
        app = processes.enter_context(run_process(
            [sys.executable, "-m", "tests.support.apps", framework, str(app_port), str(log)],
            cwd=REPO))
        processes.enter_context(run_process(
            [sys.executable, "-m", "gatekeeper", "run", "--config", str(base / "gatekeeper.yaml")],
            ready_url=f"http://{config['admin_listen']}/healthz", timeout=30))
        _wait_for_port(app, app_port, 30)
        yield Stack(framework, (host, int(port)), log)


def test_no_app_acts_on_an_owner_the_policy_did_not_check(stack: Stack, issuer: DevIssuer) -> None:
    token = issuer.mint("alice", audience=AUDIENCE, ttl_seconds=3600, claims={"roles": []})
    sent: dict[str, tuple[bytes, int]] = {}
    for n, query in enumerate([*CONTROLS, *HOSTILE, *GENERATED]):
        probe = f"{stack.framework}-{n}"
        sent[probe] = (query, stack.get(query, probe, token))
    records = stack.records()
    for probe, record in records.items():
        if record["handler"] == "items_read":
            assert record["params"]["owner"] == "alice", (sent[probe], record["params"])
    for n, query in enumerate(CONTROLS):  # not vacuous: her own owner reaches the handler
        probe = f"{stack.framework}-{n}"
        assert sent[probe][1] == 200 and records[probe]["handler"] == "items_read", query
    reached = sum(1 for record in records.values() if record["handler"] == "items_read")
    assert reached < len(sent) / 2  # the hostile ones were stopped, not merely harmless
