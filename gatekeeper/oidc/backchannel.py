"""OpenID Connect Back-Channel Logout 1.0: the provider tells us, server to server, that a user
logged out; every session of that ``sid`` (or ``sub``) ends, on every replica.

The HTTP answer (200 / 400 / 501) is the route's (routes.py); this module reads the form,
checks the logout token and ends the sessions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import parse_qs

from gatekeeper.errors import GatekeeperError, LoginFailed
from gatekeeper.oidc.idtoken import logout_token_acceptable_until, verify_logout_token
from gatekeeper.oidc.provider import Provider
from gatekeeper.tokens.jws import peek_token
from gatekeeper.types import Receive

MAX_FORM_BYTES = 16384  # a logout token is a few KB


class LogoutEverywhere(Protocol):
    """A session store that can end sessions it was not asked about by their browser."""

    async def end_sessions(self, provider: str, *, subject: str | None = None,
                           sid: str | None = None) -> int: ...

    async def seen_once(self, name: str, seconds: int) -> bool: ...


async def log_out_everywhere(
    receive: Receive, providers: Mapping[str, Provider], store: LogoutEverywhere,
    clock: Callable[[], float], *, max_age_seconds: int,
) -> tuple[Provider, int]:
    """The provider that sent the logout and how many sessions ended. Raises ``LoginFailed``
    (or ValueError for a malformed body) for a refused request, ``SessionStoreUnavailable``
    when the store cannot carry it out."""
    form = parse_qs((await _read_body(receive, MAX_FORM_BYTES)).decode("ascii"),
                    strict_parsing=True, max_num_fields=8)
    tokens = form.get("logout_token", [])
    if len(tokens) != 1:
        raise LoginFailed("one logout_token is required", code="logout_token_missing")
    provider = _provider_of(tokens[0], providers)
    now = clock()
    claims = await verify_logout_token(tokens[0], provider.keys, provider.rules, now=now,
                                       max_age_seconds=max_age_seconds)
    jti = claims.get("jti")
    # The jti is remembered for as long as the token could still be accepted (its iat bound),
    # never less: a replay after the memory lapsed would be a fresh logout.
    remember = replay_memory_seconds(claims["iat"], now, provider, max_age_seconds)
    if isinstance(jti, str) and not await store.seen_once(f"logout:{provider.id}:{jti}", remember):
        raise LoginFailed("this logout token was used before", code="logout_token_replayed")
    sid, sub = claims.get("sid"), claims.get("sub")
    # §2.7: a sid names one provider session; a sub alone means all of that user's.
    ended = await store.end_sessions(
        provider.id, sid=sid if isinstance(sid, str) else None,
        subject=sub if isinstance(sub, str) and not isinstance(sid, str) else None)
    return provider, ended


def replay_memory_seconds(iat: float, now: float, provider: Provider, max_age_seconds: int) -> int:
    """Seconds from ``now`` until a token issued at ``iat`` is refused by its age, rounded up."""
    until = logout_token_acceptable_until(iat, provider.rules, max_age_seconds)
    return max(1, math.ceil(until - now) + 1)


def _provider_of(token: str, providers: Mapping[str, Provider]) -> Provider:
    try:
        issuer = peek_token(token)[1].get("iss")
    except GatekeeperError as exc:
        raise LoginFailed("the logout token is malformed", code="logout_token_malformed") from exc
    for provider in providers.values():
        if provider.settings.issuer == issuer:
            return provider
    raise LoginFailed("the logout token comes from no configured provider",
                      code="logout_token_issuer")


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueError("the client went away")
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            raise ValueError("the body is too large")
        if not message.get("more_body", False):
            return body
