"""Shared fixtures: a real dev issuer, a real recording upstream, and gatekeeper as a real process.

    def test_x(gatekeeper_factory, issuer, upstream):
        gk = gatekeeper_factory()                       # defaults: one issuer, audience "api"
        token = issuer.mint("alice", audience="api")
        r = httpx.get(gk.url + "/echo", headers={"Authorization": f"Bearer {token}"})
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.dev.issuer_http import create_issuer_app
from gatekeeper.dev.login import DevClient, DevLogin
from tests.support.servers import ProcessHandle, free_port, run_process, serve_asgi, terminating
from tests.support.upstream import Recorder, create_upstream_app

AUDIENCE = "api"
# Which HTTP/1.1 protocol the gatekeeper processes of the e2e tests run (config key server.http),
# so the same tests run against both: GK_TEST_SERVER_HTTP=uvicorn make test. Not a GATEKEEPER_*
# name: every such variable is a config override, and gatekeeper refuses an unknown key.
SERVER_HTTP = os.environ.get("GK_TEST_SERVER_HTTP")


@dataclass
class Upstream:
    url: str
    recorder: Recorder
    port: int


@dataclass
class Gatekeeper:
    url: str
    admin_url: str
    process: ProcessHandle
    config: dict[str, Any]
    config_path: Path

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("base_url", self.url)
        kwargs.setdefault("timeout", 30)
        return httpx.Client(trust_env=False, **kwargs)

    def admin(self) -> httpx.Client:
        return self.client(base_url=self.admin_url)

    def access_log(self) -> list[str]:
        return [line for line in self.process.output().splitlines() if '"request_id"' in line]


@contextmanager
def served_issuer(**kwargs: Any) -> Iterator[DevIssuer]:
    """A DevIssuer of its own on a loopback port (its URL is its issuer name)."""
    dev = DevIssuer(**kwargs)
    port = free_port()
    dev.issuer = f"http://127.0.0.1:{port}"
    with serve_asgi(create_issuer_app(dev), port=port):
        yield dev


@contextmanager
def served_login_issuer(
    redirect_uris: list[str], *, post_logout_redirect_uris: list[str] | None = None,
    client_id: str = "gatekeeper", client_secret: str = "dev-client-secret", **login: Any,
) -> Iterator[tuple[DevIssuer, DevLogin]]:
    """A DevIssuer with its login side (gatekeeper/dev/login.py): a small OpenID Provider whose
    ``id_token_hook`` / ``userinfo_overrides`` make it misbehave on purpose."""
    dev = DevIssuer()
    port = free_port()
    dev.issuer = f"http://127.0.0.1:{port}"
    client = DevClient(client_id, client_secret, redirect_uris, post_logout_redirect_uris or [])
    provider = DevLogin(dev, clients=[client], **login)
    with serve_asgi(create_issuer_app(dev, login=provider), port=port):
        yield dev, provider


def callback_of(port: int) -> str:
    """The redirect URL of a gatekeeper listening on 127.0.0.1:``port``."""
    return f"http://127.0.0.1:{port}/oauth2/callback"


def login_oidc(dev: DevIssuer, port: int, **extra: Any) -> dict[str, Any]:
    """The ``oidc`` config of a gatekeeper on 127.0.0.1:``port`` logging in at a
    ``served_login_issuer`` with its default client."""
    return {"issuer": dev.issuer, "client_id": "gatekeeper", "client_secret": "dev-client-secret",
            "redirect_url": callback_of(port), **extra}


@pytest.fixture(scope="module")
def login_port() -> int:
    """The port of a module's browser-login gatekeeper, known before the provider starts."""
    return free_port()


@pytest.fixture(scope="module")
def login_issuer(login_port: int) -> Iterator[DevIssuer]:
    """A ``served_login_issuer`` whose client may come back to 127.0.0.1:``login_port``."""
    with served_login_issuer([callback_of(login_port)]) as (dev, _login):
        yield dev


@pytest.fixture(scope="module")
def issuer() -> Iterator[DevIssuer]:
    with served_issuer() as dev:
        yield dev


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    recorder = Recorder()
    port = free_port()
    with serve_asgi(create_upstream_app(recorder), port=port) as url:
        yield Upstream(url=url, recorder=recorder, port=port)


@pytest.fixture
def start_gatekeeper(
    tmp_path: Path, issuer: DevIssuer, upstream: Upstream
) -> Iterator[Callable[..., Gatekeeper]]:
    """A gatekeeper process per call, all stopped at the end: each attack test reads a clean
    peak RSS or CPU time of its own (tests/support/attacks.py)."""
    from tests.support.attacks import gatekeeper_starter  # it imports this module

    with gatekeeper_starter(tmp_path, issuer, upstream) as start:
        yield start


def gatekeeper_config(issuer: DevIssuer | None, upstream_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{free_port()}",
        "admin_listen": f"127.0.0.1:{free_port()}",
        "upstream": upstream_url,
        "upstream_timeout_seconds": 5,
        "public_paths": ["/public/*"],
        "drain_seconds": 5,
        "auth": {
            "issuers": [{"issuer": issuer.issuer, "audience": [AUDIENCE],
                         "algorithms": ["RS256", "PS256", "ES256", "EdDSA"]}] if issuer else [],
            "jwks_min_refresh_seconds": 1,
        },
    }
    if SERVER_HTTP:
        config["server"] = {"http": SERVER_HTTP}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


@pytest.fixture(scope="module")
def gatekeeper_factory(
    tmp_path_factory: pytest.TempPathFactory, issuer: DevIssuer, upstream: Upstream
) -> Iterator[Callable[..., Gatekeeper]]:
    """Start gatekeeper processes (stopped at module end). Keyword args override config keys."""
    handles: list[ProcessHandle] = []
    # terminating(), left first, signals all the processes; the stack then waits for each.
    with ExitStack() as stack, terminating(handles):
        def start(*, env: dict[str, str] | None = None, wait_ready: bool = True,
                  **overrides: Any) -> Gatekeeper:
            config = gatekeeper_config(issuer, upstream.url, **overrides)
            path = tmp_path_factory.mktemp("gk") / "gatekeeper.yaml"
            path.write_text(yaml.safe_dump(config))
            admin_url = f"http://{config['admin_listen']}"
            handle = stack.enter_context(run_process(
                [sys.executable, "-m", "gatekeeper", "run", "--config", str(path)],
                env=env, ready_url=f"{admin_url}/healthz" if wait_ready else None,
                ready_port=None if wait_ready else int(config["listen"].rsplit(":", 1)[1]),
            ))
            handles.append(handle)
            return Gatekeeper(url=f"http://{config['listen']}", admin_url=admin_url,
                              process=handle, config=config, config_path=path)
        yield start


@pytest.fixture(scope="module")
def gatekeeper(gatekeeper_factory: Callable[..., Gatekeeper]) -> Gatekeeper:
    """One gatekeeper with the default config, shared by a test module."""
    return gatekeeper_factory()
