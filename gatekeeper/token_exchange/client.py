"""One issuer's token endpoint, used for RFC 8693 token exchange, with its own cache.

The request (§2.1): ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange``, the caller's
token as ``subject_token`` of type ``…:access_token``, the route's ``audience``, ``resource``,
``scope`` and ``requested_token_type``; gatekeeper authenticates as the issuer's configured
client (a secret or ``private_key_jwt``: clients/client_auth.py, as introspection and the login's
token calls do). The endpoint is the configured one or the discovered ``token_endpoint``.

Cache: one per issuer (an answer is this issuer's word, never another's), keyed by the SHA-256 of
the caller's token (the token itself is no key) and everything else the request says (audience,
resource, scope, requested type). An issued token is kept until its ``expires_in`` less
``expiry_margin_seconds``, never past the caller's token's ``exp`` (a token gatekeeper would
refuse must not keep buying the app tokens) and at most ``max_ttl_seconds``; a refusal
``negative_ttl_seconds``. Concurrent requests with one key share one call (single-flight). An
endpoint that is down, slow, too large or answers what answer.py cannot believe: 503 for the
requests of that route, nothing cached (ControlPlane bounds the deadline and the body).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from gatekeeper.clients.client_auth import ClientAuth
from gatekeeper.clients.controlplane import ControlPlane, FetchError
from gatekeeper.clients.discovery import discovered_endpoint
from gatekeeper.clients.singleflight import SingleFlight, call_result
from gatekeeper.errors import GatekeeperError, TokenExchangeUnavailable
from gatekeeper.lru import LRU
from gatekeeper.settings import AuthSettings, IssuerSettings
from gatekeeper.settings.token_exchange import ACCESS_TOKEN_TYPE, TokenExchangeClient, TokenExchangeRoute
from gatekeeper.token_exchange.answer import Issued, issued

if TYPE_CHECKING:
    import httpx

    from gatekeeper.metrics import Metrics

log = logging.getLogger("gatekeeper.token_exchange")

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
Key = tuple[bytes, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a route asks for (§2.1): the same for every caller of the route."""

    audience: str | None
    resource: str | None
    scope: str | None  # space-separated (RFC 6749 §3.3)
    requested_token_type: str
    header: bytes  # where the app gets it

    @classmethod
    def of(cls, route: TokenExchangeRoute) -> Wanted:
        return cls(route.audience, route.resource, " ".join(route.scope) or None,
                   route.requested_token_type, route.header.lower().encode("ascii"))

    @property
    def key(self) -> tuple[str, ...]:
        """Every input of the answer besides the caller's token and the issuer."""
        return (self.audience or "", self.resource or "", self.scope or "", self.requested_token_type)


@dataclass(frozen=True, slots=True)
class Held:
    """One cached answer: the issued token, or the refusal to raise again."""

    token: str | None
    refusal: GatekeeperError | None
    until: float  # wall clock

    def result(self) -> str:
        if self.token is None:
            kept = self.refusal or TokenExchangeUnavailable()
            raise type(kept)(kept.description, code=kept.code)  # a fresh one per request
        return self.token


class IssuerExchange:
    """Exchanges tokens of one issuer at its token endpoint; answers kept per (token, request)."""

    def __init__(self, issuer: IssuerSettings, auth: AuthSettings, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time, *, client: ClientAuth | None = None,
                 metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        settings = issuer.token_exchange
        if settings is None:
            raise ValueError(f"{issuer.issuer}: no token_exchange settings")
        self.issuer = issuer.issuer
        self.settings: TokenExchangeClient = settings
        # ``client``: built by the app with its config key (auth.issuers.N.token_exchange),
        # which a bad key file is refused with.
        self._client = client or ClientAuth.of(settings, issuer=issuer.issuer,
                                               key_name=f"the token exchange of {issuer.issuer}")
        self._http = ControlPlane(http, deadline_seconds=settings.timeout_seconds,
                                  max_bytes=settings.max_bytes)
        # Discovery documents are larger than a token answer; bounded like JWKS ones, within
        # the exchange's own deadline (a request waits for both).
        self._discovery = ControlPlane(http, deadline_seconds=settings.timeout_seconds,
                                       max_bytes=auth.jwks_max_bytes)
        self._endpoint = settings.token_endpoint
        self._clock = clock
        self.cache: LRU[Key, Held] = LRU(settings.cache_size)
        self._calls: SingleFlight[Key, Held] = SingleFlight(self._landed)

    async def exchange(self, token: str, digest: bytes, expires_at: float, wanted: Wanted) -> str:
        """The app's token for ``wanted`` in place of ``token`` (``digest``: its SHA-256;
        ``expires_at``: its exp, 0 if unknown), cached or asked; raises the refusal."""
        key: Key = (digest, wanted.key)
        held = self.cache.get(key)
        if held is not None:
            if self._clock() < held.until:
                return held.result()
            self.cache.discard(key)
        held = await self._calls.call(key, lambda: self._ask(token, expires_at, wanted))
        return held.result()

    def _landed(self, key: Key, task: asyncio.Task[Held]) -> None:
        held = call_result(task)
        if self._metrics is not None and not task.cancelled():
            result = ("unavailable" if held is None
                      else "accepted" if held.token is not None else "refused")
            self._metrics.backchannel_calls.labels(kind="token_exchange", issuer=self.issuer,
                                                   result=result).inc()
        if held is not None and held.until > self._clock():  # a failure: nothing kept
            self.cache.put(key, held)

    async def _ask(self, token: str, expires_at: float, wanted: Wanted) -> Held:
        form = [("grant_type", GRANT_TYPE), ("subject_token", token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("requested_token_type", wanted.requested_token_type)]
        form += [(name, value) for name, value in (("audience", wanted.audience),
                                                    ("resource", wanted.resource),
                                                    ("scope", wanted.scope)) if value is not None]
        try:
            # One deadline for discovery (the first time) and the call together.
            async with asyncio.timeout(self.settings.timeout_seconds):
                endpoint = await self._endpoint_url()
                auth = await self._client.parts(endpoint)
                headers = {"content-type": "application/x-www-form-urlencoded",
                           "accept": "application/json", **auth.headers}
                form += list(auth.form.items())
                fetched = await self._http.call("POST", endpoint, headers=headers,
                                                content=urlencode(form))
            answer = fetched.json()
        except (FetchError, ValueError, TimeoutError) as exc:
            # The text names the URL without credentials, never a token or the secret.
            log.warning("token exchange failed", extra={"issuer": self.issuer,
                                                        "audience": wanted.audience,
                                                        "error": str(exc)[:300] or "deadline"})
            raise TokenExchangeUnavailable("the provider could not be asked for the app's token"
                                           ) from exc
        now = self._clock()
        try:
            result: Issued = issued(fetched.status, fetched.headers.get("content-type"), answer, token)
        except TokenExchangeUnavailable as exc:
            log.warning("token exchange answer refused", extra={
                "issuer": self.issuer, "audience": wanted.audience, "error": exc.code,
                "status": fetched.status})
            raise
        except GatekeeperError as exc:  # the provider's refusal (401, 403): kept briefly
            log.info("token exchange refused", extra={"issuer": self.issuer,
                                                      "audience": wanted.audience,
                                                      "error": exc.code})
            # A fresh copy: the raised one's traceback holds frames (and the token) alive.
            return Held(None, type(exc)(exc.description, code=exc.code),
                        now + self.settings.negative_ttl_seconds)
        until = now + self.settings.max_ttl_seconds
        if result.expires_in is not None:
            until = min(until, now + result.expires_in - self.settings.expiry_margin_seconds)
        if expires_at > 0:
            until = min(until, expires_at)
        return Held(result.token, None, until)  # used now even when too short-lived to keep

    async def _endpoint_url(self) -> str:
        if self._endpoint is None:
            self._endpoint = await discovered_endpoint(self._discovery, self.issuer,
                                                       "token_endpoint")
        return self._endpoint
