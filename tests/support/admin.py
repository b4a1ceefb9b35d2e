"""The admin listener's app in process, with the policy page over a real policy: for
tests/unit/ops/. The policy files are real (a PolicyHolder loads them), the traffic recorder is
the one the gate feeds, and requests go through httpx's ASGI transport from a chosen peer.

    async with policy_admin(tmp_path, POLICY) as admin:
        response = await admin.get("/policy", peer="127.0.0.1")
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gatekeeper.metrics import Metrics
from gatekeeper.ops.access import AdminAccess
from gatekeeper.ops.admin import UpstreamProbe, create_admin_app
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.ops.recent import Traffic
from gatekeeper.policy.reload import PolicyHolder
from gatekeeper.settings.admin import AdminSettings
from tests.support.policy import POLICIES

__all__ = ["PolicyAdmin", "policy_admin"]


@dataclass
class PolicyAdmin:
    app: Any
    holder: PolicyHolder
    traffic: Traffic
    policy_file: Path

    async def get(self, path: str, *, peer: str = "127.0.0.1", host: str = "127.0.0.1:9901",
                  headers: dict[str, str] | None = None,
                  params: tuple[tuple[str, str], ...] = ()) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 50123))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            # No params at all unless given: httpx would drop the query written in ``path``.
            if params:
                return await client.get(path, headers=headers, params=params)
            return await client.get(path, headers=headers)


@contextlib.asynccontextmanager
async def policy_admin(directory: Path, policy: str, *, admin: AdminSettings | None = None,
                       model: Path = POLICIES / "model.conf",
                       public_paths: Sequence[str] = ("/public/*",),
                       with_page: bool = True) -> AsyncIterator[PolicyAdmin]:
    """The admin app with ``policy`` (policy.csv text) under ``model`` loaded; ``admin``: the
    access settings (default: loopback peers, no token)."""
    policy_file = directory / "policy.csv"
    policy_file.write_text(policy)
    holder = PolicyHolder(model, policy_file, Metrics())
    await holder.start(watch=False)
    try:
        traffic = Traffic()
        page = PolicyPage(holder, traffic, public_paths=public_paths,
                          roles_claims=["roles", "groups"]) if with_page else None
        app = create_admin_app(Metrics(), {}, UpstreamProbe("127.0.0.1", 9),
                               access=AdminAccess(admin or AdminSettings()), policy_page=page)
        yield PolicyAdmin(app, holder, traffic, policy_file)
    finally:
        await holder.aclose()
