"""The whole app in process (tests/support/asgi.py) against the suite's real issuer and
recording upstream on loopback (tests/conftest.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from gatekeeper.dev.issuer import DevIssuer
from gatekeeper.settings import Settings
from tests.conftest import Upstream, gatekeeper_config
from tests.support.asgi import request as send
from tests.support.paths import ROOT
from tests.support.upstream import create_upstream_app

# The shipped example policy (policies/policy.csv): viewers read items, editors write them,
# admins administer, nobody deletes the audit log, anonymous callers read /public/*.
EXAMPLE_POLICY = {"model": str(ROOT / "policies" / "model.conf"),
                  "policy": str(ROOT / "policies" / "policy.csv"), "watch": False}

MakeSettings = Callable[..., Settings]


@pytest.fixture(scope="module")
def make_settings(issuer: DevIssuer, upstream: Upstream) -> MakeSettings:
    """Settings as the e2e gatekeepers get them (one issuer, audience "api", public_paths
    ["/public/*"], the recording upstream); keyword arguments override top-level keys."""

    def make(**overrides: Any) -> Settings:
        return Settings.model_validate(gatekeeper_config(issuer, upstream.url, **overrides))

    return make


@pytest.fixture(autouse=True)
def fresh_recorder(upstream: Upstream) -> None:
    """Each test reads only what its own requests brought to the app."""
    upstream.recorder.clear()


@pytest.fixture(params=["sidecar", "in-process"])
def both_shapes(request: pytest.FixtureRequest, upstream: Upstream,
                monkeypatch: pytest.MonkeyPatch) -> str:
    """One config, two shapes: the test module's ``request`` (tests/support/asgi.py) sends
    through the sidecar, or through ``gatekeeper.Gatekeeper`` wrapping the same recording app
    in process. Use with ``pytestmark = pytest.mark.usefixtures("both_shapes")``."""
    if request.param == "in-process":
        inner = create_upstream_app(upstream.recorder)
        monkeypatch.setattr(request.module, "request", functools.partial(send, inner=inner))
    return str(request.param)
