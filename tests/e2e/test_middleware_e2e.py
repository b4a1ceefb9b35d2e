"""``gatekeeper.Gatekeeper`` end to end: a Starlette app with the middleware in front, served by
a real uvicorn on loopback from the same config file a sidecar would read — its decisions, its
answers, a WebSocket, and the policy hot-reloaded in the app's process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from websockets.sync.client import connect

from gatekeeper.dev.issuer import DevIssuer
from tests.conftest import Upstream, gatekeeper_config
from tests.support.fakes import mint
from tests.support.policy import copy_default_policy
from tests.support.poll import eventually
from tests.support.servers import free_port, run_process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, issuer: DevIssuer,
           upstream: Upstream) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("inprocess")
    config: dict[str, Any] = gatekeeper_config(issuer, upstream.url,
                                               policy=copy_default_policy(
                                                   directory, "\np, role:viewer, /ws, GET, allow\n"))
    path = directory / "gatekeeper.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with run_process([sys.executable, "-m", "tests.support.apps.inprocess_app", str(path),
                      str(port)], ready_port=port):
        yield f"127.0.0.1:{port}", directory


def call(address: str, method: str, path: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"http://{address}{path}", headers=headers, timeout=10)


def test_the_policy_decides_and_the_app_sees_the_caller(served: tuple[str, Path],
                                                        issuer: DevIssuer) -> None:
    address, _ = served
    viewer = mint(issuer, "alice", claims={"roles": ["viewer"]})
    allowed = call(address, "GET", "/api/p1/items", viewer)
    assert allowed.status_code == 200
    assert allowed.json() == {"identity": "alice", "scopes": ["authenticated", "viewer"],
                              "method": "GET", "path": "/api/p1/items", "header_user": "alice"}
    denied = call(address, "DELETE", "/api/p1/items/7", viewer)
    assert (denied.status_code, denied.json()["error"]) == (403, "forbidden")
    anonymous = call(address, "GET", "/api/p1/items")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="gatekeeper"'


def test_a_websocket_carries_the_caller(served: tuple[str, Path], issuer: DevIssuer) -> None:
    address, _ = served
    viewer = mint(issuer, "alice", claims={"roles": ["viewer"]})
    with connect(f"ws://{address}/ws", additional_headers={"authorization": f"Bearer {viewer}"},
                 open_timeout=5) as socket:
        socket.send("hi")
        assert socket.recv(timeout=5) == "alice: hi"
    nobody = mint(issuer, "carol", claims={"roles": []})  # no rule lets her GET /ws
    with pytest.raises(Exception, match="403"):
        connect(f"ws://{address}/ws", additional_headers={"authorization": f"Bearer {nobody}"},
                open_timeout=5).close()


def test_the_policy_is_hot_reloaded_in_the_apps_process(served: tuple[str, Path],
                                                        issuer: DevIssuer) -> None:
    address, directory = served
    editor = mint(issuer, "bob", claims={"roles": ["editor"]})
    assert call(address, "PUT", "/reports/q3", editor).status_code == 403
    policy = directory / "policy.csv"
    policy.write_text(policy.read_text() + "\np, role:editor, /reports/*, PUT, allow\n")
    assert eventually(lambda: call(address, "PUT", "/reports/q3", editor).status_code == 200)
