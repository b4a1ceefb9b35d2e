"""What gatekeeper/app.py starts, one seam a module; app.py calls them in order, and each pushes
the closing of what it starts onto the lifespan's exit stack (which unwinds in reverse).

tracing.py (where spans go), backchannel.py (the control-plane HTTP client, the issuers' keys,
Redis, the back-channel clients), policy.py (the policy holder and its page), authentication.py
(bearer, introspection, DPoP, certificates, browser sessions), stages.py (revocation, rate limits,
the assertion, token exchange), edge.py (the gate, the proxy, forward-auth, CORS, the JWKS),
listeners.py (binding the ports) and admin.py (the admin listener)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gatekeeper.types import Check

Checks = dict[str, Callable[[], Awaitable[Check]]]
"""The checks app.py adds to /readyz, by name (docs/operations.md "Readiness")."""
