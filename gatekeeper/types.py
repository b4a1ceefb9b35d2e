"""Values several layers share and that belong to none of them: the ASGI callables' types and a
readiness check's result. A leaf: imports nothing from gatekeeper, so any module may import it
without pulling in the one that happens to use the value most (``Check`` lived in the admin
listener, so the revocation list imported the admin app to report its readiness).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# ASGI 3 (asgiref's spec): a connection's scope, the receive and send callables, their messages.
# Plain dicts (what uvicorn and our own protocol hand over), so a scope can be copied and merged.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness dependency's answer for /readyz: ``ok`` and what to tell the operator."""

    ok: bool
    detail: str
