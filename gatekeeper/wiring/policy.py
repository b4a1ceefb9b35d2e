"""The authorizer: the policy holder (loaded, hot-reloaded) and the admin listener's policy page,
or, without a policy, authenticated-only."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gatekeeper.authz import AuthenticatedOnly, Authorizer, PolicyAuthorizer, PublicPaths
from gatekeeper.metrics import Metrics
from gatekeeper.mutate import HeaderPolicy
from gatekeeper.ops.policy_page import PolicyPage
from gatekeeper.ops.recent import Traffic
from gatekeeper.policy.loader import LoadReport, load_policy
from gatekeeper.policy.reload import PolicyHolder
from gatekeeper.settings import Settings
from gatekeeper.types import Check
from gatekeeper.wiring import Checks

log = logging.getLogger("gatekeeper")


@dataclass(frozen=True)
class Authorization:
    """The pipeline's authorizer; with a policy and the admin listener, the policy page and the
    samples of the traffic it shows (ops/recent.py)."""

    authorizer: Authorizer
    traffic: Traffic | None = None
    policy_page: PolicyPage | None = None


async def start_authorization(settings: Settings, metrics: Metrics, headers: HeaderPolicy,
                              stack: contextlib.AsyncExitStack, extra_checks: Checks, *,
                              preloaded: LoadReport | None, serve_admin: bool) -> Authorization:
    """``preloaded``: the policy ``gatekeeper run`` already loaded and checked, served as is."""
    public_paths = PublicPaths(settings.public_paths)
    if settings.policy is None:
        # SIGHUP's default action ends the process: an operator's `kill -HUP` (a reload
        # elsewhere) would stop the sidecar without a word.
        stack.callback(_on_sighup(lambda: log.info("SIGHUP: no policy to reload")))
        return Authorization(AuthenticatedOnly(public_paths))
    holder = PolicyHolder(
        settings.policy.model, settings.policy.policy, metrics,
        loader=functools.partial(load_policy,
                                 cache_size=settings.policy.decision_cache_size,
                                 settings=settings.policy))
    await holder.start(watch=settings.policy.watch, loaded=preloaded)
    stack.push_async_callback(holder.aclose)
    extra_checks["policy"] = _policy_check(holder)
    authorizer = PolicyAuthorizer(holder, public_paths, headers.is_trusted)
    if not serve_admin:
        return Authorization(authorizer)
    traffic = Traffic()
    return Authorization(authorizer, traffic,
                         PolicyPage(holder, traffic, public_paths=settings.public_paths,
                                    roles_claims=settings.auth.roles_claims))


def _on_sighup(handler: Callable[[], None]) -> Callable[[], None]:
    """Install ``handler`` for SIGHUP on the running loop; returns its removal."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


def _policy_check(holder: PolicyHolder) -> Callable[[], Awaitable[Check]]:
    async def check() -> Check:
        active = holder.active
        if active is None:
            return Check(False, f"no policy: {holder.last_error}")
        loaded = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder.loaded_at or 0))
        detail = f"digest {active.digest}, {len(active.rules)} rules, loaded {loaded}"
        if holder.last_error:
            detail += f"; last reload refused: {holder.last_error}"
        return Check(True, detail)
    return check
