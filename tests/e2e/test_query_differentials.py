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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import AUDIENCE, gatekeeper_config
from tests.support.app_stack import recording_app_behind_gatekeeper
from tests.support.policy import casbin_model, write_policy
from tests.support.servers import free_port

FRAMEWORKS = ["starlette", "flask", "aiohttp", "django"]  # each reads one value its own way
MODEL = casbin_model(
    "sub, obj, act", "sub, obj, act",
    "g(r.sub, p.sub) && keyMatch2(r.obj, p.obj) && methodMatch(r.act, p.act) && r.obj.Owner == r.sub",
    more="[object_attributes]\nOwner = query owner\n")
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


@pytest.fixture(scope="module", params=FRAMEWORKS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          issuer: DevIssuer) -> Iterator[Stack]:
    framework: str = request.param
    base = tmp_path_factory.mktemp(f"query-{framework}")
    policy = write_policy(base, MODEL, POLICY, watch=False)
    config = gatekeeper_config(issuer, f"http://127.0.0.1:{free_port()}", policy=policy)
    host, port = config["listen"].rsplit(":", 1)
    with recording_app_behind_gatekeeper(framework, base, config) as log:
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
