"""``server.http``: the protocol class uvicorn runs for a listener, by name."""

from __future__ import annotations

import asyncio

from gatekeeper.server.http11 import http11_protocol
from gatekeeper.server.limits import ConnectionLimits
from gatekeeper.server.protocol import edge_protocol
from gatekeeper.settings.server import HttpProtocol


def http_protocol(kind: HttpProtocol, limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` option for ``kind`` (both picklable, for workers > 1)."""
    return http11_protocol(limits) if kind == "gatekeeper" else edge_protocol(limits)
