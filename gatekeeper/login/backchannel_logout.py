"""``POST {prefix}/backchannel_logout``: OIDC Back-Channel Logout 1.0 (with session.store: redis).

200 once every session of that sid (or sub) is deleted from Redis: ended here at once, on the
other replicas as soon as the published change reaches them (sessions/redis_cache.py). The
protocol (the form, the logout token, ending the sessions) is oidc/backchannel.py; this module
answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gatekeeper.edge.responses import Answer
from gatekeeper.errors import LoginFailed, SessionStoreUnavailable
from gatekeeper.exchange import Exchange
from gatekeeper.login.answer import json_answer
from gatekeeper.oidc.backchannel import LogoutEverywhere, log_out_everywhere
from gatekeeper.oidc.provider import Provider
from gatekeeper.principal import Decision, Outcome

log = logging.getLogger("gatekeeper.oidc")

Receive = Any


class BackchannelLogout:
    def __init__(self, providers: Mapping[str, Provider], store: LogoutEverywhere, *,
                 max_age_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._providers = providers
        self._store = store
        self._max_age = max_age_seconds
        self._clock = clock

    async def answer(self, request: Exchange, receive: Receive, request_id: str) -> Answer:
        if request.method != "POST":
            return json_answer(request_id, 405, {"error": "invalid_request",
                               "error_description": "POST a logout_token"},
                               Decision(Outcome.ERROR, "backchannel_method"))
        try:
            provider, ended = await log_out_everywhere(
                receive, self._providers, self._store, self._clock, max_age_seconds=self._max_age)
        except (LoginFailed, ValueError) as exc:
            code = exc.code if isinstance(exc, LoginFailed) else "logout_request_malformed"
            log.warning("back-channel logout refused", extra={"reason": code, "request_id": request_id})
            return json_answer(request_id, 400, {"error": "invalid_request",
                               "error_description": code}, Decision(Outcome.ERROR, code))
        except SessionStoreUnavailable as exc:
            # §2.8: the token was fine but the logout could not be carried out.
            return json_answer(request_id, 501, {"error": exc.code},
                               Decision(Outcome.ERROR, exc.code, error=exc))
        log.info("back-channel logout", extra={"provider": provider.id, "sessions": ended,
                                               "request_id": request_id})
        return json_answer(request_id, 200, {"sessions_ended": ended},
                           Decision(Outcome.ALLOW, "backchannel_logout"))
