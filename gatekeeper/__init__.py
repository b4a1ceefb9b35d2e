"""gatekeeper: an authentication/authorization reverse proxy for one app, as a sidecar process
(``gatekeeper run``) or in the app's process (``from gatekeeper import Gatekeeper``)."""

from __future__ import annotations

from typing import Any

__all__ = ["Gatekeeper"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI and the sidecar never load the middleware's module.
    if name == "Gatekeeper":
        from gatekeeper.middleware import Gatekeeper

        return Gatekeeper
    raise AttributeError(f"module 'gatekeeper' has no attribute {name!r}")
